"""What an animator adjusts on a take before it is keyed, as vectorised NumPy over (frames, channels):
retiming to the scene's rate, frames without a face, a neutral pose, per-channel gain, offset and smoothing.

The order `Controls.apply` follows: gaps are filled first (so nothing after sees the solve's values of a
frame without a face), the neutral pose is subtracted, gain and offset scale, values are clipped to their
range, then smoothed (a Gaussian in scene frames, per channel; values stay in range).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GAP_POLICIES = ("HOLD", "NEUTRAL", "INTERPOLATE")


def retime(n_rows: int, clip_fps: float, scene_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows at `clip_fps` on whole scene frames at `scene_fps`, the clip's speed kept.

    Returns (k,) scene frame offsets 0, 1, ... (the clip's length in seconds, within a frame) and (k,)
    the fractional row each one reads.
    """
    if n_rows < 1 or not (clip_fps > 0 and scene_fps > 0):
        raise ValueError(f"cannot retime {n_rows} rows from {clip_fps} to {scene_fps} fps")
    last = (n_rows - 1) * scene_fps / clip_fps
    offsets = np.arange(int(np.floor(last + 1e-9)) + 1, dtype=np.float64)
    return offsets, np.minimum(offsets * clip_fps / scene_fps, n_rows - 1)


def sample_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(F, C) values read at (K,) fractional rows, linearly between the two rows around each."""
    below = np.clip(np.floor(rows).astype(np.int64), 0, len(values) - 1)
    above = np.minimum(below + 1, len(values) - 1)
    t = (rows - below)[:, None]
    return values[below] * (1.0 - t) + values[above] * t


def sample_valid(valid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(F,) a face per row read at (K,) fractional rows: valid where the nearest row is."""
    return np.asarray(valid, dtype=bool)[np.clip(np.rint(rows).astype(np.int64), 0, len(valid) - 1)]


def fill_gaps(values: np.ndarray, valid: np.ndarray, policy: str, neutral: np.ndarray) -> np.ndarray:
    """(F, C) values with the rows without a face (valid False) replaced as `policy` says.

    HOLD: the last row with a face (the first one for leading rows); NEUTRAL: `neutral` (C,);
    INTERPOLATE: linearly between the rows with a face around (held at the ends). No face at all: neutral.
    """
    if policy not in GAP_POLICIES:
        raise ValueError(f"gap policy {policy!r}: expected one of {GAP_POLICIES}")
    valid = np.asarray(valid, dtype=bool)
    out = np.array(values, dtype=np.float64, copy=True)
    if valid.all():
        return out
    good = np.flatnonzero(valid)
    if good.size == 0 or policy == "NEUTRAL":
        out[~valid] = neutral
        return out
    rows = np.arange(len(valid))
    if policy == "HOLD":
        last = np.maximum.accumulate(np.where(valid, rows, -1))
        source = np.where(last >= 0, last, good[0])
        return out[source]
    after = np.clip(np.searchsorted(good, rows), 1, len(good) - 1) if len(good) > 1 else np.zeros_like(rows)
    before = np.maximum(after - 1, 0)
    lo, hi = good[before], good[after]
    t = np.where(hi > lo, np.clip((rows - lo) / np.maximum(hi - lo, 1), 0.0, 1.0), 0.0)[:, None]
    filled = out[lo] * (1.0 - t) + out[hi] * t
    return np.where(valid[:, None], out, filled)


def gaussian_smooth(values: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(F, C) values, each column smoothed by a Gaussian of `sigma[c]` frames (0: unchanged), ends held."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (values.shape[1],))
    out = np.array(values, dtype=np.float64, copy=True)
    for width in np.unique(sigma[sigma > 0]):  # one convolution per distinct width, all its columns at once
        columns = np.flatnonzero(sigma == width)
        radius = int(np.ceil(3.0 * width))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / width) ** 2)
        kernel /= kernel.sum()
        padded = np.pad(values[:, columns], ((radius, radius), (0, 0)), mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=0)  # (F, n, K)
        out[:, columns] = windows @ kernel
    return out


@dataclass
class Controls:
    """An animator's adjustments for C channels (defaults: none)."""

    gain: np.ndarray  # (C,)
    offset: np.ndarray  # (C,)
    smoothing: np.ndarray  # (C,) Gaussian sigma in scene frames, 0: none
    lower: np.ndarray  # (C,) the channel's range after gain and offset
    upper: np.ndarray
    gap_policy: str = "HOLD"
    neutral_rows: tuple[int, int] | None = None  # first and last row (inclusive) of the neutral pose
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def none(cls, n_channels: int, lower: float = -np.inf, upper: float = np.inf) -> Controls:
        return cls(gain=np.ones(n_channels), offset=np.zeros(n_channels), smoothing=np.zeros(n_channels),
                   lower=np.full(n_channels, lower), upper=np.full(n_channels, upper))

    def neutral(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(C,) the mean of the neutral rows that have a face (zeros when no neutral pose is chosen)."""
        if self.neutral_rows is None:
            return np.zeros(values.shape[1])
        first, last = self.neutral_rows
        rows = np.arange(max(first, 0), min(last, len(values) - 1) + 1)
        rows = rows[np.asarray(valid, dtype=bool)[rows]] if rows.size else rows
        if rows.size == 0:
            raise ValueError("the neutral frames are outside the take or have no face")
        return values[rows].mean(axis=0)

    def apply(self, values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """(F, C) values -> the values to key."""
        valid = np.ones(len(values), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        neutral = self.neutral(values, valid)
        out = fill_gaps(values, valid, self.gap_policy, neutral) - neutral
        # only an adjusted channel (neutral, gain, offset) is held to its range: an untouched one keeps the take's
        # values as they are (Live Link Face writes blinks and looks a little over 1)
        adjusted = (self.gain != 1.0) | (self.offset != 0.0) | (neutral != 0.0)
        out = np.where(adjusted, np.clip(out * self.gain + self.offset, self.lower, self.upper), out)
        return gaussian_smooth(out, self.smoothing)
