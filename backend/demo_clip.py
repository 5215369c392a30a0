"""Demo footage made on the spot: a real face (scikit-image's public-domain astronaut portrait)
moving with a known motion, and a clip with no face at all. No download needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FACE_CENTRE_IN_PORTRAIT = (245.0, 150.0)  # roughly the middle of the astronaut's face (512 x 512 image)


def astronaut_motion(n_frames: int, size: tuple[int, int]) -> np.ndarray:
    """(n, 2, 3) affine matrices portrait pixels -> frame pixels: pan, zoom and a few degrees of roll."""
    width, height = size
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    base = 0.55 * height / 280.0  # the face (about 280 px tall in the portrait) fills ~55% of the height
    scale = base * (1.0 + 0.18 * np.sin(2 * np.pi * t))  # zoom in, out, back
    angle = np.deg2rad(5.0) * np.sin(2 * np.pi * 1.5 * t)  # roll
    centre_x = width / 2 + 0.12 * width * np.sin(2 * np.pi * t + 0.6)  # pan
    centre_y = height / 2 + 0.06 * height * np.sin(2 * np.pi * 2 * t)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    fx, fy = FACE_CENTRE_IN_PORTRAIT
    matrices = np.empty((n_frames, 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin
    matrices[:, 1, 0], matrices[:, 1, 1] = sin, cos
    matrices[:, 0, 2] = centre_x - (cos * fx - sin * fy)
    matrices[:, 1, 2] = centre_y - (sin * fx + cos * fy)
    return matrices


def write_demo_clip(directory: str | Path, n_frames: int = 90, fps: float = 30.0,
                    size: tuple[int, int] = (640, 480)) -> tuple[Path, Path]:
    """Write `astronaut.mp4` and `astronaut_motion.json` (per-frame 2x3 portrait->frame affines)."""
    from skimage import data

    directory = Path(directory)
    portrait = data.astronaut()
    matrices = astronaut_motion(n_frames, size)
    clip = directory / "astronaut.mp4"
    temporary = directory / ".astronaut.tmp.mp4"
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {temporary}")
    # OpenCV maps pixel centres at integers; the matrices use pixel i = [i, i+1]: shift by half a pixel
    for matrix in matrices:
        to_cv = matrix.copy()
        to_cv[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
        frame = cv2.warpAffine(portrait, to_cv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(28, 30, 34))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    temporary.replace(clip)
    motion = directory / "astronaut_motion.json"
    motion.write_text(json.dumps({
        "source": "skimage.data.astronaut() (512 x 512, public domain)",
        "convention": "frame_xy = M[:, :2] @ portrait_xy + M[:, 2]; pixel i spans [i, i+1]",
        "fps": fps, "size": list(size), "face_centre_in_portrait": FACE_CENTRE_IN_PORTRAIT,
        "frames": matrices.round(6).tolist(),
    }))
    return clip, motion


def write_faceless_clip(path: str | Path, n_frames: int = 30, fps: float = 30.0,
                        size: tuple[int, int] = (320, 240)) -> Path:
    """A clip with no face: drifting colour gradients and noise."""
    width, height = size
    rng = np.random.default_rng(3)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n_frames):
        phase = i / n_frames
        image = np.stack([np.sin(6 * x + phase * 6), np.cos(4 * y - phase * 3), np.sin(5 * (x + y))], axis=2)
        image = (image * 0.5 + 0.5) * 200 + rng.normal(0, 8, image.shape)
        writer.write(np.clip(image, 0, 255).astype(np.uint8))
    writer.release()
    return Path(path)
