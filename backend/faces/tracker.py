"""Follow one person's face through a clip: search the whole frame only where it must, then follow.

Per frame, in order:
- Follow: the face mesh on a region around the previous frame's landmarks (`Landmarker`); the
  face found there nearest the previous one, within a frame's plausible motion, is the followed
  face. Cheap (a few ms at any resolution) and without lag: the region is re-centred every frame.
- Search (`FaceSearch`, the whole frame at several scales): on the first frame, after the face
  is lost (every frame at first, then a few times a second while it stays lost) and after a cut.
- Which face: at the first frame with a face, the largest (of the confident ones, when any: a
  cat or a logo that the mesh takes for a face scores lower than a person), or the one nearest
  the user's point (`point`, fractions of the frame from its top-left corner; the point also
  seeds the search where the detector misses a face). Then the same person, by continuity of
  position and size: after losing the face, only a face near where it was last seen (the
  allowed distance grows with the time it has been gone) and not where another person was
  seen; after a cut, among several faces the one that clearly looks like the person
  (`appearance`, from how the face looked while it was surely theirs), else the face
  nearest the followed one's last position and size.
- Segments: a hard cut (`CutDetector`, or the face jumping in position or size between two
  frames) or a gap where the face is lost starts a new segment; nothing is smoothed across one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .appearance import Appearance, describe
from .cuts import CutDetector
from .landmarks import Detection, Landmarker
from .search import MIN_FACE_PX, FaceSearch, distinct_faces

# Between two frames a followed face strays less than this (in face sizes) from where its motion
# so far puts it, and changes size less than this factor; more is a jump: a cut, or another face.
MAX_STEP = 0.35
MAX_SCALE_STEP = 1.25
MAX_FIRST_STEP = 0.8  # the same, on a segment's second frame, when its speed is not known yet
# Re-finding a lost face: it may have moved this many face sizes, plus this many per second gone.
REACQUIRE_DISTANCE = 1.0
REACQUIRE_SPEED = 4.0
REACQUIRE_SCALE = 2.0
EVERY_FRAME_SEARCHES = 3  # once lost, the whole frame is searched on this many frames in a row...
SEARCHES_PER_SECOND = 5.0  # ...then this often
# A search's faces scoring at least this are taken for people first: real faces score 0.9 and more
# (two real people, 45 to 200 px, five backgrounds), faces the mesh sees in a cat or a logo 0.5 to 0.7.
CONFIDENT = 0.8
APPEARANCE_INTERVAL = 1.0  # seconds between two descriptions of the followed person's looks
OTHERS_LOOKS = 8  # descriptions of other people kept per shot
_LONG_AGO = -(10**9)  # a frame number before any: the next clear face is described at once


@dataclass
class TrackedFrame:
    detection: Detection | None  # the followed face, None when it is not on this frame
    segment: int  # 0, 1, 2...: a new one after each cut and each gap
    cut: bool  # a hard cut was detected on this frame
    searched: bool  # the whole-frame search ran on this frame
    identified: bool = False  # the face is the chosen person's by choice, continuity or looks (not by place alone)


def credible(faces: list[Detection]) -> list[Detection]:
    """The confident faces when there are any, else all: a weak face is taken only when no real one is seen."""
    confident = [face for face in faces if face.confidence >= CONFIDENT]
    return confident or faces


def _step(a: Detection, b: Detection) -> tuple[float, float]:
    """(centre distance in units of a's size, size ratio >= 1) from face a to face b."""
    distance = float(np.linalg.norm(b.centre - a.centre)) / max(a.size, 1.0)
    ratio = max(a.size, b.size) / max(min(a.size, b.size), 1.0)
    return distance, ratio


class FaceTracker:
    """One person's face, frame after frame; see the module's docstring for the rules."""

    def __init__(self, fps: float = 30.0, point: tuple[float, float] | None = None, min_face: float = MIN_FACE_PX):
        self.fps = fps
        self.point = point
        self.landmarker = Landmarker()
        self.search = FaceSearch(self.landmarker, min_face)
        self.cuts = CutDetector()
        self.chosen: Detection | None = None  # the face chosen at the first frame with a face
        self.chosen_frame: int | None = None
        self._frame = -1
        self._previous: Detection | None = None  # the followed face on the previous frame
        self._predicted: Detection | None = None  # where its motion puts it on this frame
        self._speed_known = False  # the prediction extrapolates a motion (else it is the previous face)
        self._last_seen: Detection | None = None
        self._last_seen_frame = 0
        self._others: list[Detection] = []  # other people (confident faces) at the last search in this shot
        self._others_looks: list[np.ndarray] = []  # how other people seen in this shot look (recent ones)
        self._lost_frames = 0
        self._segment = 0
        self._segment_has_face = False
        self._cut_pending = False  # a cut was seen and the face has not been found since
        self._held: list[tuple[np.ndarray, TrackedFrame]] = []  # frames held back while the face is lost
        self.appearance = Appearance()  # how the followed person looks (appearance)
        self._identified = False  # this segment's face is surely the person: chosen, or recognised after a cut
        self._described_frame = _LONG_AGO

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.search.close()
        self.landmarker.close()

    def track(self, rgb: np.ndarray) -> list[TrackedFrame]:
        """This frame's result, after the frames held back before it, in order (or nothing yet).

        While the face is lost, a frame on which no search ran is held back (a few at most): when
        the face is found again, it is followed back through them, so none is lost to the pause
        between two searches.
        """
        self._frame += 1
        cut = self.cuts.push(rgb)
        searched = False
        found: Detection | None = None
        if cut:
            self._cut_pending, self._others, self._others_looks = True, [], []
            self._new_segment()
        if self._previous is not None and not cut:
            found = self._follow(rgb, self._predicted)
            if found is not None and not self._continues(found):
                cut = self._cut_pending = True  # the face jumped: a cut the picture did not show
                self._identified = self.appearance.looks_like(rgb, found)  # kept by place: theirs if it looks so
                self._described_frame = _LONG_AGO
                self._new_segment()
        if found is None and (self._previous is not None or cut or self._search_due()):
            found = self._choose(rgb, self.search.find(rgb))
            searched = True
        elif found is None and self._last_seen is not None:  # between searches: where it was last seen
            found = self._reacquire(rgb, self._follow_all(rgb, self._last_seen))
        tracked = self._record(found, cut, searched)
        if found is not None:
            self._describe(rgb, found)
        if found is None and not searched:
            self._held.append((rgb, tracked))
            return []
        if found is not None:
            self._follow_back(found, tracked.segment)
        return self.flush() + [tracked]

    def flush(self) -> list[TrackedFrame]:
        """The frames still held back (at the clip's end)."""
        out = [tracked for _, tracked in self._held]
        self._held.clear()
        return out

    def _follow_back(self, found: Detection, segment: int) -> None:
        """Follow a face found again backwards through the frames held back before it."""
        later = found
        for i in range(len(self._held) - 1, -1, -1):
            rgb, _ = self._held[i]
            face = self._follow(rgb, later)
            distance, ratio = _step(later, face) if face is not None else (np.inf, np.inf)
            if distance > MAX_FIRST_STEP or ratio > MAX_SCALE_STEP:
                return
            self._held[i] = (rgb, TrackedFrame(face, segment, False, False, self._identified))
            later = face

    def _describe(self, rgb: np.ndarray, face: Detection) -> None:
        """Now and then, remember how the person looks, while the face is surely theirs and clear."""
        due = self._frame - self._described_frame >= APPEARANCE_INTERVAL * self.fps
        if self._identified and face.confidence >= CONFIDENT and due:
            self.appearance.add(rgb, face)
            self._described_frame = self._frame

    def _record(self, found: Detection | None, cut: bool, searched: bool) -> TrackedFrame:
        if found is not None:
            if self._previous is None and self._segment_has_face:
                self._new_segment()  # found again after a gap
            self._segment_has_face = True
            self._last_seen, self._last_seen_frame, self._lost_frames = found, self._frame, 0
            self._cut_pending = False
        else:
            self._lost_frames += 1
        self._speed_known = found is not None and self._previous is not None and not cut
        self._predicted = self._extrapolate(self._previous, found) if self._speed_known else found
        self._previous = found
        return TrackedFrame(found, self._segment, cut, searched, found is not None and self._identified)

    @staticmethod
    def _extrapolate(previous: Detection, current: Detection) -> Detection:
        """Where the face will be on the next frame at its present speed."""
        motion = current.centre - previous.centre
        zoom = np.clip(current.size / max(previous.size, 1.0), 1 / MAX_SCALE_STEP, MAX_SCALE_STEP)
        centre = current.centre + motion
        return Detection(centre + (current.landmarks68 - current.centre) * zoom, current.confidence)

    def _new_segment(self) -> None:
        if self._segment_has_face:
            self._segment += 1
            self._segment_has_face = False

    def _search_due(self) -> bool:
        if self._lost_frames < EVERY_FRAME_SEARCHES:
            return True
        interval = max(1, round(self.fps / SEARCHES_PER_SECOND))
        return (self._lost_frames - EVERY_FRAME_SEARCHES) % interval == 0

    def _follow_all(self, rgb: np.ndarray, around: Detection) -> list[Detection]:
        return self.landmarker.in_region(rgb, around.region())

    def _follow(self, rgb: np.ndarray, previous: Detection) -> Detection | None:
        """The face nearest the previous one in a region around it, if the mesh finds one there."""
        faces = self._follow_all(rgb, previous)
        if not faces:
            return None
        nearest = min(faces, key=lambda face: _step(previous, face)[0])
        distance, _ = _step(previous, nearest)
        return nearest if distance < 1.0 else None  # farther: another face at the region's edge

    def _continues(self, face: Detection) -> bool:
        """The face is where the followed face's motion puts it on this frame (no jump)."""
        distance, ratio = _step(self._predicted, face)
        return distance <= (MAX_STEP if self._speed_known else MAX_FIRST_STEP) and ratio <= MAX_SCALE_STEP

    def _choose(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """The followed person among the faces a search found (None: not among them)."""
        if self.chosen is None:
            return self._first_choice(rgb, faces)
        if self._previous is not None and not self._cut_pending:  # the follow step failed on the previous face
            near = [face for face in faces if self._continues(face)]
            if near:
                return min(near, key=lambda face: _step(self._predicted, face)[0])
        if self._cut_pending:
            # who, among several people: the one that clearly looks like the person; else by place and size
            recognised = self.appearance.closest(rgb, credible(faces))
            chosen = recognised or self._after_cut(credible(faces))
            self._described_frame = _LONG_AGO
            alike = chosen is not None and self.appearance.looks_like(rgb, chosen)
            self._identified = recognised is not None or alike
        else:
            chosen = self._reacquire(rgb, credible(faces))
        self._see_others(rgb, faces, chosen)
        return chosen

    def _first_choice(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        if self.point is not None:
            height, width = rgb.shape[:2]
            point = np.array([self.point[0] * width, self.point[1] * height])
            # the point seeds a face the detector missed; a face both found keeps the search's landmarks
            faces = distinct_faces(faces + self.search.near_point(rgb, point))
            if not faces:
                return None

            def distance_to_point(face: Detection) -> float:
                low, high = face.landmarks68.min(axis=0), face.landmarks68.max(axis=0)
                return float(np.linalg.norm(np.clip(point, low, high) - point))  # 0 inside the face

            chosen = min(faces, key=lambda face: (distance_to_point(face), -face.size))
        elif faces:
            chosen = max(credible(faces), key=lambda face: face.size)
        else:
            return None
        self.chosen, self.chosen_frame = chosen, self._frame
        self._identified = True
        self._see_others(rgb, faces, chosen)
        return chosen

    def _see_others(self, rgb: np.ndarray, faces: list[Detection], chosen: Detection | None) -> None:
        """Remember where the other people of a search are, and how they look (the last few)."""
        self._others = [face for face in faces if face is not chosen and face.confidence >= CONFIDENT]
        self._others_looks = (self._others_looks + [describe(rgb, face) for face in self._others])[-OTHERS_LOOKS:]

    def _reacquire(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """After a gap in the same shot: the face nearest where it was last seen, never another person's.

        Where another person was seen at the last search, only a face near the followed one's last
        place (the distance allowed grows with the time it was gone), not where that person was and
        not clearly looking like one of the other people seen in the shot (they move between two
        searches) is taken for it; with nobody else in the shot, the face is taken wherever it comes back.
        """
        last = self._last_seen
        if last is None:
            return None
        seconds = (self._frame - self._last_seen_frame) / max(self.fps, 1e-3)
        reach = REACQUIRE_DISTANCE + REACQUIRE_SPEED * seconds
        candidates = []
        for face in faces:
            distance, ratio = _step(last, face)
            if ratio > REACQUIRE_SCALE:
                continue
            if self._others and (distance > reach or any(_step(other, face)[0] < min(distance, MAX_FIRST_STEP)
                                                         for other in self._others)):
                continue  # too far, or where another person was seen: that person, not ours
            if self.appearance.someone_else(rgb, face, self._others_looks):
                continue  # someone seen in this shot who has moved to where ours was
            candidates.append((distance, face))
        return min(candidates, key=lambda item: item[0])[1] if candidates else None

    def _after_cut(self, faces: list[Detection]) -> Detection | None:
        """After a cut the face may be anywhere: the one nearest the followed face's last place and size."""
        last = self._last_seen
        if last is None or not faces:
            return faces[0] if faces else None

        def unlikeness(face: Detection) -> float:
            distance, ratio = _step(last, face)
            return distance * last.size / max(face.size, last.size) + np.log(ratio)

        return min(faces, key=unlikeness)
