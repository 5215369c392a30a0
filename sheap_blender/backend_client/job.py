"""What a backend job shows while it runs (no bpy here): Reconstruct Head's and Find People's common half.

States: starting -> running -> done | failed | cancelled. The operator drives a job from a timer in the UI
(modal) or in a loop in background mode: `poll()` (each job's own) drains whatever events have arrived and
never blocks; the panel and the status bar read `progress` and `status_line`.
"""

from __future__ import annotations

import time


class BackendJob:
    """A job's state and frame progress, and waiting for it; subclasses give `poll`, `status_line` and `cancel`."""

    def __init__(self, request):
        self.request = request
        self.state = "starting"
        self.error = ""
        self.people_path = ""  # a people file, when the job makes one
        self.count = 0  # ... and how many people it lists
        self.frame = 0
        self.total = 0
        self.fps = 0.0
        self.demo = False
        self.messages: list[str] = []

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def progress(self) -> float:
        return self.frame / self.total if self.total else 0.0

    def poll(self) -> None:
        raise NotImplementedError

    def wait(self, on_progress=None, interval: float = 0.05) -> None:
        """Block until finished (background mode); `on_progress(self)` after each poll that moved."""
        last = -1
        while True:
            self.poll()
            if on_progress is not None and self.frame != last:  # also the last frame, reported with "done"
                last = self.frame
                on_progress(self)
            if self.finished:
                return
            time.sleep(interval)
