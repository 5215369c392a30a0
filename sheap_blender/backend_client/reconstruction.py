"""One "Reconstruct Head" run against the warm backend, driven by polling (no bpy here).

The operator drives it from a timer in the UI (modal) or in a loop in background mode; either
way nothing blocks for long: `poll()` drains whatever events have arrived and updates the state.
The backend is kept between runs (torch and the model stay loaded); after a death or a cancel it
is dropped, and the next run starts a fresh one.
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..core.result.face_choice import face_request
from ..core.result.people_file import base_name
from .job import BackendJob
from .process import BackendError, BackendProcess

_warm: BackendProcess | None = None
_warm_lock = threading.Lock()


def warm_backend(python: str) -> BackendProcess:
    """The running backend for this interpreter path, started if needed (waits while torch loads)."""
    global _warm
    with _warm_lock:  # held only to spawn: a cancel must be able to kill a backend that is starting
        if _warm is not None and (not _warm.alive or os.fspath(_warm.python) != os.fspath(python)):
            _warm.kill()
            _warm = None
        if _warm is None:
            _warm = BackendProcess(python)
        backend = _warm
    backend.wait_ready()
    return backend


def drop_backend(now: bool = False) -> None:
    """Stop the warm backend: politely, or at once (`now`) after a failure or a cancel."""
    global _warm
    with _warm_lock:
        backend, _warm = _warm, None
    if backend is None:
        return
    if now:
        backend.kill()
    else:
        backend.close()


def current_backend() -> BackendProcess | None:
    return _warm


@dataclass
class Request:
    footage: str
    output: str
    flame: str
    weights: str
    backend_python: str
    device: str = "auto"
    precision: str = "auto"  # the network's: auto, fp32, bf16 or fp16 (the backend's "precision")
    start: int = 0
    end: int | None = None
    batch_size: int = 16
    smooth: float = 0.0
    smooth_groups: dict[str, float] = field(default_factory=dict)
    gaussians: bool = False  # also bind Gaussians to the head, coloured from the footage
    gaussian_count: int = 60_000
    face: tuple[float, float] | None = None  # the point to follow, from the frame's top-left; None: largest face
    people: str | int | None = None  # "all": a result per person (a people file); N: follow person N; None: one face
    people_file: str | None = None  # with N: the people file Find People wrote (the backend reads their looks)

    def fields(self) -> dict:
        """What travels to the backend (plain data only)."""
        # absolute here: the backend runs from another folder (a relative --out failed every clip of a batch)
        footage, output, flame, weights = (os.path.abspath(os.path.expanduser(path)) for path in (
            self.footage, self.output, self.flame, self.weights))
        return {"footage": footage, "output": output, "flame": flame, "weights": weights,
                "device": self.device, "precision": self.precision, "start": self.start, "end": self.end,
                "batch_size": self.batch_size,
                "smooth": self.smooth, "smooth_groups": self.smooth_groups, "gaussians": bool(self.gaussians),
                "gaussian_count": int(self.gaussian_count), "face": face_request(self.face), "people": self.people,
                "people_file": None if self.people_file is None else os.path.abspath(self.people_file)}


class Reconstruction(BackendJob):
    """`result_path` once done; with people="all", the people file (`people_path`, `count`) instead."""

    def __init__(self, request: Request):
        super().__init__(request)
        self.result_path = ""
        self._backend: BackendProcess | None = None
        self._job_id: int | None = None
        self._starter = threading.Thread(target=self._start, daemon=True)  # torch loads off the UI thread
        self._starter.start()

    def _start(self) -> None:
        try:
            backend = warm_backend(self.request.backend_python)
            self._job_id = backend.reconstruct(**self.request.fields())
            self._backend = backend
        except Exception as exc:  # noqa: BLE001 - any failure to start must end the run, never leave it "starting"
            if self.state != "cancelled":
                self.error = str(exc) if isinstance(exc, BackendError) else f"backend start failed: {exc!r}"
                self.state = "failed"
            drop_backend(now=True)

    @property
    def frame_line(self) -> str:
        """ "frame 812/2400 - 24 fps" (whatever the state: the last one stays readable once done)."""
        return f"frame {self.frame}/{self.total} - {self.fps:.0f} fps" if self.total else "reading footage..."

    @property
    def status_line(self) -> str:
        if self.state == "starting":
            return "starting the backend (loading torch and the model)..."
        if self.state == "running":
            if self.total and self.frame >= self.total and self.messages:
                return self.messages[-1]  # every frame done: the backend is finishing (e.g. the Gaussians)
            return self.frame_line
        return {"done": "done", "failed": self.error, "cancelled": "cancelled"}[self.state]

    def poll(self) -> None:
        """Take in every event that has arrived; never blocks."""
        if self.finished or self._backend is None:
            return
        self.state = "running"
        for event in self._backend.drain():
            kind = event.get("event")
            if event.get("id") not in (None, self._job_id):
                continue  # a late event of an earlier job
            if kind == "progress":
                self.frame, self.total, self.fps = event["frame"], event["total"], event["fps"]
            elif kind == "log":
                self.messages.append(event["message"])
                self.demo = self.demo or "demo weights" in event["message"]
            elif kind == "done":
                self.result_path, self.demo = event.get("result", ""), bool(event.get("demo"))
                self.people_path, self.count = event.get("people", ""), int(event.get("count", 0))
                self.state = "done"
                return
            elif kind in ("error", "cancelled"):
                self.error = event.get("message", "cancelled")
                self.state = "failed" if kind == "error" else "cancelled"
                return
            elif kind == "exited":
                self.error = self._backend.death_message(event.get("code"))
                self.state = "failed"
                drop_backend(now=True)
                return

    def wait(self, on_progress=None, interval: float = 0.05) -> None:
        self._starter.join()  # the backend is started (or failed to start) before the first poll
        super().wait(on_progress, interval)

    def cancel(self) -> None:
        """Stop now: the backend process is ended (a new one starts next run), nothing is written.

        The result file is only ever renamed into place when complete, so an earlier run's result
        there stays; what the killed backend was still writing (its temporary file) is removed.
        """
        self.state = "cancelled"
        self.error = "cancelled"
        drop_backend(now=True)
        output = Path(self.request.output)
        patterns = [f".{glob.escape(output.name)}.*.tmp"]
        if self.request.people == "all":  # each person's result and thumbnail, the people file
            base = glob.escape(base_name(output))
            patterns += [f".{base}.person*.tmp", f".{base}.people.json.*.tmp"]
        for pattern in patterns:
            for partial in output.parent.glob(pattern):
                partial.unlink(missing_ok=True)
