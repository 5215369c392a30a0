"""The backend as a warm subprocess, spoken to in JSON lines (no bpy here: plain processes and threads).

The extension never imports torch: it starts `python -m backend serve` in the backend's own
environment, sends requests on its stdin and reads events from its stdout on a reader thread,
so Blender's UI thread only ever drains a queue. Only plain data crosses the pipe.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the extension's folder (sheap_blender/)


_NATIVE_LOG_LINE = re.compile(r"^[IW]\d{4} ")  # glog/absl INFO and WARNING lines


class BackendError(Exception):
    """The backend could not be started, died, or answered with an error (one line for the user)."""


def backend_root() -> Path:
    """The folder holding the `backend` package: the repository in development, the bundled copy in the zip."""
    for candidate in (PACKAGE_DIR.parent, PACKAGE_DIR / "backend_src"):
        if (candidate / "backend" / "__main__.py").is_file():
            return candidate
    raise BackendError(f"the backend's code is missing (looked beside {PACKAGE_DIR})")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def development_checkout() -> bool:
    """True when running from the repository (the backend beside the package), not an installed zip."""
    return backend_root() == PACKAGE_DIR.parent


def backend_environment() -> dict[str, str]:
    """The environment of every backend command: `backend` and `sheap_blender.core` importable, unbuffered."""
    env = dict(os.environ)
    # only the backend's root: it holds `backend` and `sheap_blender.core` (the repository in development,
    # `backend_src/` in the zip). Never this package's parent: in Blender that is the folder of every
    # installed extension, which would shadow the backend's own packages. Nothing inherited either.
    env["PYTHONPATH"] = str(backend_root())
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)  # Blender sets it for its own Python; the backend has another
    return env


class BackendProcess:
    """One running `python -m backend serve` (or another command given `--progress json`, `args`); events
    arrive on `self.events` (a queue of dicts), ending with {"event": "exited", "code": ...}."""

    def __init__(self, python: str | os.PathLike, args: tuple[str, ...] = ("serve",)):
        """Spawn the process (fast); for serve, `wait_ready()` then waits until torch and the server are up."""
        self.python = Path(python)
        if not self.python.is_file():
            raise BackendError(f"{self.python}: backend Python not found (run 'Set up backend' or set it in the "
                               "preferences)")
        root = backend_root()
        env = backend_environment()
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._next_id = 0
        try:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "backend", *args], cwd=root, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            )
        except OSError as exc:
            raise BackendError(f"{self.python}: cannot start the backend ({exc.strerror})") from None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self.info: dict | None = None

    def wait_ready(self, timeout: float = 120.0) -> dict:
        if self.info is None:
            self.info = self.wait_for(("ready",), timeout=timeout)
        return self.info

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.stderr_tail.append(line.rstrip())  # a stray print: keep it for diagnostics
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                self.events.put(event)
            else:  # JSON, but not one of our events: keep it for diagnostics too
                self.stderr_tail.append(line.rstrip())
        code = self.process.wait()
        self.events.put({"event": "exited", "code": code})

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def last_words(self) -> str:
        """The most telling line the backend wrote to stderr (for a report when it died)."""
        for line in reversed(self.stderr_tail):
            if line.startswith(("error:", "Error", "RuntimeError", "ModuleNotFoundError", "ImportError")):
                return line
        # else the last line that is not MediaPipe's C++ info/warning chatter ("W0000 00:00:... file.cc:186] ...")
        telling = [line for line in self.stderr_tail if line.strip() and not _NATIVE_LOG_LINE.match(line)]
        return telling[-1] if telling else ""

    def send(self, request: dict) -> None:
        if not self.alive:
            raise BackendError("the backend is not running")
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise BackendError("the backend stopped answering") from None

    def reconstruct(self, **fields) -> int:
        """Start a reconstruction; returns its request id (events carry it)."""
        self._next_id += 1
        self.send({"cmd": "reconstruct", "id": self._next_id, **fields})
        return self._next_id

    def cancel(self) -> None:
        if self.alive:
            self.send({"cmd": "cancel"})

    def drain(self) -> Iterator[dict]:
        """Events that have arrived, without waiting."""
        while True:
            try:
                yield self.events.get_nowait()
            except queue.Empty:
                return

    def wait_for(self, kinds: tuple[str, ...], timeout: float | None = None) -> dict:
        """Block until an event of one of `kinds`; a death or timeout is a BackendError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.kill()
                raise BackendError(f"the backend did not answer within {timeout:.0f} s")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event["event"] in kinds:
                return event
            if event["event"] == "exited":
                raise BackendError(self.death_message(event["code"]))

    def death_message(self, code: int | None) -> str:
        self._stderr_reader.join(timeout=1.0)  # the process is gone: let its last lines arrive
        words = self.last_words()
        return f"the backend exited unexpectedly (code {code})" + (f": {words}" if words else "")

    def kill(self) -> None:
        """Stop the process now (terminate, then kill if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def close(self) -> None:
        """Ask politely, then make sure it is gone."""
        if self.alive:
            try:
                self.send({"cmd": "quit"})
                self.process.wait(timeout=2)
            except (BackendError, subprocess.TimeoutExpired):
                pass
        self.kill()
