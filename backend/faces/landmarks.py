"""Face landmarks in one square region of a frame: MediaPipe's face mesh on the region, enlarged.

MediaPipe's face mesh finds its face with a short-range detector made for faces that fill much of
the picture, so it is never run on a whole wide frame: it runs on a square region around a face
(found by `search` or followed from the previous frame), resampled to `WORK_SIZE` pixels, and
its landmarks are mapped back to frame pixels. A face 60 px across in a 4K frame is then as large
for the mesh as in a close-up.

MediaPipe gives 468 landmarks; SHeaP's release builds its crop from the iBUG 68-point layout, so a
fixed subset of MediaPipe's points stands in for those 68 (the correspondence widely used to
compare the two layouts: jaw line, brows, nose, eyes, lips in iBUG order). Only the extent of these
points matters for the crop.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import cv2
import numpy as np

from .crop import crop_region

os.environ.setdefault("GLOG_minloglevel", "2")  # before MediaPipe loads: keep its C++ logging quiet
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WORK_SIZE = 256  # pixels of the square region the face mesh sees
REGION_SCALE = 2.4  # region side / face size: room for the motion between two frames

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
    """One face on one frame."""

    landmarks68: np.ndarray  # (68, 2) frame pixels, iBUG layout (pixel i spans [i, i+1])
    confidence: float  # MediaPipe's face detector score for this face in its region, 0 when only the mesh saw it

    @property
    def centre(self) -> np.ndarray:
        return (self.landmarks68.min(axis=0) + self.landmarks68.max(axis=0)) / 2

    @property
    def size(self) -> float:
        """The larger extent of the 68 landmarks, pixels."""
        return float(np.ptp(self.landmarks68, axis=0).max())

    def region(self, scale: float = REGION_SCALE) -> np.ndarray:
        """The square box (x0, y0, x1, y1) of side `scale` x size around the face."""
        return square_box(self.centre, scale * self.size)


def square_box(centre: np.ndarray, side: float) -> np.ndarray:
    half = side / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], dtype=np.float64)


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


class Landmarker:
    """Faces in a square region of a frame: face mesh landmarks, scored by MediaPipe's face detector."""

    def __init__(self, max_faces: int = 2):
        import mediapipe as mp

        with quiet_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False, min_detection_confidence=0.5)
            self._detector = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.3)
            # the graphs print their start-up lines on their first image, and more on their first face
            from skimage import data

            face = cv2.resize(data.astronaut(), (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_AREA)
            self._mesh.process(face)
            self._detector.process(face)

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()

    def in_region(self, rgb: np.ndarray, box: np.ndarray) -> list[Detection]:
        """Faces whose landmarks the mesh finds in the square `box` of the frame (frame pixels)."""
        region = crop_region(rgb, box, WORK_SIZE)
        found = self._mesh.process(region)
        if not found.multi_face_landmarks:
            return []
        x0, y0, x1, y1 = box
        side = x1 - x0
        faces = []
        for face in found.multi_face_landmarks:
            points = np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64)[MEDIAPIPE_TO_IBUG68]
            faces.append(points * side + (x0, y0))  # normalised over the region -> frame pixels
        scores = self._scores(region, [(face - (x0, y0)) / side for face in faces])
        return [Detection(face, score) for face, score in zip(faces, scores)]

    def refined(self, rgb: np.ndarray, face: Detection) -> Detection:
        """The face again, from a region fitted to it: found in a region much larger than itself, it
        had few of the mesh's input pixels and coarse landmarks. Unchanged if the mesh misses it there."""
        offsets = [(float(np.linalg.norm(f.centre - face.centre)), f) for f in self.in_region(rgb, face.region())]
        near = [(offset, f) for offset, f in offsets if offset < face.size / 2]
        return min(near, key=lambda item: item[0])[1] if near else face

    def _scores(self, region: np.ndarray, faces: list[np.ndarray]) -> list[float]:
        """The detector's score of the detection whose centre lies inside each face's landmarks (0 if none)."""
        found = self._detector.process(region).detections or []
        boxes = [d.location_data.relative_bounding_box for d in found]
        centres = np.array([(b.xmin + b.width / 2, b.ymin + b.height / 2) for b in boxes]).reshape(-1, 2)
        scores = np.array([d.score[0] for d in found])
        out = []
        for face in faces:
            low, high = face.min(axis=0), face.max(axis=0)
            inside = np.all((centres >= low) & (centres <= high), axis=1)
            out.append(float(scores[inside].max()) if inside.any() else 0.0)
        return out
