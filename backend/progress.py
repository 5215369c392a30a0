"""Progress reports: a tqdm bar on a terminal, JSON lines on stdout for Blender, or nothing; `Cancelled`.

Every job reports here and stops with `Cancelled`, so this module imports nothing of the project."""

from __future__ import annotations

import json
import sys
import time

from tqdm import tqdm


class Cancelled(Exception):
    """The caller asked the job to stop."""


def emit_json(event: str, **fields) -> None:
    """One JSON object per line on stdout, flushed at once (the Blender side reads it live)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Progress:
    """Frame progress of one job; `mode` is 'bar', 'json' or 'none'."""

    def __init__(self, mode: str, total: int, description: str = "reconstruct"):
        self.mode = mode
        self.total = total
        self.description = description
        self.start_time = time.perf_counter()
        self._last_emit = 0.0
        self._bar = tqdm(total=total, unit="frame", desc=description, file=sys.stderr) if mode == "bar" else None

    def update(self, done: int, total: int | None = None) -> None:
        """Report that `done` frames (of `total`, which a job of several passes may change) are finished."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif self.mode == "json":
            now = time.perf_counter()
            if now - self._last_emit >= 0.1 or done >= self.total:  # ~10 lines/s is plenty for a UI
                self._last_emit = now
                fps = done / max(now - self.start_time, 1e-9)
                emit_json("progress", stage=self.description, frame=done, total=self.total, fps=round(fps, 2))

    def message(self, text: str) -> None:
        """A line for the user: stderr on a terminal, a 'log' event in JSON mode."""
        if self.mode == "json":
            emit_json("log", message=text)
        elif self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
