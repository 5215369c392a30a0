"""`python -m backend serve`: a warm backend speaking JSON lines over stdin/stdout.

Blender starts it once and keeps it: torch, the model and FLAME stay loaded between runs.
Requests (one JSON object a line on stdin):
    {"cmd": "reconstruct", "id": 1, "footage": ..., "output": ..., "flame": ..., "weights": ...,
     "device": "auto", "precision": "auto", "start": 0, "end": null, "batch_size": 16, "per_frame_shape": false,
     "smooth": 0.0, "smooth_groups": {"expression": 0.3, "jaw": 0.1}, "gaussians": false, "gaussian_count": 60000,
     "face": null, "people": null}
    (face: [x, y], fractions of the first frame from its top-left: follow the nearest person; people: "all" for a
    result per person (the done event names NAME.people.json instead of a result), or a person's number)
    {"cmd": "cancel"}   {"cmd": "ping"}   {"cmd": "quit"}
Events (one JSON object a line on stdout): ready, log, progress, done, cancelled, error, pong.
Only plain data crosses the pipe; errors travel as one line of text.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import FlameModel, load_flame
from sheap_blender.core.result.result_format import write_result

from . import __version__
from .gaussians.head import add_gaussians
from .model.precision import load_predictor, precision_line
from .model.predictor import Predictor
from .model.temporal import Smoothing
from .people_job import choose_person, reconstruct_everyone
from .pipeline import prepare_job, reconstruct
from .progress import Cancelled
from .request import BadRequest, ReconstructRequest, parse_reconstruct

PROTOCOL_VERSION = 1
MAX_LINE = 1 << 20  # characters; a request is a few hundred


class ModelCache:
    """Loaded predictors and FLAME models, keyed by file identity so an edited file reloads."""

    def __init__(self):
        self._predictors: dict[tuple, Predictor] = {}
        self._flames: dict[tuple, FlameModel] = {}

    @staticmethod
    def _key(path: Path) -> tuple:
        try:
            stat = path.stat()
        except OSError:
            return (os.fspath(path),)
        return (os.fspath(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def predictor(self, path: Path, device: torch.device, precision: str, flame: FlameModel) -> Predictor:
        """Loaded at `precision` (self-checked against this FLAME: a new FLAME checks again)."""
        key = (*self._key(path), str(device), precision, flame.source_sha256)
        if key not in self._predictors:
            self._predictors.clear()  # one model at a time: GPU memory is precious
            self._predictors[key] = load_predictor(path, device, precision, flame)
        return self._predictors[key]

    def flame(self, path: Path) -> FlameModel:
        key = self._key(path)
        if key not in self._flames:
            self._flames.clear()
            self._flames[key] = load_flame(path)
        return self._flames[key]


class Server:
    def __init__(self, stdout=None):
        self.stdout = stdout or sys.stdout
        self.cache = ModelCache()
        self.write_lock = threading.Lock()
        self.stop = threading.Event()
        self.worker: threading.Thread | None = None
        self.busy = False  # a job is running (its closing event not yet sent)

    def send(self, event: str, **fields) -> None:
        with self.write_lock:
            self.stdout.write(json.dumps({"event": event, **fields}) + "\n")
            self.stdout.flush()

    def run_job(self, job_id, request: ReconstructRequest) -> None:
        """The worker thread: one job, then always its closing event (sent once the server is free again)."""
        try:
            event, fields = self._job(job_id, request)
        except BaseException as exc:  # noqa: BLE001 - the worker must never die without a closing event
            traceback.print_exc(file=sys.stderr)
            event, fields = "error", {"message": f"backend failed: {type(exc).__name__}: {exc}".splitlines()[0][:300]}
        self.busy = False  # cleared first: a client may send the next request the moment it reads this event
        self.send(event, id=job_id, **fields)

    def _job(self, job_id, request: ReconstructRequest) -> tuple[str, dict]:
        """Run a checked reconstruct request; returns its closing event (done, cancelled or error)."""
        try:
            smoothing = Smoothing.parse(request.smooth, request.smooth_groups)
            job = prepare_job(request.footage, request.output, request.flame, request.weights, request.device,
                              request.start, request.end, request.batch_size, request.per_frame_shape,
                              smoothing, request.face, request.precision, load_predictor=self.cache.predictor,
                              load_flame=self.cache.flame)
            if job.is_demo:
                self.send("log", id=job_id, message="using demo weights (stand-ins, not SHeaP/FLAME)")
            self.send("log", id=job_id, message=f"{job.describe()}; {precision_line(job.predictor, request.precision)}")
            started = time.perf_counter()

            def on_progress(done: int, total: int) -> None:
                fps = done / max(time.perf_counter() - started, 1e-9)
                self.send("progress", id=job_id, frame=done, total=total, fps=round(fps, 2))

            def log(message: str) -> None:
                self.send("log", id=job_id, message=message)

            def finish(result, path: Path) -> None:
                if request.gaussians:
                    add_gaussians(job.flame, result, job.footage, path, request.gaussian_count,
                                  job.predictor.device, log=log, stop=self.stop)
                write_result(path, result)

            if request.people == "all":
                listing, people = reconstruct_everyone(job, request.output, finish, on_progress, self.stop, log)
                return "done", {"people": os.fspath(listing), "count": len(people), "demo": job.is_demo}
            if request.people is not None:
                choose_person(job, request.people, self.stop, request.people_file)
                log(f"following person {request.people}")
            result = reconstruct(job, on_progress=on_progress, stop=self.stop)
            finish(result, request.output)
            return "done", {"result": os.fspath(request.output), "frames": result.n_frames,
                            "invalid": int((~result.valid).sum()), "demo": result.is_demo}
        except Cancelled:
            return "cancelled", {}
        except InputError as exc:
            return "error", {"message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the client shows one line; the trace goes to stderr
            traceback.print_exc(file=sys.stderr)
            return "error", {"message": f"backend failed: {type(exc).__name__}: {exc}".splitlines()[0][:300]}

    def handle(self, request: dict) -> bool:
        """Act on one request; False when the server should exit. Every request but quit gets an answer."""
        command = request.get("cmd")
        job_id = request.get("id")
        if not (job_id is None or isinstance(job_id, str | int) and not isinstance(job_id, bool)):
            self.send("error", message="bad request: id must be a number or a string")
            return True
        if command == "reconstruct":
            if self.busy:
                self.send("error", id=job_id, message="busy: a reconstruction is already running")
                return True
            try:
                checked = parse_reconstruct(request)
            except BadRequest as exc:
                self.send("error", id=job_id, message=f"bad request: {exc}")
                return True
            self.stop.clear()
            self.busy = True
            self.worker = threading.Thread(target=self.run_job, args=(job_id, checked), daemon=True)
            self.worker.start()
        elif command == "cancel":
            if self.busy:
                self.stop.set()  # answered by the job's closing event
            else:
                self.send("log", message="nothing to cancel")
        elif command == "ping":
            self.send("pong", busy=self.busy)
        elif command == "quit":
            return False
        else:
            self.send("error", id=job_id, message=f"unknown request {str(command)[:40]!r}")
        return True

    def serve(self, stdin=None) -> None:
        self.send("ready", version=__version__, protocol=PROTOCOL_VERSION, pid=os.getpid(),
                  cuda=torch.cuda.is_available())
        for line in stdin or sys.stdin:
            if not line.strip():
                continue
            request, problem = parse_line(line)
            if problem:
                self.send("error", message=problem)
                continue
            try:
                if not self.handle(request):
                    break
            except Exception as exc:  # noqa: BLE001 - one bad line must never end the server
                traceback.print_exc(file=sys.stderr)
                self.send("error", message=f"bad request: {type(exc).__name__}: {exc}".splitlines()[0][:300])
        # stdin closed (Blender went away) or quit: stop any job and leave
        self.stop.set()
        if self.worker is not None:
            self.worker.join(timeout=5)


def parse_line(line: str) -> tuple[dict, str | None]:
    """(request, None), or ({}, the one-line reason the line is not a request)."""
    if len(line) > MAX_LINE:
        return {}, f"request is too long ({len(line)} characters; at most {MAX_LINE})"
    try:
        request = json.loads(line)
    except json.JSONDecodeError:
        return {}, "request is not JSON"
    except RecursionError:
        return {}, "request is nested too deeply"
    if not isinstance(request, dict):
        return {}, f"request must be a JSON object, not {type(request).__name__}"
    return request, None
