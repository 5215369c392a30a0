"""The head crop SHeaP expects: a square box from the face landmarks, smoothed without lag, 224 x 224.

Box (the release's video demo): centred on the landmarks' extent, half-size = half the larger
extent, centre moved up by 0.5 x half-size, then half-size x 1.9. Unlike the release, the box is
never clamped to the image: the model's camera assumes the crop IS the box, so parts outside the
frame are padded black instead of shifting or shrinking the box.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from sheap_blender.core.camera import CROP_SIZE

CENTRE_SHIFT_UP = 0.5
SCALE = 1.9


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) landmark pixels -> (4,) x0, y0, x1, y1 of the square crop box."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (low + high) / 2
    half = (high - low).max() / 2
    centre[1] -= CENTRE_SHIFT_UP * half
    half *= SCALE
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def crop_region(rgb: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The square `box` of an RGB uint8 frame resampled to a (size, size, 3) uint8 image, black outside the frame.

    Exact mapping: crop pixel u (pixel i spans [i, i+1]) shows footage x0 + u * (x1 - x0) / size.
    Downscaling is antialiased by a Gaussian pre-blur matched to the scale (on the box only).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = (x1 - x0) / size  # footage pixels per crop pixel
    height, width = rgb.shape[:2]
    sigma = 0.5 * np.sqrt(max(scale * scale - 1.0, 0.0))
    margin = int(np.ceil(3 * sigma)) + 2
    left, top = max(int(np.floor(x0)) - margin, 0), max(int(np.floor(y0)) - margin, 0)
    right, bottom = min(int(np.ceil(x1)) + margin, width), min(int(np.ceil(y1)) + margin, height)
    if right <= left or bottom <= top:  # the box lies wholly outside the frame
        return np.zeros((size, size, 3), np.uint8)
    region = rgb[top:bottom, left:right]
    if sigma > 0.3:
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    # OpenCV puts pixel centres at integers: source x_cv = x0 + (j + 0.5) * scale - 0.5, minus the region's origin
    matrix = np.array([[scale, 0.0, x0 + 0.5 * scale - 0.5 - left],
                       [0.0, scale, y0 + 0.5 * scale - 0.5 - top]])
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_image(rgb: np.ndarray, box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The model's input: the square `box` of an RGB uint8 frame as a (3, size, size) float32 crop in [0, 1]."""
    crop = crop_region(rgb, box, size)
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255.0


def _as_state(box: np.ndarray) -> np.ndarray:
    """Box -> (centre x, centre y, log size): smoothing a size in log space treats zooms evenly."""
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, np.log(box[2] - box[0])])


def _as_box(state: np.ndarray) -> np.ndarray:
    half = np.exp(state[2]) / 2
    return np.array([state[0] - half, state[1] - half, state[0] + half, state[1] + half])


class BoxSmoother:
    """Two-sided, streaming smoothing of per-frame boxes with a fixed look-ahead (no lag, bounded memory).

    Each output is a Gaussian-weighted local LINEAR fit over the frames within `radius` on both
    sides that had a face and lie in the same segment (nothing is smoothed across a cut or a gap),
    evaluated at the frame itself: a face moving at constant speed is followed exactly (no lag),
    also at a segment's ends. Frames without a face get None: they have no crop.
    """

    def __init__(self, radius: int = 6, sigma: float = 2.0):
        self.radius = radius
        offsets = np.arange(-radius, radius + 1)
        self._weights = np.exp(-0.5 * (offsets / sigma) ** 2)
        self._offsets = offsets.astype(np.float64)
        # (state or None, segment) per frame; the past is padded with empty frames
        self._window: deque[tuple[np.ndarray | None, int]] = deque([(None, -1)] * radius, maxlen=2 * radius + 1)
        self._pending = 0  # frames pushed but not yet given out

    def push(self, box: np.ndarray | None, segment: int = 0) -> list[np.ndarray | None]:
        """Add this frame's box (None: no face); returns the boxes now final, oldest first."""
        state = None if box is None else _as_state(np.asarray(box, dtype=np.float64))
        self._window.append((state, segment))
        self._pending += 1
        if self._pending <= self.radius:
            return []
        self._pending -= 1
        return [self._smoothed()]

    def flush(self) -> list[np.ndarray | None]:
        """The boxes of the last frames, once the clip has ended."""
        out = []
        # a clip shorter than the look-ahead never filled the window: pad its future so that the
        # oldest pending frame sits at the centre (index `radius`) when the loop below appends
        while len(self._window) < self._window.maxlen - 1:
            self._window.append((None, -1))
        while self._pending > 0:
            self._window.append((None, -1))  # no future: those frames' fits use the past side only
            self._pending -= 1
            out.append(self._smoothed())
        return out

    def _smoothed(self) -> np.ndarray | None:
        """The fit at the window's centre frame."""
        window = list(self._window)
        centre_state, centre_segment = window[self.radius]
        if centre_state is None:
            return None
        present = np.array([state is not None and segment == centre_segment for state, segment in window])
        states = np.stack([state for (state, _), keep in zip(window, present) if keep])
        w, t = self._weights[present], self._offsets[present]
        # weighted least squares of a + b * t; the fit's value at t = 0 is a
        sw, swt, swtt = w.sum(), (w * t).sum(), (w * t * t).sum()
        determinant = sw * swtt - swt * swt
        if present.sum() < 2 or determinant < 1e-9 * sw * sw:
            return _as_box((w[:, None] * states).sum(axis=0) / sw)
        swy, swty = (w[:, None] * states).sum(axis=0), (w[:, None] * t[:, None] * states).sum(axis=0)
        return _as_box((swtt * swy - swt * swty) / determinant)
