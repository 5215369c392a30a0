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

from sheap_blender.core.result_format import POSE_KEYS, SMOOTHING_GROUPS

GROUPS = SMOOTHING_GROUPS  # smoothing groups -> the result tensors they cover
MAX_SIGMA_FRAMES_AT_30FPS = 4.0  # strength 1 -> a Gaussian of this many frames at 30 fps


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
    """(F, 3) -> (F, 4) xyzw unit quaternions, signs chosen so neighbours never jump to -q."""
    quats = Rotation.from_rotvec(axis_angle.astype(np.float64)).as_quat()
    signs = np.ones(len(quats))
    if len(quats) > 1:
        flips = np.einsum("ij,ij->i", quats[1:], quats[:-1]) < 0
        signs[1:] = np.where(np.cumsum(flips) % 2 == 1, -1.0, 1.0)
    return quats * signs[:, None]


def axis_angle_from_quaternions(quats: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(quats / np.linalg.norm(quats, axis=1, keepdims=True)).as_rotvec()


def fill_gaps(values: np.ndarray, valid: np.ndarray, rotation: bool = False) -> np.ndarray:
    """Values of invalid frames from their valid neighbours: linear, or slerp for axis-angle rows."""
    if valid.all() or not valid.any():
        return values
    frames = np.arange(len(valid))
    known = frames[valid]
    query = np.clip(frames, known[0], known[-1])  # held at the ends
    if rotation:
        if len(known) == 1:
            return np.repeat(values[known], len(frames), axis=0).astype(values.dtype)
        slerp = Slerp(known, Rotation.from_rotvec(values[valid].astype(np.float64)))
        filled = values.copy()
        filled[~valid] = slerp(query[~valid]).as_rotvec()
        return filled
    # linear: each frame between its nearest valid neighbours on either side, all columns at once
    right = known[np.clip(np.searchsorted(known, query), 0, len(known) - 1)]
    left = known[np.clip(np.searchsorted(known, query, side="right") - 1, 0, len(known) - 1)]
    t = ((query - left) / np.maximum(right - left, 1))[:, None]
    return ((1 - t) * values[left] + t * values[right]).astype(values.dtype)


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


def clean_params(params: dict[str, np.ndarray], valid: np.ndarray, smoothing: Smoothing, fps: float
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Outliers marked, gaps filled (slerp for rotations), groups smoothed. Returns (params, outlier mask)."""
    out = dict(params)
    outliers = np.zeros(len(valid), dtype=bool)
    grouped = {name for names in GROUPS.values() for name in names}
    for name in set(params) - grouped:  # identity and anything else: gaps filled, never smoothed here
        out[name] = fill_gaps(params[name], valid)
    for group, names in GROUPS.items():
        sigma = sigma_frames(smoothing.for_group(group), fps)
        for name in names:
            rotation = name in POSE_KEYS
            spikes = find_outliers(params[name], valid)  # per tensor: a jaw spike says nothing of the eyelids
            outliers |= spikes
            filled = fill_gaps(params[name], valid & ~spikes, rotation)
            out[name] = smooth(filled, sigma, rotation)
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
    order = np.argsort(shape, axis=0)  # per coefficient
    sorted_values = np.take_along_axis(shape, order, axis=0)
    sorted_weights = weights[order]
    cumulative = np.cumsum(sorted_weights, axis=0) / sorted_weights.sum(axis=0)
    before = cumulative - sorted_weights / sorted_weights.sum(axis=0)
    keep = (cumulative > trim) & (before < 1 - trim)  # the middle of the weight distribution
    kept_weights = np.where(keep, sorted_weights, 0.0)
    return (kept_weights * sorted_values).sum(axis=0) / kept_weights.sum(axis=0)
