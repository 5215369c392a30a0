"""The full-frame search for faces: MediaPipe's face detector on overlapping tiles, confirmed by the face mesh.

MediaPipe's short-range face detector sees a 128 x 128 picture and misses faces under roughly a
tenth of it. So the frame is cut into square tiles at several scales (the frame's short side, its
half, its quarter... down to `MIN_FACE_PX` x `TILE_PER_FACE`, each level overlapping by half) and
the detector runs on each tile: every face of at least `MIN_FACE_PX` fills enough of some tile.
Tiles also fire on hands and objects, so each hit is confirmed by the face mesh on a region
around it (`Landmarker`), which also gives the landmarks. The search costs tens to hundreds of
milliseconds a frame; the tracker runs it only where it must (first frame, lost face, cut).
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import Detection, Landmarker, quiet_stderr, square_box

MIN_FACE_PX = 56  # smallest face (extent of its landmarks) the search is made for
# finest tile side / MIN_FACE_PX. Measured on a real face: the detector finds every face from 12% of
# its input up (2 in 12 at 10%); tiles up to 6.5 faces wide keep the smallest face above 15%.
TILE_PER_FACE = 6.5
DETECTOR_SIZE = 128  # the short-range detector's input
MAX_CANDIDATES = 24  # detector hits confirmed per search, best first
CANDIDATE_REGION = 2.6  # mesh region side / detector box side
WHOLE_FRAME_FACE = 4.0  # the whole-frame mesh pass keeps faces of at least (frame's long side / this)


def tile_levels(width: int, height: int, min_face: float = MIN_FACE_PX) -> list[int]:
    """Tile sides from the frame's short side down, halving, while a level is still needed for `min_face`."""
    side = min(width, height)
    levels = [side]
    while levels[-1] > TILE_PER_FACE * min_face and levels[-1] // 2 >= DETECTOR_SIZE:
        levels.append(levels[-1] // 2)
    return levels


def tile_origins(length: int, tile: int) -> np.ndarray:
    """Start offsets of tiles of side `tile` over `length` pixels, overlapping by at least half."""
    if length <= tile:
        return np.zeros(1, dtype=int)
    count = int(np.ceil((length - tile) / (tile / 2))) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(int)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.3) -> np.ndarray:
    """Indices of the boxes kept, best score first: each drops the later ones it overlaps (IoU) by more."""
    order = np.argsort(-scores)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        intersection = np.prod(np.clip(high - low, 0, None), axis=1)
        iou = intersection / (areas[best] + areas[rest] - intersection)
        order = rest[iou <= overlap]
    return np.array(kept, dtype=int)


def distinct_faces(faces: list[Detection]) -> list[Detection]:
    """Drop faces found twice (landmark boxes that overlap by more than half), keeping the first."""
    kept: list[Detection] = []
    for face in faces:
        box = np.concatenate([face.landmarks68.min(axis=0), face.landmarks68.max(axis=0)])
        if not any(_iou(box, np.concatenate([k.landmarks68.min(axis=0), k.landmarks68.max(axis=0)])) > 0.5
                   for k in kept):
            kept.append(face)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    low, high = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    intersection = float(np.prod(np.clip(high - low, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - intersection
    return intersection / union if union > 0 else 0.0


class FaceSearch:
    """Every face of at least `MIN_FACE_PX` on a frame, with landmarks."""

    def __init__(self, landmarker: Landmarker, min_face: float = MIN_FACE_PX):
        import mediapipe as mp

        self.landmarker = landmarker
        self.min_face = min_face
        with quiet_stderr():
            self._detector = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
            self._detector.process(np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.uint8))

    def close(self) -> None:
        self._detector.close()

    def find(self, rgb: np.ndarray) -> list[Detection]:
        """Confirmed faces, largest first."""
        boxes, scores = self.candidates(rgb)
        faces = []
        for i in non_max_suppression(boxes, scores)[:MAX_CANDIDATES]:
            centre = (boxes[i, :2] + boxes[i, 2:]) / 2
            side = CANDIDATE_REGION * float(np.max(boxes[i, 2:] - boxes[i, :2]))
            found = self.landmarker.in_region(rgb, square_box(centre, side))
            # the hit's own face: the one whose landmarks hold the hit's centre, nearest first
            found = [f for f in found if np.all((f.landmarks68.min(axis=0) <= centre) & (centre <= f.landmarks68.max(
                axis=0)))]
            if found:
                face = min(found, key=lambda f: np.linalg.norm(f.centre - centre))
                faces.append(Detection(face.landmarks68, max(face.confidence, float(scores[i]))))
        # a face too large for any tile (an extreme close-up): the mesh on the whole frame. Last, so that a
        # face a tile found keeps its landmarks (a region fitted to the face), and only a face that fills
        # much of the frame counts: smaller ones are too few pixels of the mesh's input for good landmarks.
        height, width = rgb.shape[:2]
        side = max(width, height)
        whole = self.landmarker.in_region(rgb, square_box(np.array([width / 2, height / 2]), side))
        faces += [self.landmarker.refined(rgb, face) for face in whole if face.size >= side / WHOLE_FRAME_FACE]
        return sorted(distinct_faces(faces), key=lambda f: -f.size)

    def near_point(self, rgb: np.ndarray, point: np.ndarray) -> list[Detection]:
        """Faces the mesh finds in regions of several sizes centred on a frame point (seeds a missed face)."""
        side = float(min(rgb.shape[:2]))
        faces = []
        while side >= TILE_PER_FACE * self.min_face / 2:
            faces += self.landmarker.in_region(rgb, square_box(point, side))
            side /= 2
        return distinct_faces([self.landmarker.refined(rgb, face) for face in faces])

    def candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's hits on every tile: (N, 4) boxes x0, y0, x1, y1 in frame pixels and (N,) scores."""
        height, width = rgb.shape[:2]
        boxes, scores = [], []
        for tile in tile_levels(width, height, self.min_face):
            scale = DETECTOR_SIZE / tile
            # one resize per level; tiles are then 128 x 128 windows of the scaled frame
            scaled = cv2.resize(rgb, (max(round(width * scale), DETECTOR_SIZE), max(round(height * scale),
                                DETECTOR_SIZE)), interpolation=cv2.INTER_AREA)
            for top in tile_origins(scaled.shape[0], DETECTOR_SIZE):
                for left in tile_origins(scaled.shape[1], DETECTOR_SIZE):
                    window = np.ascontiguousarray(scaled[top:top + DETECTOR_SIZE, left:left + DETECTOR_SIZE])
                    for detection in self._detector.process(window).detections or []:
                        b = detection.location_data.relative_bounding_box
                        x0, y0 = left + b.xmin * DETECTOR_SIZE, top + b.ymin * DETECTOR_SIZE
                        x1, y1 = x0 + b.width * DETECTOR_SIZE, y0 + b.height * DETECTOR_SIZE
                        boxes.append(np.array([x0, y0, x1, y1]) / scale)
                        scores.append(detection.score[0])
        return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(scores, dtype=np.float64)
