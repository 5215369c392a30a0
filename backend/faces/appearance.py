"""What a face looks like, roughly: to tell the followed person from the others after a cut.

A face is aligned by its eyes and mouth (its 68 landmarks) onto a 64 x 64 grey picture and
described by histograms of its local binary patterns (8 neighbours at radius 1, the 59 uniform
patterns) on an 8 x 8 grid of cells: Ahonen, Hadid and Pietikainen, "Face description with local
binary patterns: application to face recognition", IEEE TPAMI 2006. The description does not move
with brightness or contrast and costs about a millisecond. Two descriptions are compared by the
chi-square distance of their histograms.

As face recognition goes this is weak, so it never decides alone that a face is somebody else: the
tracker asks it only to rank the faces of a new shot, and takes its answer only when one face is
clearly closer to the followed person than every other (`Appearance.closest`).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import local_binary_pattern

from .crop import crop_region
from .landmarks import Detection, square_box

SIZE = 64  # pixels of the aligned grey face
GRID = 8  # cells a side
PATTERNS = 59  # uniform LBP codes of 8 neighbours ("nri_uniform")
EYES_Y, MOUTH_Y = 0.35, 0.78  # where the eyes' and the mouth's centres land, fractions of SIZE
BLUR = 1.0  # pixels (Gaussian sigma) on the aligned face before its patterns: less noise from resampling
GALLERY = 16  # descriptions kept of the followed person
# The closest face is taken for the person only when the next one is this much farther. A frontal
# face's descriptions differ by up to ~0.2 (two real people, faces 60-190 px, lighter and darker,
# rolled +-8 degrees, landmarks off by a pixel), a head turned three-quarters' by up to ~0.4;
# different people's by 0.45 and more.
CLEARLY_CLOSER = 0.2
SAME_PERSON = 0.25  # a lone face this close is taken for the person's (for the clip's identity only)


def aligned_face(rgb: np.ndarray, face: Detection) -> np.ndarray:
    """(SIZE, SIZE) uint8 grey: the face turned upright (eye line level), eyes and mouth at fixed places."""
    points = face.landmarks68
    left_eye, right_eye, mouth = points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[48:68].mean(axis=0)
    eyes = (left_eye + right_eye) / 2
    side = float(np.linalg.norm(mouth - eyes)) / (MOUTH_Y - EYES_Y)  # footage pixels of the aligned picture
    centre = eyes + (mouth - eyes) * (0.5 - EYES_Y) / (MOUTH_Y - EYES_Y)
    margin = 1.5  # a larger square first (antialiased, exact), so that turning it leaves no empty corners
    big = crop_region(rgb, square_box(centre, side * margin), round(SIZE * margin))
    angle = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
    turn = cv2.getRotationMatrix2D((SIZE * margin / 2, SIZE * margin / 2), angle, 1.0)
    turn[:, 2] -= SIZE * (margin - 1) / 2
    upright = cv2.warpAffine(big, turn, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY)


def describe(rgb: np.ndarray, face: Detection) -> np.ndarray:
    """(GRID * GRID * PATTERNS,) float64: per cell, the share of each local binary pattern."""
    grey = cv2.GaussianBlur(aligned_face(rgb, face), (0, 0), BLUR)
    codes = local_binary_pattern(grey, 8, 1, method="nri_uniform").astype(np.int64)
    cell = SIZE // GRID
    cells = codes.reshape(GRID, cell, GRID, cell).transpose(0, 2, 1, 3).reshape(GRID * GRID, cell * cell)
    offsets = np.arange(GRID * GRID)[:, None] * PATTERNS  # one bincount for every cell at once
    counts = np.bincount((cells + offsets).ravel(), minlength=GRID * GRID * PATTERNS).astype(np.float64)
    return counts / (GRID * GRID * cell * cell)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Chi-square distance of two descriptions: 0 the same, 1 nothing in common."""
    total = a + b
    return float(0.5 * np.sum(np.divide((a - b) ** 2, total, out=np.zeros_like(total), where=total > 0)))


class Appearance:
    """Descriptions of the followed person over the clip, and which of several faces is that person."""

    def __init__(self):
        self._gallery: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._gallery)

    def add(self, rgb: np.ndarray, face: Detection) -> None:
        """Remember how the person looks here; when full, every second description goes (the rest
        still spans the whole clip, more sparsely)."""
        if len(self._gallery) >= GALLERY:
            self._gallery = self._gallery[::2]
        self._gallery.append(describe(rgb, face))

    def distance(self, rgb: np.ndarray, face: Detection) -> float:
        """How unlike the followed person the face looks: its distance to the nearest description."""
        return self.distance_to(describe(rgb, face))

    def distance_to(self, description: np.ndarray) -> float:
        return min(distance(description, known) for known in self._gallery)

    def someone_else(self, rgb: np.ndarray, face: Detection, others: list[np.ndarray]) -> bool:
        """The face clearly looks more like one of `others` (descriptions of other people) than like the
        person: relative, so it holds where looks vary (a turned head) as long as people differ."""
        if not self._gallery or not others:
            return False
        description = describe(rgb, face)
        nearest_other = min(distance(description, other) for other in others)
        return nearest_other + CLEARLY_CLOSER <= self.distance_to(description)

    def looks_like(self, rgb: np.ndarray, face: Detection) -> bool:
        """The face may well be the person's: as close as the person's own looks vary, or nothing known yet."""
        return not self._gallery or self.distance(rgb, face) <= SAME_PERSON

    def closest(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """The face that looks like the followed person when one clearly does (None: no answer,
        with fewer than two faces, without descriptions, or when the closest two are alike)."""
        if len(faces) < 2 or not self._gallery:
            return None
        distances = np.array([self.distance(rgb, face) for face in faces])
        order = np.argsort(distances)
        best, second = distances[order[0]], distances[order[1]]
        return faces[int(order[0])] if second - best >= CLEARLY_CLOSER else None
