"""Extension tests under the real `bpy` module (Blender 4.5 and 4.2 LTS / Python 3.11, Blender 5.x / Python 3.13).

A process that imported bpy can hang in interpreter shutdown: once pytest has printed
its summary and unconfigured, this conftest flushes and ends the process with os._exit(status).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

try:
    import bpy
except ImportError as exc:  # a failure, never a silent empty run
    raise ImportError(f"tests/blender run under Blender's bpy module: use .venv-bpy45, .venv-bpy5 or .venv-bpy42's "
                      f"python (`make test` sets them up) ({exc})") from None

_session = None


def pytest_sessionstart(session):
    global _session
    _session = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # pytest calls this after the terminal summary; the exit status is final by now
    if _session is None or "bpy" not in sys.modules or os.environ.get("SHEAP_TESTS_NO_EXIT"):
        return
    status = int(_session.exitstatus)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@pytest.fixture(scope="session", autouse=True)
def registered():
    import sheap_blender

    if not hasattr(bpy.types.Scene, "sheap"):  # registered once per process
        sheap_blender.register()
    yield


@pytest.fixture
def empty_scene():
    """A factory-fresh, empty scene for each test."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


BACKEND_PYTHON = Path(ROOT) / ".venv" / "bin" / "python"


def require_backend() -> Path:
    """The backend's Python; a missing one fails the test with the step that makes it (never a skip)."""
    if not BACKEND_PYTHON.is_file():
        pytest.fail(f"{BACKEND_PYTHON} is missing: the backend environment is made by `make test` "
                    "(python3 scripts/setup_env.py test)", pytrace=False)
    return BACKEND_PYTHON


@pytest.fixture()
def backend_environment() -> Path:
    return require_backend()


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo stand-ins and the astronaut clip, made once by the backend's `make-demo` (needs .venv)."""
    require_backend()
    directory = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([str(BACKEND_PYTHON), "-m", "backend", "make-demo", str(directory)], cwd=ROOT,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return directory
