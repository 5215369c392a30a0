"""Footage: a video file, a folder of images, a printf pattern (`frames/%04d.png`) or one image.

`open_footage` checks what it can up front (the file exists, the first frame decodes) and
`Footage.frames()` streams RGB frames one at a time, so memory does not grow with the clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sheap_blender.core.errors import InputError
from sheap_blender.core.image_sequence import IMAGE_SUFFIXES, folder_images, is_image, is_pattern, pattern_images

DEFAULT_IMAGE_FPS = 30.0
# the highest frame rate believed from a container (high-speed phones film 240); a header that says more, or
# nothing, is checked against the stream's own timestamps (a bogus 1000 fps would make every per-second
# buffer of the pipeline a thousand frames)
MAX_FPS = 240.0
TIMESTAMP_FRAMES = 8  # frames whose timestamps are read when the header's rate is not believable
SCENE_LINEAR_SUFFIXES = frozenset({".exr", ".hdr"})  # floats, scene-linear light


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image, or an InputError naming the file."""
    if not path.is_file():
        raise InputError(path, "image not found")
    if path.stat().st_size == 0:
        raise InputError(path, "image file is empty")
    linear = path.suffix.lower() in SCENE_LINEAR_SUFFIXES
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | (cv2.IMREAD_ANYDEPTH if linear else 0))
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV's limit
        reason = "larger than OpenCV reads" if "MAX_IMAGE_PIXELS" in str(exc) else "OpenCV cannot decode it"
        raise InputError(path, f"not a usable image ({reason})") from None
    if bgr is None:
        raise InputError(path, "not an image OpenCV can read")
    if linear:
        bgr = linear_to_srgb8(bgr)
    elif bgr.dtype != np.uint8:  # 16-bit PNG/TIFF: scale to 8 bits
        bgr = (bgr / np.iinfo(bgr.dtype).max * 255).round().astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _srgb_table(levels: int = 65536) -> np.ndarray:
    """8-bit sRGB of `levels` evenly spaced linear values in [0, 1] (a look-up: a 4K plate in ~0.1 s)."""
    x = np.linspace(0.0, 1.0, levels)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return (srgb * 255.0 + 0.5).astype(np.uint8)


_SRGB = _srgb_table()


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Scene-linear floats (OpenEXR, Radiance HDR) -> 8-bit sRGB, as a display shows them: the face
    finder and the network were made for display-referred pictures. Clipped to [0, 1] (no tone
    mapping: a plate's highlights above 1 clip as on an sRGB display); NaN and negatives are black."""
    x = np.array(linear, dtype=np.float32).reshape(linear.shape[0], -1)  # OpenCV's in-place calls want 2D
    cv2.patchNaNs(x, 0.0)
    cv2.threshold(x, 1.0, 1.0, cv2.THRESH_TRUNC, dst=x)  # above 1 -> 1 (+inf too)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)  # negative -> 0
    x *= len(_SRGB) - 1
    x += 0.5
    return _SRGB[x.astype(np.uint16)].reshape(linear.shape)


@dataclass
class Footage:
    path: Path
    kind: str  # 'video', 'images' or 'image'
    width: int
    height: int
    fps: float
    frame_count: int
    images: tuple[Path, ...] = ()  # the files of an image sequence, in order

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, RGB uint8 H x W x 3) for frames start..end-1, one at a time."""
        end = self.frame_count if end is None else min(end, self.frame_count)
        if self.kind == "video":
            yield from self._video_frames(start, end)
            return
        for index in range(start, end):
            image = read_image(self.images[index])
            if image.shape[:2] != (self.height, self.width):
                raise InputError(self.images[index], f"is {image.shape[1]}x{image.shape[0]}, but the sequence is "
                                                     f"{self.width}x{self.height}")
            yield index, image

    def read_frames(self, indices: list[int] | np.ndarray) -> dict[int, np.ndarray]:
        """Chosen frames {index: RGB uint8}, read exactly as `frames()` reads them (the same seek, in order)."""
        wanted = sorted({int(i) for i in indices})
        if not wanted:
            return {}
        if self.kind != "video":
            return {i: next(self.frames(i, i + 1))[1] for i in wanted}
        found = dict(self._video_frames(wanted[0], wanted[-1] + 1, keep=set(wanted)))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise InputError(self.path, f"frame {missing[0]} cannot be decoded")
        return found

    def _video_frames(self, start: int, end: int, keep: set[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start..end-1 (only those in `keep`, when given: the others are grabbed, not converted)."""
        capture = open_capture(self.path)
        try:
            if start > 0:
                capture.set(cv2.CAP_PROP_POS_FRAMES, start)
            for index in range(start, end):
                if not capture.grab():
                    return  # the container's frame count may be more than the stream holds
                if keep is not None and index not in keep:
                    continue
                ok, bgr = capture.retrieve()
                if not ok:
                    return
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


def _sequence(path: Path, images: list[Path], fps: float) -> Footage:
    first = read_image(images[0])
    height, width = first.shape[:2]
    return Footage(path, "images", width, height, fps, len(images), tuple(images))


def _open_pattern(pattern: str, fps: float) -> Footage:
    """`frames/%04d.png`: every file the pattern matches, from its lowest number up to the first gap."""
    path = Path(pattern)
    folder = path.parent
    if not folder.is_dir():
        raise InputError(path, f"folder {folder} not found")
    images = [file for _, file in pattern_images(path)]
    if not images:
        raise InputError(path, "no file matches this pattern")
    return _sequence(path, images, fps)


def open_capture(path: Path) -> cv2.VideoCapture:
    """OpenCV's reader for a video, turned upright: phones store portrait video as landscape frames with
    a rotation flag, which OpenCV ignores unless told (the face would lie on its side)."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def _open_video(path: Path) -> Footage:
    capture = open_capture(path)
    try:
        if not capture.isOpened():
            raise InputError(path, "not a video or image OpenCV can read")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise InputError(path, "video holds no frame that can be decoded (corrupt or truncated?)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
            fps = _rate_from_timestamps(path, capture, fps)
    finally:
        capture.release()
    if count <= 0:  # some containers do not say: count by decoding (no frames are kept)
        count = sum(1 for _ in Footage(path, "video", frame.shape[1], frame.shape[0], fps, 1 << 40)._video_frames(
            0, 1 << 40))
    return Footage(path, "video", frame.shape[1], frame.shape[0], float(fps), count)


def _rate_from_timestamps(path: Path, capture: cv2.VideoCapture, header_fps: float) -> float:
    """The frame rate the stream's timestamps give, when the container's is missing or not believable: 30 when
    neither says one; an InputError when both say more than MAX_FPS."""
    stamps = [capture.get(cv2.CAP_PROP_POS_MSEC)]
    for _ in range(TIMESTAMP_FRAMES):
        if not capture.grab():
            break
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    fps = 1000.0 / float(np.median(steps)) if len(steps) else 0.0
    if 0 < fps <= MAX_FPS:
        return fps
    if fps <= 0 and not (np.isfinite(header_fps) and header_fps > MAX_FPS):
        return DEFAULT_IMAGE_FPS  # no rate anywhere: taken for 30, as image sequences are
    raise InputError(path, f"the video says {header_fps:g} fps (its timestamps {fps:g}): more than a camera films "
                           f"({MAX_FPS:g} at most); re-encode it at its real rate (e.g. ffmpeg -r 30)")


def open_footage(path: str | os.PathLike, fps: float | None = None) -> Footage:
    """Open any supported footage; `fps` overrides the rate of image sequences (default 30)."""
    text = os.fspath(path)
    image_fps = fps or DEFAULT_IMAGE_FPS
    if is_pattern(text):
        return _open_pattern(text, image_fps)
    path = Path(text)
    if path.is_dir():
        images = folder_images(path)
        if not images:
            raise InputError(path, "folder holds no images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
        return _sequence(path, images, image_fps)
    if not path.exists():
        raise InputError(path, "footage not found")
    if path.stat().st_size == 0:
        raise InputError(path, "footage file is empty")
    if is_image(path):
        image = read_image(path)
        return Footage(path, "image", image.shape[1], image.shape[0], image_fps, 1, (path,))
    return _open_video(path)
