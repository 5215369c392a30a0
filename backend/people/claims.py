"""One face, one person: after each person's pass, a face that two people's results both hold goes to one.

Each person is followed on their own (`reconstruct --people all`), their gallery against everyone
else's, so two passes rarely take one face; a follow between two checks by recognition, or a face
too small to recognise, still can. Two results hold the same face on a frame when their crop boxes
overlap by more than `SAME_FACE` (intersection over union). For each run of such frames the face is
described on the run's middle frame and goes to the person whose looks it is nearer
(`Identity.distance`); the other person's result loses those frames (gaps: `valid` 0, filled from
the frames of their own segment, never from the face they lost). A face that cannot be described
there goes to the person whose pass had recognised it; when both or neither had, to the person found
first (the lower number).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sheap_blender.core.flame.params import POSE_KEYS
from sheap_blender.core.result.result_format import Result

from ..faces.landmarks import Landmarker
from ..footage.reader import Footage
from ..identity.gallery import Embed, Identity, recognisable
from ..model.temporal import fill_segments

SAME_FACE = 0.5  # crop boxes overlapping by more than this (IoU) on one frame are one face


@dataclass
class Claim:
    """The frames one person's result holds a face on: its crop boxes, and which were recognised."""

    number: int
    identity: Identity
    boxes: np.ndarray  # (F, 4) x0, y0, x1, y1 footage pixels
    valid: np.ndarray  # (F,) bool
    identified: np.ndarray  # (F,) bool

    @classmethod
    def of(cls, number: int, identity: Identity, result: Result) -> Claim:
        return cls(number, identity, result.params["crop_box"].astype(np.float64), result.valid.copy(),
                   result.extra["identified"].astype(bool))


def overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F,) intersection over union of two (F, 4) box arrays, frame by frame."""
    low, high = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=1)
    union = np.prod(a[:, 2:] - a[:, :2], axis=1) + np.prod(b[:, 2:] - b[:, :2], axis=1) - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-9), 0.0)


def runs(frames: np.ndarray) -> list[np.ndarray]:
    """Sorted frame positions split into runs of consecutive ones."""
    return np.split(frames, np.flatnonzero(np.diff(frames) != 1) + 1) if len(frames) else []


def contested(claims: list[Claim]) -> list[tuple[Claim, Claim, np.ndarray]]:
    """(a, b, run of frame positions) where a's and b's results hold one face."""
    found = []
    for i, a in enumerate(claims):
        for b in claims[i + 1:]:
            both = a.valid & b.valid
            same = np.flatnonzero(both & (overlap(a.boxes, b.boxes) > SAME_FACE))
            found += [(a, b, run) for run in runs(same)]
    return found


def settle(footage: Footage, start: int, claims: list[Claim], embed: Embed) -> dict[int, np.ndarray]:
    """Person number -> (F,) bool: the frames their result must give up (a face nearer somebody else)."""
    lost = {claim.number: np.zeros(len(claim.valid), bool) for claim in claims}
    disputes = contested(claims)
    if not disputes:
        return lost
    middles = [int(run[len(run) // 2]) for _, _, run in disputes]
    frames = footage.read_frames([start + middle for middle in middles])
    landmarker = Landmarker()
    try:
        for (a, b, run), middle in zip(disputes, middles):
            loser = _loser(a, b, middle, frames[start + middle], landmarker, embed)
            lost[loser.number][run] = True
    finally:
        landmarker.close()
    return lost


def _loser(a: Claim, b: Claim, at: int, rgb: np.ndarray, landmarker: Landmarker, embed: Embed) -> Claim:
    box = (a.boxes[at] + b.boxes[at]) / 2
    centre = (box[:2] + box[2:]) / 2
    faces = [face for face in landmarker.in_region(rgb, box) if recognisable(face)]
    if faces:
        face = min(faces, key=lambda face: float(np.linalg.norm(face.centre - centre)))
        descriptor = embed(rgb, [face])
        far_a, far_b = float(a.identity.distance(descriptor)[0]), float(b.identity.distance(descriptor)[0])
        if far_a != far_b:
            return b if far_a < far_b else a
    if a.identified[at] != b.identified[at]:
        return b if a.identified[at] else a
    return b if a.number < b.number else a


def give_up(result: Result, frames: np.ndarray) -> Result:
    """The result without the face on `frames` (bool): gaps there, filled from the rest of each segment."""
    valid = result.valid & ~frames
    segments = result.extra["segment"]
    for name, value in result.params.items():
        if name != "shape":  # one identity for the clip: unchanged
            result.params[name] = fill_segments(value, valid, segments, rotation=name in POSE_KEYS)
    identified = result.extra["identified"]
    result.extra["identified"] = np.where(frames, 0, identified).astype(identified.dtype)
    result.extra["confidence"] = np.where(frames, 0, result.extra["confidence"]).astype(np.float32)
    result.valid = valid
    return result
