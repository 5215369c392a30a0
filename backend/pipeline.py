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

from sheap_blender.core.atomic_file import check_output
from sheap_blender.core.camera import SHEAP_FOV_DEG
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import FlameModel, load_flame
from sheap_blender.core.result.face_choice import face_point
from sheap_blender.core.result.result_format import PER_FRAME, Result

from . import __version__
from .faces.crop import BoxSmoother, box_from_landmarks, crop_image
from .faces.search import MIN_FACE_PX
from .footage.reader import Footage, open_footage
from .identity.gallery import Embed, Identity
from .model.precision import load_predictor as load_at_precision
from .model.precision import precision_metadata, resolve_precision
from .model.predictor import CROP_SIZE, Predictor, resolve_device
from .model.temporal import Smoothing, aggregate_identity, clean_params, fill_segments
from .people.find_people import Person
from .people.tracker import FaceTracker
from .progress import Cancelled

_END = object()
DECODED_BYTES = 256 * 2**20  # decoded frames held ahead of the tracker, at most


@dataclass
class Frame:
    index: int
    box: np.ndarray | None  # (4,) x0, y0, x1, y1; None without a face
    crop: np.ndarray | None  # (3, 224, 224) float32; None without a face
    confidence: float  # the face detector's score (0 without a face)
    segment: int  # a new one after each cut and each gap (docs/result-format.md)
    cut: bool  # a hard cut was detected on this frame
    identified: bool = False  # surely the chosen person's face (faces.tracker.TrackedFrame.identified)

    @property
    def valid(self) -> bool:
        return self.box is not None


@dataclass
class FollowedFace:
    """Which face the tracker followed: how it was chosen, and where it was at the frame it was chosen."""

    rule: str = "largest"  # or "point", or "person" (one of the people `find_people` found)
    point: tuple[float, float] | None = None  # fractions of the frame from its top-left corner
    person: int | None = None  # the person's number (rule "person")
    identity: Identity | None = None  # the person's looks (rule "person")
    others: list[Identity] = field(default_factory=list)  # everyone else's looks: a face nearer theirs is not ours
    frame: int | None = None
    box: list[float] | None = None  # x0, y0, x1, y1 of its landmarks, footage pixels

    def as_json(self) -> str:
        return json.dumps({"rule": self.rule, "point": self.point, "person": self.person, "frame": self.frame,
                           "box": self.box})


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


def iterate_crops(footage: Footage, start: int, end: int | None, cancel: threading.Event,
                  followed: FollowedFace | None = None, queue_size: int = 32, embed: Embed | None = None
                  ) -> Iterator[Frame]:
    """Decode and track in two background threads; yield each frame in order (its crop when it has a face).

    `cancel` is only read here (Cancelled is raised when it is set), never set: it stays the
    caller's to mean "the user cancelled". `followed` says which face to follow (its `point` or
    `identity`) and is filled in with the face chosen. `embed` describes faces for recognition (the
    face-recognition network, loaded when first needed, by default).
    """
    followed = followed if followed is not None else FollowedFace()
    finished = threading.Event()
    stop = _EitherEvent(cancel, finished)
    # decoded frames waiting for the tracker: at most DECODED_BYTES of them (32 frames of 4K would be 800 MB)
    frame_bytes = max(footage.width * footage.height * 3, 1)
    decoded: queue.Queue = queue.Queue(maxsize=max(4, min(queue_size, DECODED_BYTES // frame_bytes)))
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
                index, rgb, tracked = waiting.popleft()
                crop = None if box is None else crop_image(rgb, box, CROP_SIZE)
                confidence = 0.0 if tracked.detection is None else float(tracked.detection.confidence)
                _put(cropped, Frame(index, box, crop, confidence, tracked.segment, tracked.cut, tracked.identified),
                     stop)

        def smooth(results: list) -> None:
            for tracked in results:  # in frame order; the tracker may hold a few frames back
                index, rgb = untracked.popleft()
                waiting.append((index, rgb, tracked))
                box = None if tracked.detection is None else box_from_landmarks(tracked.detection.landmarks68)
                release(smoother.push(box, tracked.segment))

        untracked: deque = deque()  # frames given to the tracker, their result not out yet
        with FaceTracker(footage.fps, followed.point, identity=followed.identity, embed=embed,
                         others=followed.others) as tracker:
            for index, rgb in _drain(decoded, stop):
                untracked.append((index, rgb))
                smooth(tracker.track(rgb))
            smooth(tracker.flush())
            release(smoother.flush())
            if tracker.chosen is not None:
                followed.frame = start + tracker.chosen_frame
                landmarks = tracker.chosen.landmarks68
                followed.box = [round(float(v), 2) for v in (*landmarks.min(axis=0), *landmarks.max(axis=0))]
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
    face_point: tuple[float, float] | None = None  # follow the face nearest this point; None: the largest
    person: Person | None = None  # follow this person (found by `find_people`) instead
    others: list[Person] = field(default_factory=list)  # the other people found: their faces are not the person's
    embed: Embed | None = None  # face recognition; None: the network, loaded when first needed

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
    """Run the whole clip; `on_progress(done, total)` after every batch; `stop` cancels.

    Only frames with the face go through the model; the others are filled per segment afterwards.
    """
    stop = stop or threading.Event()
    end = job.footage.frame_count if job.end is None else job.end
    total = max(end - job.start, 0)
    frames: list[Frame] = []  # every frame, its crop dropped once predicted
    outputs: dict[str, list[np.ndarray]] = {}
    batch: list[Frame] = []
    reported = 0

    def run_batch() -> None:
        predicted = job.predictor.checked_predict(np.stack([frame.crop for frame in batch]),
                                                  [frame.index for frame in batch])
        for name, value in predicted.items():
            outputs.setdefault(name, []).append(value)
        for frame in batch:
            frame.crop = None  # predicted: keep the frame's row, not its pixels
        batch.clear()

    if job.person is not None:
        followed = FollowedFace("person", person=job.person.number, identity=job.person.identity(),
                                others=[other.identity() for other in job.others if other is not job.person])
    else:
        followed = FollowedFace("point" if job.face_point else "largest", job.face_point)
    for frame in iterate_crops(job.footage, job.start, job.end, stop, followed, embed=job.embed):
        frames.append(frame)
        if frame.valid:
            batch.append(frame)
            if len(batch) == job.batch_size:
                run_batch()
        if len(frames) - len(batch) - reported >= job.batch_size:
            reported = len(frames) - len(batch)
            on_progress(reported, total)
    if batch:
        run_batch()
    on_progress(len(frames), total)
    if stop.is_set() and len(frames) < total:
        raise Cancelled()
    if not frames:
        raise InputError(job.footage.path, "no frames in the requested range")
    valid_mask = np.array([frame.valid for frame in frames], dtype=bool)
    if not valid_mask.any() and job.person is not None:
        raise InputError(job.footage.path, f"person {job.person.number} was not found again on any frame")
    if not valid_mask.any():
        clip = job.footage
        raise InputError(clip.path, f"no face found in any frame ({clip.width}x{clip.height}; faces down to "
                                    f"{MIN_FACE_PX} px across were searched for)")
    segments = np.array([frame.segment for frame in frames], dtype=np.int32)
    per_frame = {}
    for name in list(outputs):
        predicted = np.concatenate(outputs.pop(name)).astype(np.float32)  # the chunks go as they are joined
        per_frame[name] = np.zeros((len(frames), *predicted.shape[1:]), np.float32)
        per_frame[name][valid_mask] = predicted
    boxes = np.zeros((len(frames), 4), np.float32)
    boxes[valid_mask] = np.array([frame.box for frame in frames if frame.valid], dtype=np.float32)
    confidence = np.array([frame.confidence for frame in frames], dtype=np.float32)
    known = {name: per_frame.pop(name) for name in PER_FRAME if name != "crop_box"}
    params, outliers = clean_params({**known, "crop_box": boxes}, valid_mask, job.smoothing, job.footage.fps,
                                    segments)
    identified = np.array([frame.identified for frame in frames], dtype=bool)
    if not job.per_frame_shape:
        head_pose = params["torso_pose"] + params["neck_pose"]  # small angles: the sum is the head's tilt
        trusted = valid_mask & ~outliers
        if (trusted & identified).any():  # the head's shape from the chosen person's frames, not another's
            trusted &= identified
        params["shape"][:] = aggregate_identity(params["shape"], trusted, confidence, head_pose)
    extra = {name: fill_segments(value, valid_mask, segments) for name, value in per_frame.items()}
    extra["confidence"] = confidence
    extra["outlier"] = outliers.astype(np.uint8)
    extra["segment"] = segments
    extra["identified"] = identified.astype(np.uint8)
    indices = np.array([frame.index for frame in frames], dtype=np.int64)
    metadata = {
        "footage": os.fspath(job.footage.path),
        "width": str(job.footage.width),
        "height": str(job.footage.height),
        "fps": repr(float(job.footage.fps)),
        "frame_count": str(len(frames)),
        "model_file": job.predictor.path.name,
        "model_sha256": job.predictor.sha256,
        "flame_sha256": job.flame.source_sha256,
        "fov_deg": repr(SHEAP_FOV_DEG),
        "backend_version": __version__,
        "demo": "true" if job.is_demo else "false",
        "identity": "per-frame" if job.per_frame_shape else "clip",
        "smoothing": json.dumps({"strength": job.smoothing.strength, **job.smoothing.groups}),
        "followed_face": followed.as_json(),
        "cuts": json.dumps([frame.index for frame in frames if frame.cut]),
        **precision_metadata(job.predictor),
    }
    return Result(indices, valid_mask, params, extra, metadata)


def prepare_job(footage: Path, output: Path, flame: Path, weights: Path, device: str = "auto", start: int = 0,
                end: int | None = None, batch_size: int = 16, per_frame_shape: bool = False,
                smoothing: Smoothing | None = None, face_point: tuple[float, float] | None = None,
                precision: str = "auto",
                load_predictor: Callable[[Path, torch.device, str, FlameModel], Predictor] = load_at_precision,
                load_flame: Callable[[Path], FlameModel] = load_flame) -> ReconstructJob:
    """Check everything that can be refused before the first frame is decoded, and build the job."""
    check_output(output, footage, flame, weights)  # before the work: not found only after the whole clip
    if batch_size < 1:
        raise InputError(None, f"batch size must be at least 1, not {batch_size}")
    if face_point is not None:
        face_point = check_face_point(face_point)
    clip = open_footage(footage)
    end = clip.frame_count if end is None else end
    if not 0 <= start < end <= clip.frame_count:
        raise InputError(clip.path, f"frame range {start}..{end} is outside the clip's 0..{clip.frame_count}")
    torch_device = resolve_device(device)
    resolve_precision(precision, torch_device)  # an unknown name is refused before anything loads
    model = load_flame(flame)
    predictor = load_predictor(weights, torch_device, precision, model)
    return ReconstructJob(clip, predictor, model, start, end, batch_size, per_frame_shape, smoothing or Smoothing(),
                          face_point)


def check_face_point(point) -> tuple[float, float]:
    """(x, y) fractions of the frame from its top-left corner (core.face_choice's rule), or an InputError."""
    try:
        return face_point(point)
    except ValueError as exc:
        raise InputError(None, f"face point {exc}: X and Y are fractions of the frame from 0 to 1") from None
