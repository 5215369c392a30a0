"""Hard cuts between shots, from how the local structure of a small thumbnail of the frame changes.

Within a shot, consecutive frames differ little once the camera's motion is allowed for; across a
hard cut most of the picture changes at once. Each frame is reduced to a thumbnail whose long side
is 64 pixels (sampled on a fixed grid first, so 4K costs no more than 1080p), and the thumbnail is
normalised per colour channel and locally: around each pixel (over a third of the thumbnail) the
mean is removed and the result divided by the standard deviation, with a floor (`MIN_CONTRAST`) so
that a flat or black frame does not turn its noise into structure. A light switched on, a fade, an
exposure change or a camera flash, even one that lights only part of the frame (a near subject, or
the band of rows a rolling shutter was exposing), scales the values region by region and leaves
this nearly alone, while a new shot changes it everywhere.

Per frame the change is how far the normalised thumbnail is from the previous one's, 0 for the
same picture and about 0.5-0.8 for two unrelated ones: the smaller of the distance as it stands (a
still background with something moving in front) and the distance once shifted by the camera's
motion (a global shift found by phase correlation). The shift allowed is `MAX_PAN` frame widths
(heights) per second, so per frame it grows as the frame rate falls: a pan of the same speed moves
the picture further between two frames at 24 fps than at 60.

A frame is a cut when its change is above `MIN_CHANGE`, above `RELATIVE_CHANGE` times the typical
change over the last `HISTORY_S` seconds (so footage whose every frame changes a lot, shaky or
strobing, does not fire on every frame), and when the frame is also unlike the frames two and three
back (`LOOK_BACK`): a frame that comes back to the picture of just before, after a flash or a frame
or two of glitch, starts no new shot, whereas after a real cut the new frames stay unlike all the old
ones. No look-ahead: `push` answers for the frame it is given.

Not seen: a cut back to the shot of two or three frames before (taken for the end of a flash), a cut
between two nearly featureless frames (a plain wall to another plain wall, black to black), a camera
motion faster than `MAX_PAN` (a whip pan may fire), and a cut on the same set that changes little of
the picture (a locked-off camera, small people changing places: under about a third of the frame
changed); the tracker also starts a segment when the face it follows is re-found far from where it
was. A cut that leaves the background alone but changes much of the frame (people at interview
size) is seen.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

THUMBNAIL = (64, 36)  # width, height of a landscape frame's thumbnail (a portrait frame's is turned)
MIN_CHANGE = 0.33  # change of the normalised thumbnails: 0 for the same picture, ~0.5-0.8 for unrelated ones
RELATIVE_CHANGE = 3.0  # times the recent typical change
HISTORY_S = 0.5  # seconds the typical change is taken over
MAX_PAN = 3.0  # frame widths (or heights) per second: the fastest camera motion allowed for
LOOK_BACK = 3  # frames: a frame as close to one of these as to a frame of its shot is no cut
MIN_CONTRAST = 0.03  # floor of a channel's local standard deviation (values 0..1) when normalising


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A (36, 64, 3) float32 thumbnail in [0, 1] ((64, 36, 3) for a portrait frame).

    Sampled first on a grid 4 times as fine (nearest pixels: reads the same few pixels at any
    resolution, so 4K costs no more than 1080p), then averaged down.
    """
    size = THUMBNAIL if rgb.shape[1] >= rgb.shape[0] else THUMBNAIL[::-1]
    fine = (4 * size[0], 4 * size[1])
    if rgb.shape[1] > fine[0] and rgb.shape[0] > fine[1]:
        rgb = cv2.resize(rgb, fine, interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) * np.float32(1.0 / 255.0)


def normalised(thumb: np.ndarray) -> np.ndarray:
    """Per channel and locally (over a third of the thumbnail around each pixel): mean removed,
    divided by the standard deviation (at least `MIN_CONTRAST`)."""
    h, w = thumb.shape[:2]
    box = (w // 3 | 1, h // 3 | 1)
    mean = cv2.blur(thumb, box, borderType=cv2.BORDER_REFLECT)
    spread = cv2.blur(thumb * thumb, box, borderType=cv2.BORDER_REFLECT) - mean * mean
    return (thumb - mean) / np.sqrt(np.maximum(spread, np.float32(MIN_CONTRAST**2)))


class _Frame:
    """A frame's normalised thumbnail, and its grey level for phase correlation."""

    __slots__ = ("grey", "norm")

    def __init__(self, rgb: np.ndarray):
        self.norm = normalised(thumbnail(rgb))
        self.grey = cv2.cvtColor(self.norm, cv2.COLOR_RGB2GRAY)


def change(a: _Frame, b: _Frame, max_shift: tuple[float, float], window: np.ndarray) -> float:
    """How unlike `b` is to `a` once shifted by the camera's motion (at most `max_shift` pixels)."""
    (dx, dy), _ = cv2.phaseCorrelate(a.grey, b.grey, window)
    dx = float(np.clip(dx, -max_shift[0], max_shift[0]))
    dy = float(np.clip(dy, -max_shift[1], max_shift[1]))
    still = _unlike(a.norm, b.norm, 0, 0)
    if abs(dx) < 0.25 and abs(dy) < 0.25:
        return still
    h, w = a.grey.shape
    mx, my = int(np.ceil(abs(dx))), int(np.ceil(abs(dy)))
    if mx >= w // 2 or my >= h // 2:
        return still
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(a.norm, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # The smaller of the two: something large moving in front of a still background can win the phase
    # correlation, and then the background, shifted with it, would look changed.
    return min(still, _unlike(moved, b.norm, mx, my))


def _unlike(a: np.ndarray, b: np.ndarray, mx: int, my: int) -> float:
    """Half the mean squared difference of two normalised thumbnails, `mx`, `my` border pixels left out."""
    h, w = a.shape[:2]
    diff = a[my:h - my, mx:w - mx] - b[my:h - my, mx:w - mx]
    return float(0.5 * np.mean(diff * diff))


class CutDetector:
    """Feed frames in order; `push` says whether the frame starts a new shot (see the module's docstring)."""

    def __init__(self, fps: float = 30.0):
        self.fps = float(fps) if fps and fps > 0 else 30.0  # an unknown rate (0) taken for 30
        self._recent: deque[_Frame] = deque(maxlen=LOOK_BACK)  # newest last
        self._changes: deque[float] = deque(maxlen=max(3, round(HISTORY_S * self.fps)))
        self._windows: dict[tuple[int, int], np.ndarray] = {}
        self.last_change = 0.0  # the last frame's change (for tests and tuning)

    def _max_shift(self, shape: tuple[int, int], frames: int) -> tuple[float, float]:
        per_frame = MAX_PAN / self.fps * frames
        return per_frame * shape[1], per_frame * shape[0]

    def push(self, rgb: np.ndarray) -> bool:
        current = _Frame(rgb)
        if self._recent and self._recent[-1].grey.shape != current.grey.shape:
            self._recent.clear()
            self._changes.clear()
        if not self._recent:
            self._recent.append(current)
            self.last_change = 0.0
            return False
        shape = current.grey.shape
        if shape not in self._windows:
            self._windows[shape] = cv2.createHanningWindow(shape[::-1], cv2.CV_32F)
        window = self._windows[shape]
        now = change(self._recent[-1], current, self._max_shift(shape, 1), window)
        typical = float(np.median(self._changes)) if self._changes else 0.0
        self._changes.append(now)
        self.last_change = now
        cut = now > MIN_CHANGE and now > RELATIVE_CHANGE * typical
        if cut:
            for back, earlier in enumerate(reversed(list(self._recent)[:-1]), start=2):
                if change(earlier, current, self._max_shift(shape, back), window) <= MIN_CHANGE:
                    cut = False  # back to a picture of just before: the end of a flash or glitch
                    break
        self._recent.append(current)
        return cut
