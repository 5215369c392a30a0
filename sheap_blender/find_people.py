"""One "Find People" run: `python -m backend people` as a subprocess, driven by polling (no bpy here).

The same shape as reconstruction.Reconstruction (state, progress, status_line, poll, wait, cancel),
so the operator and the panel drive and show either the same way. It needs no FLAME or weights and
does not use the warm backend: a process of its own, ended at once by a cancel.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .backend_process import BackendError, backend_environment, backend_root
from .core.people_file import base_name


@dataclass
class PeopleRequest:
    footage: str
    output: str  # DIR/NAME.people.json
    backend_python: str
    start: int = 0
    end: int | None = None

    def command(self) -> list[str]:
        """The backend command line (absolute paths: the backend runs in another folder)."""
        footage, output = (os.path.abspath(os.path.expanduser(path)) for path in (self.footage, self.output))
        command = [self.backend_python, "-m", "backend", "people", footage, "-o", output, "--start", str(self.start),
                   "--progress", "json"]
        return command + (["--end", str(self.end)] if self.end is not None else [])


class FindPeople:
    """States: starting -> running -> done | failed | cancelled; `people_path` and `count` once done."""

    def __init__(self, request: PeopleRequest):
        self.request = request
        self.state = "starting"
        self.error = ""
        self.people_path = ""
        self.count = 0
        self.frame = 0
        self.total = 0
        self.fps = 0.0
        self.demo = False
        self.messages: list[str] = []
        self._events: queue.Queue[dict] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=20)
        python = Path(request.backend_python)
        if not python.is_file():
            self._fail(f"{python}: backend Python not found (run 'Set up backend' or set it in the preferences)")
            return
        try:
            self.process = subprocess.Popen(request.command(), cwd=backend_root(), env=backend_environment(),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True, bufsize=1)
        except (OSError, BackendError) as exc:
            self._fail(f"{python}: cannot start the backend ({getattr(exc, 'strerror', None) or exc})")
            return
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _fail(self, message: str) -> None:
        self.process = None
        self.state, self.error = "failed", message

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append(line.rstrip())
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                self._events.put(event)
        self._events.put({"event": "exited", "code": self.process.wait()})

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def progress(self) -> float:
        return self.frame / self.total if self.total else 0.0

    @property
    def frame_line(self) -> str:
        """ "finding people: frame 40/120 - 30 fps"."""
        return (f"finding people: frame {self.frame}/{self.total} - {self.fps:.0f} fps" if self.total
                else "finding people: reading footage...")

    @property
    def status_line(self) -> str:
        if self.state in ("starting", "running"):
            return self.frame_line
        return {"done": "done", "failed": self.error, "cancelled": "cancelled"}[self.state]

    def _last_words(self, code: int | None) -> str:
        self._stderr_reader.join(timeout=1.0)
        for line in reversed(self._stderr):
            if line.startswith("error:"):
                return line.removeprefix("error:").strip()
        return f"the backend exited unexpectedly (code {code})" + (f": {self._stderr[-1]}" if self._stderr else "")

    def poll(self) -> None:
        """Take in every event that has arrived; never blocks."""
        if self.finished:
            return
        self.state = "running"
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            kind = event["event"]
            if kind == "progress":
                self.frame, self.total, self.fps = event.get("frame", 0), event.get("total", 0), event.get("fps", 0.0)
            elif kind == "log":
                self.messages.append(str(event.get("message", "")))
                self.demo = self.demo or "demo weights" in self.messages[-1]
            elif kind == "done":
                self.people_path, self.count = str(event.get("people", "")), int(event.get("count", 0))
            elif kind == "error":
                self.error = str(event.get("message", "the backend failed")).splitlines()[0]
            elif kind == "exited":  # the end of every run: done only with the people file and exit code 0
                code = event.get("code")
                if code == 0 and self.people_path:
                    self.frame = self.total
                    self.state = "done"
                else:
                    self.state, self.error = "failed", self.error or self._last_words(code)
                return

    def wait(self, on_progress=None, interval: float = 0.05) -> None:
        """Block until finished (background mode); `on_progress(self)` after each poll that moved."""
        last = -1
        while True:
            self.poll()
            if on_progress is not None and self.frame != last:
                last = self.frame
                on_progress(self)
            if self.finished:
                return
            time.sleep(interval)

    def cancel(self) -> None:
        """Stop now: the process is ended and what it was writing (temporary files) removed."""
        if self.finished:
            return
        self.state, self.error = "cancelled", "cancelled"
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        output = Path(self.request.output)
        base = base_name(output)
        for pattern in (f".{glob.escape(output.name)}.*.tmp", f".{glob.escape(base)}.person*.png.*.tmp"):
            for partial in output.parent.glob(pattern):
                partial.unlink(missing_ok=True)
