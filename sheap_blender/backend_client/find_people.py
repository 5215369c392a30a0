"""One "Find People" run: `python -m backend people` as a subprocess, driven by polling (no bpy here).

A BackendJob (job.py) as reconstruction.Reconstruction is, so the operator and the panel drive and
show either the same way. It needs no FLAME or weights and does not use the warm backend: a process
of its own, ended at once by a cancel.
"""

from __future__ import annotations

import glob
import os
import queue
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core.result.people_file import base_name
from .job import BackendJob
from .process import BackendError, BackendProcess


@dataclass
class PeopleRequest:
    footage: str
    output: str  # DIR/NAME.people.json
    backend_python: str
    start: int = 0
    end: int | None = None

    def args(self) -> tuple[str, ...]:
        """The backend command's arguments (absolute paths: the backend runs in another folder)."""
        footage, output = (os.path.abspath(os.path.expanduser(path)) for path in (self.footage, self.output))
        args = ("people", footage, "-o", output, "--start", str(self.start), "--progress", "json")
        return args + (("--end", str(self.end)) if self.end is not None else ())


class FindPeople(BackendJob):
    """`people_path` and `count` once done."""

    def __init__(self, request: PeopleRequest):
        super().__init__(request)
        try:
            self._backend: BackendProcess | None = BackendProcess(request.backend_python, request.args())
        except BackendError as exc:
            self._backend, self.state, self.error = None, "failed", str(exc)

    @property
    def process(self) -> subprocess.Popen | None:
        return None if self._backend is None else self._backend.process

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

    def poll(self) -> None:
        """Take in every event that has arrived; never blocks."""
        if self.finished:
            return
        self.state = "running"
        while True:
            try:
                event = self._backend.events.get_nowait()
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
                    self.state, self.error = "failed", self.error or self._backend.death_message(code)
                return

    def cancel(self) -> None:
        """Stop now: the process is ended and what it was writing (temporary files) removed."""
        if self.finished:
            return
        self.state, self.error = "cancelled", "cancelled"
        if self._backend is not None:
            self._backend.kill()
        output = Path(self.request.output)
        base = base_name(output)
        for pattern in (f".{glob.escape(output.name)}.*.tmp", f".{glob.escape(base)}.person*.png.*.tmp"):
            for partial in output.parent.glob(pattern):
                partial.unlink(missing_ok=True)
