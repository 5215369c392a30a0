"""`bake.py --ray` tests, under .venv-bpy45 (the one environment with Ray: `make test` installs it there).

A session-wide Ray head (`ray start --head --block`, 2 CPUs, every port on the loopback interface) that the
tests' batches join; stopped (SIGTERM to the process that started it) at the end. As in tests/blender, the
process ends with os._exit once pytest has printed its summary (bpy can hang in interpreter shutdown).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for folder in (REPO, REPO / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# Ray on one machine, for this session and the processes it starts: every node on 127.0.0.1 (Ray takes the
# machine's network address otherwise), no token (Ray turns it on wherever ~/.ray/auth_token exists)
os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"})

try:
    import bpy  # noqa: F401
    import ray  # noqa: F401
except ImportError as exc:  # a failure, never a silent empty run
    raise ImportError(f"tests/ray run under .venv-bpy45's python with Ray (`make test` sets it up: "
                      f"python3 scripts/setup_env.py test) ({exc})") from None

BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
RAY = Path(sys.executable).with_name("ray")

_session = None


def pytest_sessionstart(session):
    global _session
    _session = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _session is None or os.environ.get("SHEAP_TESTS_NO_EXIT"):
        return
    status = int(_session.exitstatus)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RayHead:
    """A running head: `address` for --ray, `dashboard` for ray.util.state."""

    def __init__(self, address: str, dashboard: str):
        self.address = address
        self.dashboard = dashboard


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory) -> RayHead:
    folder = tmp_path_factory.mktemp("ray")
    gcs, dashboard = free_port(), free_port()
    command = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
               "--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
               "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
               "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
               "--disable-usage-stats", "--temp-dir", str(folder / "tmp")]
    log = (folder / "head.log").open("w")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        from ray.util.state import list_nodes

        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None, (folder / "head.log").read_text()[-3000:]
            try:
                if list_nodes(address=url, raise_on_missing_output=False):
                    break
            except Exception:  # noqa: BLE001 - the dashboard is not up yet
                if time.monotonic() > deadline:
                    raise
            time.sleep(1.0)
        yield RayHead(f"127.0.0.1:{gcs}", url)
    finally:
        head.terminate()  # `ray start --block` stops every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo stand-ins and the astronaut clip (the backend's `make-demo`)."""
    if not BACKEND_PYTHON.is_file():
        pytest.fail(f"{BACKEND_PYTHON} is missing: `make test` makes it (python3 scripts/setup_env.py test)",
                    pytrace=False)
    directory = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([str(BACKEND_PYTHON), "-m", "backend", "make-demo", str(directory)], cwd=REPO,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return directory
