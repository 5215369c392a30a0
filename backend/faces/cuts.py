"""Hard cuts between shots, from how much a small thumbnail of the frame changes.

Within a shot, consecutive frames differ little (even under camera motion, a heavily downscaled
frame changes gradually); across a hard cut most of the picture changes at once. A frame is a cut
when its thumbnail differs from the previous one by more than `MIN_CHANGE` and by more than
`RELATIVE_CHANGE` times the recent typical change (so a fast pan or a flickering light, whose
frames all change a lot, does not fire on every frame).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

THUMBNAIL = (64, 36)  # width, height
MIN_CHANGE = 0.09  # mean absolute difference of the thumbnails, 0..1
RELATIVE_CHANGE = 3.0
HISTORY = 8  # frames the typical change is taken over


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A (36, 64, 3) float32 thumbnail in [0, 1]; subsampled first so that 4K costs no more than 1080p."""
    step = max(1, min(rgb.shape[0] // (4 * THUMBNAIL[1]), rgb.shape[1] // (4 * THUMBNAIL[0])))
    small = cv2.resize(rgb[::step, ::step], THUMBNAIL, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


class CutDetector:
    """Feed frames in order; `push` says whether the frame starts a new shot."""

    def __init__(self):
        self._previous: np.ndarray | None = None
        self._changes: deque[float] = deque(maxlen=HISTORY)

    def push(self, rgb: np.ndarray) -> bool:
        current = thumbnail(rgb)
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return False
        change = float(np.abs(current - previous).mean())
        typical = float(np.median(self._changes)) if self._changes else 0.0
        self._changes.append(change)
        return change > MIN_CHANGE and change > RELATIVE_CHANGE * typical
