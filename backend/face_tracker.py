"""Find the face on each frame with MediaPipe's face mesh and follow one face through the clip.

MediaPipe gives 468 (478 refined) landmarks; SHeaP's release builds its crop from the iBUG 68-point
layout, so a fixed subset of MediaPipe's points stands in for those 68 (the correspondence widely
used to compare the two layouts: jaw line, brows, nose, eyes, lips in iBUG order). Only the extent
of these points matters for the crop.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # before MediaPipe loads: keep its C++ logging quiet
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MEDIAPIPE_TO_IBUG68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw line (17)
    70, 63, 105, 66, 107,  # brow on the image's left (5)
    336, 296, 334, 293, 300,  # brow on the image's right (5)
    168, 197, 5, 4,  # nose bridge (4)
    75, 97, 2, 326, 305,  # nostrils (5)
    33, 160, 158, 133, 153, 144,  # eye on the image's left (6)
    362, 385, 387, 263, 373, 380,  # eye on the image's right (6)
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips (12)
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips (8)
])


@dataclass
class Detection:
    landmarks68: np.ndarray  # (68, 2) pixels, iBUG layout
    landmarks: np.ndarray  # (478, 2) all of MediaPipe's, pixels
    confidence: float  # in [0, 1]

    @property
    def centre(self) -> np.ndarray:
        return (self.landmarks68.min(axis=0) + self.landmarks68.max(axis=0)) / 2

    @property
    def size(self) -> float:
        return float(np.ptp(self.landmarks68, axis=0).max())


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (MediaPipe's C++ start-up chatter bypasses Python's sys.stderr)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _confidence(points: np.ndarray, width: int, height: int) -> float:
    """MediaPipe's face mesh gives no score: use the share of the 68 points inside the frame.

    A face cut by the frame edge (or half out of view) has its landmarks extrapolated, so it is
    trusted less; a whole face in view scores 1.
    """
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    return float(inside.mean())


class FaceTracker:
    """MediaPipe face mesh in video mode, following one face: the largest at first, then the nearest."""

    def __init__(self, max_faces: int = 3):
        import mediapipe as mp

        with quiet_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=max_faces, refine_landmarks=True,
                min_detection_confidence=0.5, min_tracking_confidence=0.5,
            )
        self._previous: Detection | None = None
        self._first_call = True

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._mesh.close()

    def track(self, rgb: np.ndarray) -> Detection | None:
        """The followed face on this frame, or None when no face is found."""
        height, width = rgb.shape[:2]
        if self._first_call:  # the graph prints its start-up lines on the first frame
            with quiet_stderr():
                found = self._mesh.process(rgb)
            self._first_call = False
        else:
            found = self._mesh.process(rgb)
        if not found.multi_face_landmarks:
            return None
        faces = []
        for face in found.multi_face_landmarks:
            points = np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float64)
            lm68 = points[MEDIAPIPE_TO_IBUG68]
            faces.append(Detection(lm68, points, _confidence(lm68, width, height)))
        if self._previous is None:
            chosen = max(faces, key=lambda face: face.size)
        else:
            previous = self._previous
            chosen = min(faces, key=lambda face: np.linalg.norm(face.centre - previous.centre) / previous.size)
        self._previous = chosen
        return chosen
