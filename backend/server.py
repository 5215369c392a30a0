"""`python -m backend serve`: a warm backend speaking JSON lines over stdin/stdout.

Blender starts it once and keeps it: torch, the model and FLAME stay loaded between runs.
Requests (one JSON object a line on stdin):
    {"cmd": "reconstruct", "id": 1, "footage": ..., "output": ..., "flame": ..., "weights": ...,
     "device": "auto", "start": 0, "end": null, "batch_size": 16, "per_frame_shape": false,
     "smooth": 0.0, "smooth_groups": {"expression": 0.3, "jaw": 0.1}, "gaussians": false, "gaussian_count": 60000,
     "face": null}   (face: [x, y], fractions of the first frame from its top-left: follow the nearest person)
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
from sheap_blender.core.flame_model import FlameModel, load_flame
from sheap_blender.core.result_format import write_result

from . import __version__
from .gaussian_head import DEFAULT_COUNT, add_gaussians, check_count
from .pipeline import Cancelled, check_face_point, prepare_job, reconstruct
from .predictor import Predictor
from .temporal import Smoothing

PROTOCOL_VERSION = 1


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

    def predictor(self, path: Path, device: torch.device) -> Predictor:
        key = (*self._key(path), str(device))
        if key not in self._predictors:
            self._predictors.clear()  # one model at a time: GPU memory is precious
            self._predictors[key] = Predictor(path, device)
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

    def run_job(self, request: dict) -> None:
        """The worker thread: one job, then its closing event (sent once the server is free again)."""
        event, fields = self._job(request)
        self.busy = False  # cleared first: a client may send the next request the moment it reads this event
        self.send(event, id=request.get("id"), **fields)

    def _job(self, request: dict) -> tuple[str, dict]:
        """Run a reconstruct request; returns its closing event (done, cancelled or error)."""
        job_id = request.get("id")
        try:  # the request itself: a malformed one is the client's mistake, said in one line
            output = Path(request["output"])
            footage, flame, weights = Path(request["footage"]), Path(request["flame"]), Path(request["weights"])
            device, start, end = str(request.get("device", "auto")), int(request.get("start", 0)), request.get("end")
            end = None if end is None else int(end)
            batch_size = int(request.get("batch_size", 16))
            per_frame_shape = bool(request.get("per_frame_shape", False))
            smoothing = Smoothing.parse(float(request.get("smooth", 0.0)), request.get("smooth_groups") or {})
            gaussians = bool(request.get("gaussians", False))
            gaussian_count = check_count(int(request.get("gaussian_count", DEFAULT_COUNT))) if gaussians else 0
            face_point = request.get("face")
            face_point = None if face_point is None else check_face_point(face_point)
        except KeyError as exc:
            return "error", {"message": f"request lacks {exc.args[0]!r}"}
        except (TypeError, ValueError) as exc:
            return "error", {"message": f"bad request: {exc}"}
        except InputError as exc:
            return "error", {"message": str(exc)}
        try:
            job = prepare_job(footage, output, flame, weights, device, start, end, batch_size, per_frame_shape,
                              smoothing, face_point, load_predictor=self.cache.predictor, load_flame=self.cache.flame)
            if job.is_demo:
                self.send("log", id=job_id, message="using demo weights (stand-ins, not SHeaP/FLAME)")
            self.send("log", id=job_id, message=job.describe())
            started = time.perf_counter()

            def on_progress(done: int, total: int) -> None:
                fps = done / max(time.perf_counter() - started, 1e-9)
                self.send("progress", id=job_id, frame=done, total=total, fps=round(fps, 2))

            result = reconstruct(job, on_progress=on_progress, stop=self.stop)
            if gaussians:
                add_gaussians(job.flame, result, job.footage, output, gaussian_count, job.predictor.device,
                              log=lambda message: self.send("log", id=job_id, message=message), stop=self.stop)
            write_result(output, result)
            return "done", {"result": os.fspath(output.resolve()), "frames": result.n_frames,
                            "invalid": int((~result.valid).sum()), "demo": result.is_demo}
        except Cancelled:
            return "cancelled", {}
        except InputError as exc:
            return "error", {"message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the client shows one line; the trace goes to stderr
            traceback.print_exc(file=sys.stderr)
            return "error", {"message": f"backend failed: {type(exc).__name__}: {exc}".splitlines()[0]}

    def handle(self, request: dict) -> bool:
        """Act on one request; False when the server should exit."""
        command = request.get("cmd")
        if command == "reconstruct":
            if self.busy:
                self.send("error", id=request.get("id"), message="busy: a reconstruction is already running")
                return True
            self.stop.clear()
            self.busy = True
            self.worker = threading.Thread(target=self.run_job, args=(request,), daemon=True)
            self.worker.start()
        elif command == "cancel":
            self.stop.set()
        elif command == "ping":
            self.send("pong", busy=self.busy)
        elif command == "quit":
            return False
        else:
            self.send("error", message=f"unknown request {command!r}")
        return True

    def serve(self, stdin=None) -> None:
        self.send("ready", version=__version__, protocol=PROTOCOL_VERSION, pid=os.getpid(),
                  cuda=torch.cuda.is_available())
        for line in stdin or sys.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except json.JSONDecodeError:
                self.send("error", message="request is not JSON")
                continue
            if not isinstance(request, dict) or not self.handle(request):
                break
        # stdin closed (Blender went away) or quit: stop any job and leave
        self.stop.set()
        if self.worker is not None:
            self.worker.join(timeout=5)
