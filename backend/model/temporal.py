"""Temporal clean-up of per-frame predictions: outliers, gaps, zero-lag smoothing, one identity.

Offline clips are known whole, so every filter here looks both ways (no lag). Rotations are
handled as rotations: unit quaternions made sign-continuous, so nothing flips near +/- pi and
axis-angle vectors are never averaged raw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation, Slerp

from sheap_blender.core.flame.params import POSE_KEYS
from sheap_blender.core.result.result_format import SMOOTHING_GROUPS
from sheap_blender.core.rotation import make_continuous

GROUPS = SMOOTHING_GROUPS  # smoothing groups -> the result tensors they cover
MAX_SIGMA_FRAMES_AT_30FPS = 4.0  # strength 1 -> a Gaussian of this many frames at 30 fps
COLUMN_BLOCK = 32  # columns (coefficients) worked on at once where the whole clip's rows are: bounded scratch


@dataclass
class Smoothing:
    """Strength 0 (off: the raw prediction) .. 1 (strongest), overall and per group."""

    strength: float = 0.0
    groups: dict[str, float] = field(default_factory=dict)

    def for_group(self, group: str) -> float:
        return float(np.clip(self.groups.get(group, self.strength), 0.0, 1.0))

    @classmethod
    def parse(cls, strength: float, groups: dict[str, float] | None = None) -> Smoothing:
        unknown = set(groups or {}) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown smoothing group(s) {', '.join(sorted(unknown))}; known: {', '.join(GROUPS)}")
        return cls(float(strength), dict(groups or {}))


def sigma_frames(strength: float, fps: float) -> float:
    """Gaussian width in frames for a strength, the same width in seconds at any frame rate."""
    return strength * MAX_SIGMA_FRAMES_AT_30FPS * fps / 30.0


def quaternions_from_axis_angle(axis_angle: np.ndarray) -> np.ndarray:
    """(F, 3) -> (F, 4) xyzw unit quaternions, signs chosen so neighbours never jump to -q (the rig's rule)."""
    return make_continuous(Rotation.from_rotvec(axis_angle.astype(np.float64)).as_quat())


def axis_angle_from_quaternions(quats: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(quats / np.linalg.norm(quats, axis=1, keepdims=True)).as_rotvec()


def fill_gaps(values: np.ndarray, valid: np.ndarray, rotation: bool = False) -> np.ndarray:
    """Values of invalid frames from their valid neighbours: linear, or slerp for axis-angle rows."""
    if valid.all() or not valid.any():
        return values
    frames = np.arange(len(valid))
    known = frames[valid]
    missing = frames[~valid]
    query = np.clip(missing, known[0], known[-1])  # held at the ends
    if rotation and len(known) == 1:
        return np.repeat(values[known], len(frames), axis=0).astype(values.dtype)
    filled = values.copy()
    if rotation:
        slerp = Slerp(known, Rotation.from_rotvec(values[valid].astype(np.float64)))
        filled[missing] = slerp(query).as_rotvec()
        return filled
    # linear: each missing frame between its nearest valid neighbours on either side; the missing rows alone,
    # COLUMN_BLOCK columns at a time (over a long clip's every row, the temporaries were its pass's memory peak)
    right = known[np.clip(np.searchsorted(known, query), 0, len(known) - 1)]
    left = known[np.clip(np.searchsorted(known, query, side="right") - 1, 0, len(known) - 1)]
    t = ((query - left) / np.maximum(right - left, 1))[:, None]
    for first in range(0, values.shape[1], COLUMN_BLOCK):
        columns = slice(first, first + COLUMN_BLOCK)
        filled[missing, columns] = ((1 - t) * values[left, columns] + t * values[right, columns]).astype(values.dtype)
    return filled


def find_outliers(values: np.ndarray, valid: np.ndarray, threshold: float = 4.0) -> np.ndarray:
    """Frames whose row jumps away from BOTH neighbours, who agree with each other (a one-frame spike).

    A frame is an outlier when its distance to the mean of its two neighbours is `threshold` times
    larger than the neighbours' distance to each other plus the clip's typical frame-to-frame step.
    """
    n = len(values)
    outliers = np.zeros(n, dtype=bool)
    if n < 3:
        return outliers
    prev, cur, nxt = values[:-2], values[1:-1], values[2:]
    jump = np.linalg.norm(cur - (prev + nxt) / 2, axis=1)
    neighbours = np.linalg.norm(nxt - prev, axis=1)
    typical = np.median(np.linalg.norm(np.diff(values[valid], axis=0), axis=1)) if valid.sum() > 2 else 0.0
    spike = jump > threshold * (neighbours / 2 + typical + 1e-9)
    outliers[1:-1] = spike & valid[:-2] & valid[2:]
    return outliers


def smooth(values: np.ndarray, sigma: float, rotation: bool = False) -> np.ndarray:
    """Zero-phase Gaussian smoothing along frames; rotations through sign-continuous quaternions."""
    if sigma <= 0 or len(values) < 2:
        return values
    if rotation:
        quats = gaussian_filter1d(quaternions_from_axis_angle(values), sigma, axis=0, mode="nearest")
        return axis_angle_from_quaternions(quats).astype(values.dtype)
    return gaussian_filter1d(values.astype(np.float64), sigma, axis=0, mode="nearest").astype(values.dtype)


def segment_slices(segments: np.ndarray) -> list[slice]:
    """The frames of each segment (segments are numbered in order: each a run of equal numbers)."""
    edges = np.flatnonzero(np.diff(segments)) + 1
    bounds = np.concatenate([[0], edges, [len(segments)]])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def fill_segments(values: np.ndarray, valid: np.ndarray, segments: np.ndarray | None = None,
                  rotation: bool = False) -> np.ndarray:
    """Frames without a face filled from their own segment's frames (held at its ends), never across a cut.

    A segment with no face at all takes its values from the nearest segments that have one.
    """
    if segments is None:
        return fill_gaps(values, valid, rotation)
    out = values.copy()
    filled = np.zeros(len(valid), dtype=bool)
    for part in segment_slices(segments):
        if valid[part].any():
            out[part] = fill_gaps(values[part], valid[part], rotation)
            filled[part] = True
    return fill_gaps(out, filled, rotation)


def clean_params(params: dict[str, np.ndarray], valid: np.ndarray, smoothing: Smoothing, fps: float,
                 segments: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Gaps filled (slerp for rotations), and where a group is smoothed (strength > 0) its one-frame
    spikes replaced and its values smoothed; each segment on its own. Returns (params, outlier mask).

    At strength 0 every frame with a face keeps its raw prediction (a real one-frame blink or jaw snap stays).
    """
    segments = np.zeros(len(valid), dtype=np.int32) if segments is None else np.asarray(segments)
    out = {name: np.array(value, copy=True) for name, value in params.items()}
    outliers = np.zeros(len(valid), dtype=bool)
    grouped = {name: group for group, names in GROUPS.items() for name in names}
    covered = np.zeros(len(valid), dtype=bool)  # frames of segments with a face
    for part in segment_slices(segments):
        if not valid[part].any():
            continue
        covered[part] = True
        for name, value in params.items():
            group = grouped.get(name)
            rotation = name in POSE_KEYS
            sigma = sigma_frames(smoothing.for_group(group), fps) if group else 0.0
            usable = valid[part]
            if sigma > 0:  # spikes judged per tensor: a jaw spike says nothing of the eyelids
                spikes = find_outliers(value[part], usable)
                outliers[part] |= spikes
                usable = usable & ~spikes
            out[name][part] = smooth(fill_gaps(value[part], usable, rotation), sigma, rotation)
    for name, value in out.items():  # whole segments without a face: from the nearest ones with a face
        out[name] = fill_gaps(value, covered, name in POSE_KEYS)
    return out, outliers


def aggregate_identity(shape: np.ndarray, valid: np.ndarray, confidence: np.ndarray, head_pose: np.ndarray,
                       trim: float = 0.2) -> np.ndarray:
    """One identity for the clip: a per-coefficient trimmed mean, weighted by confidence and frontality.

    Frames with a face count; each weighs its tracking confidence times how frontal the head is
    (cosine of the head's rotation angle); per coefficient, the `trim` fraction of weight at each
    extreme is dropped, so a few bad frames cannot pull the identity.
    """
    frontal = np.clip(np.cos(np.linalg.norm(head_pose, axis=1)), 0.05, 1.0)
    weights = np.where(valid, np.maximum(confidence, 1e-3) * frontal, 0.0)
    if weights.sum() <= 0:
        weights = np.ones(len(shape))
    # A frame of weight 0 adds nothing to any sum below, so only the others are sorted; and COLUMN_BLOCK
    # coefficients at a time: the sorting's scratch over a long clip's every frame was its pass's memory peak.
    counted = weights > 0
    shape, weights = shape[counted], weights[counted]
    identity = np.empty(shape.shape[1], np.float64)
    for first in range(0, shape.shape[1], COLUMN_BLOCK):
        columns = shape[:, first:first + COLUMN_BLOCK]
        order = np.argsort(columns, axis=0)  # per coefficient
        sorted_values = np.take_along_axis(columns, order, axis=0)
        sorted_weights = weights[order]
        cumulative = np.cumsum(sorted_weights, axis=0) / sorted_weights.sum(axis=0)
        before = cumulative - sorted_weights / sorted_weights.sum(axis=0)
        keep = (cumulative > trim) & (before < 1 - trim)  # the middle of the weight distribution
        kept_weights = np.where(keep, sorted_weights, 0.0)
        identity[first:first + COLUMN_BLOCK] = (kept_weights * sorted_values).sum(axis=0) / kept_weights.sum(axis=0)
    return identity
