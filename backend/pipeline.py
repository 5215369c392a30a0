"""reconstruct: footage -> per-frame FLAME parameters, with decoding, detection and inference overlapped.

Three stages run at once, joined by small bounded queues, so the slowest stage sets the pace and
memory does not grow with the clip: a decoder thread, a detect+crop thread (MediaPipe, box
smoothing with a fixed look-ahead, 224x224 crops) and the model in the calling thread. Only the
per-frame parameters (a few KB a frame) are kept until the end.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame_model import FlameModel, load_flame
from sheap_blender.core.result_format import PER_FRAME, Result

from . import __version__
from .crop import BoxSmoother, box_from_landmarks, crop_image
from .face_tracker import FaceTracker
from .footage import Footage, open_footage
from .predictor import CROP_SIZE, Predictor, resolve_device
from .temporal import Smoothing, aggregate_identity, clean_params, fill_gaps

FOV_DEG = 14.2539  # SHeaP's camera (FACTS.md)
_END = object()


class Cancelled(Exception):
    """The caller asked the job to stop."""


@dataclass
class Frame:
    index: int
    box: np.ndarray  # (4,) x0, y0, x1, y1
    crop: np.ndarray  # (3, 224, 224) float32
    valid: bool
    confidence: float


class _EitherEvent:
    """Set when either event is: the stages stop on the caller's cancel or when their consumer is done."""

    def __init__(self, first: threading.Event, second: threading.Event):
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


def _run_stage(target: Callable[[], None], out: queue.Queue, stop: threading.Event | _EitherEvent
               ) -> threading.Thread:
    """Run `target` in a daemon thread; an exception travels down `out` to the consumer."""

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            _put(out, exc, stop)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _put(q: queue.Queue, item, stop: threading.Event | _EitherEvent) -> None:
    """Put that gives up when the job is stopped (so no thread blocks forever on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue, stop: threading.Event) -> Iterator:
    """Items of `q` until the end marker; re-raises a stage's exception."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise Cancelled() from None
            continue
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _fallback_box(width: int, height: int) -> np.ndarray:
    """A centred square for frames before any face is known (they are invalid anyway)."""
    half = min(width, height) / 2
    return np.array([width / 2 - half, height / 2 - half, width / 2 + half, height / 2 + half], dtype=np.float64)


def iterate_crops(footage: Footage, start: int, end: int | None, cancel: threading.Event,
                  queue_size: int = 32) -> Iterator[Frame]:
    """Decode and detect in two background threads; yield each frame's crop in order.

    `cancel` is only read here (Cancelled is raised when it is set), never set: it stays the
    caller's to mean "the user cancelled".
    """
    finished = threading.Event()
    stop = _EitherEvent(cancel, finished)
    decoded: queue.Queue = queue.Queue(maxsize=queue_size)
    cropped: queue.Queue = queue.Queue(maxsize=queue_size)

    def decode() -> None:
        for item in footage.frames(start, end):
            if stop.is_set():
                return
            _put(decoded, item, stop)
        _put(decoded, _END, stop)

    def detect() -> None:
        smoother = BoxSmoother()
        waiting: deque = deque()  # frames whose smoothed box needs look-ahead still

        def release(boxes) -> None:
            for box in boxes:
                index, rgb, detection = waiting.popleft()
                if box is None:
                    box = _fallback_box(footage.width, footage.height)
                box = np.asarray(box, dtype=np.float64)
                _put(cropped, Frame(index, box, crop_image(rgb, box, CROP_SIZE), detection is not None,
                                    0.0 if detection is None else float(detection.confidence)), stop)

        with FaceTracker() as tracker:
            for index, rgb in _drain(decoded, stop):
                detection = tracker.track(rgb)
                waiting.append((index, rgb, detection))
                release(smoother.push(None if detection is None else box_from_landmarks(detection.landmarks68)))
            release(smoother.flush())
        _put(cropped, _END, stop)

    threads = [_run_stage(decode, decoded, stop), _run_stage(detect, cropped, stop)]
    try:
        yield from _drain(cropped, cancel)
    finally:
        finished.set()
        for thread in threads:
            thread.join(timeout=5)


@dataclass
class ReconstructJob:
    footage: Footage
    predictor: Predictor
    flame: FlameModel
    start: int = 0
    end: int | None = None
    batch_size: int = 16
    per_frame_shape: bool = False
    smoothing: Smoothing = field(default_factory=Smoothing)

    @property
    def is_demo(self) -> bool:
        """Stand-ins in use (demo weights or the demo FLAME): every report must say so."""
        return self.predictor.is_demo or getattr(self.flame, "is_demo", False)

    def describe(self) -> str:
        clip = self.footage
        return (f"{clip.path.name}: {self.end - self.start} frames {clip.width}x{clip.height} @ {clip.fps:g} fps "
                f"on {self.predictor.device.type}")


def reconstruct(job: ReconstructJob, on_progress: Callable[[int, int], None] = lambda done, total: None,
                stop: threading.Event | None = None) -> Result:
    """Run the whole clip; `on_progress(done, total)` after every batch; `stop` cancels."""
    stop = stop or threading.Event()
    end = job.footage.frame_count if job.end is None else job.end
    total = max(end - job.start, 0)
    indices, boxes, valid, confidence = [], [], [], []
    outputs: dict[str, list[np.ndarray]] = {}
    batch: list[Frame] = []

    def run_batch() -> None:
        predicted = job.predictor.predict(np.stack([frame.crop for frame in batch]))
        for name, value in predicted.items():
            outputs.setdefault(name, []).append(value)
        for frame in batch:
            indices.append(frame.index)
            boxes.append(frame.box)
            valid.append(frame.valid)
            confidence.append(frame.confidence)
        batch.clear()
        on_progress(len(indices), total)

    for frame in iterate_crops(job.footage, job.start, job.end, stop):
        batch.append(frame)
        if len(batch) == job.batch_size:
            run_batch()
    if batch:
        run_batch()
    if stop.is_set() and len(indices) < total:
        raise Cancelled()
    if not indices:
        raise InputError(job.footage.path, "no frames in the requested range")
    valid_mask = np.array(valid, dtype=bool)
    if not valid_mask.any():
        raise InputError(job.footage.path, "no face found in any frame")

    per_frame = {name: np.concatenate(chunks).astype(np.float32) for name, chunks in outputs.items()}
    confidence_arr = np.array(confidence, dtype=np.float32)
    known = {name: per_frame.pop(name) for name in PER_FRAME if name != "crop_box"}
    params, outliers = clean_params(known, valid_mask, job.smoothing, job.footage.fps)
    params["crop_box"] = fill_gaps(np.array(boxes, dtype=np.float32), valid_mask)
    if not job.per_frame_shape:
        head_pose = params["torso_pose"] + params["neck_pose"]  # small angles: the sum is the head's tilt
        params["shape"][:] = aggregate_identity(params["shape"], valid_mask & ~outliers, confidence_arr, head_pose)
    extra = {name: fill_gaps(value, valid_mask) for name, value in per_frame.items()}
    extra["confidence"] = confidence_arr
    extra["outlier"] = outliers.astype(np.uint8)
    metadata = {
        "footage": os.fspath(job.footage.path),
        "width": str(job.footage.width),
        "height": str(job.footage.height),
        "fps": repr(float(job.footage.fps)),
        "frame_count": str(len(indices)),
        "model_file": job.predictor.path.name,
        "model_sha256": job.predictor.sha256,
        "flame_sha256": job.flame.source_sha256,
        "fov_deg": repr(FOV_DEG),
        "backend_version": __version__,
        "demo": "true" if job.is_demo else "false",
        "identity": "per-frame" if job.per_frame_shape else "clip",
        "smoothing": json.dumps({"strength": job.smoothing.strength, **job.smoothing.groups}),
    }
    return Result(np.array(indices, dtype=np.int64), valid_mask, params, extra, metadata)


def prepare_job(footage: Path, output: Path, flame: Path, weights: Path, device: str = "auto", start: int = 0,
                end: int | None = None, batch_size: int = 16, per_frame_shape: bool = False,
                smoothing: Smoothing | None = None,
                load_predictor: Callable[[Path, torch.device], Predictor] = Predictor,
                load_flame: Callable[[Path], FlameModel] = load_flame) -> ReconstructJob:
    """Check everything that can be refused before the first frame is decoded, and build the job."""
    if not output.parent.is_dir():
        raise InputError(output, f"output folder {output.parent} does not exist")
    if batch_size < 1:
        raise InputError(None, f"batch size must be at least 1, not {batch_size}")
    clip = open_footage(footage)
    end = clip.frame_count if end is None else end
    if not 0 <= start < end <= clip.frame_count:
        raise InputError(clip.path, f"frame range {start}..{end} is outside the clip's 0..{clip.frame_count}")
    model = load_flame(flame)
    predictor = load_predictor(weights, resolve_device(device))
    return ReconstructJob(clip, predictor, model, start, end, batch_size, per_frame_shape, smoothing or Smoothing())
