"""Extension tests under the real `bpy` module (Blender 4.5 and 4.2 LTS / Python 3.11, Blender 5.x / Python 3.13).

A process that imported bpy can hang in interpreter shutdown (FACTS.md): once pytest has printed
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
except ImportError:  # not a Blender environment (.venv-bpy45/-bpy5/-bpy42): nothing here to run
    bpy = None
    collect_ignore_glob = ["test_*.py"]

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

    if bpy is not None and not hasattr(bpy.types.Scene, "sheap"):  # registered once per process
        sheap_blender.register()
    yield


@pytest.fixture
def empty_scene():
    """A factory-fresh, empty scene for each test."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


BACKEND_PYTHON = Path(ROOT) / ".venv" / "bin" / "python"


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo stand-ins and the astronaut clip, made once by the backend's `make-demo` (needs .venv)."""
    if not BACKEND_PYTHON.is_file():
        pytest.skip("the backend environment (.venv) is not set up")
    directory = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([str(BACKEND_PYTHON), "-m", "backend", "make-demo", str(directory)], cwd=ROOT,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return directory
