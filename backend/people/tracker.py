"""Follow one person's face through a clip: search the whole frame only where it must, then follow.

Per frame, in order:
- Follow: the face mesh on a region around the previous frame's landmarks (`Landmarker`); the
  face found there nearest the previous one, within a frame's plausible motion, is the followed
  face. Cheap (a few ms at any resolution) and without lag: the region is re-centred every frame.
- Search (`FaceSearch`, the whole frame at several scales): on the first frame, after the face
  is lost (every frame at first, then a few times a second while it stays lost) and after a cut.
- Which face: at the first frame with a face, the largest (of the confident ones, when any: a
  cat or a logo that the mesh takes for a face scores lower than a person), the one nearest the
  user's point (`point`, fractions of the frame from its top-left corner; the point also seeds
  the search where the detector misses a face), or the one that is a given person's (`identity`).
  From then on the person is known by a face-recognition embedding (`identity`): after a cut and
  whenever the face is found again, only a face that is the person's by their looks is taken (and,
  when other people's looks are given, nearer the person's than anyone else's); when no face is
  theirs the frames are a gap, never filled by whoever else is in the shot. Within a shot the face
  is followed by continuity and re-checked by recognition every `RECHECK_INTERVAL` (more often
  while its distance is near the threshold): a face that is no longer the person's (a dissolve
  into somebody else, a follow that slid onto another face) ends the follow, a gap. A look passing
  the check is learned about once a second (`Identity.learn`). The chosen face's first look large
  enough to describe (`recognisable`) is the gallery's anchor; until there is one (a face followed
  too small to describe), a cut falls back to the first-choice rule instead of a gap for good.
- Segments: a hard cut (`CutDetector`), the face jumping in position or size between two frames,
  or a face found again far from where it was expected, or a gap where the face is lost starts a
  new segment; nothing is smoothed across one.

What is "a frame's plausible motion" is set for 30 fps and scaled to the clip's rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.landmarks import Detection, Landmarker
from ..faces.search import MIN_FACE_PX, FaceSearch, distinct_faces
from ..footage.cuts import CutDetector
from ..identity.gallery import SAME_PERSON, Embed, Identity, recognisable

REFERENCE_FPS = 30.0  # the per-frame limits below are for this rate; `FaceTracker` scales them
# Between two frames a followed face strays less than this (in face sizes) from where its motion
# so far puts it, and changes size less than this factor; more is a jump: a cut, or another face.
MAX_STEP = 0.35
MAX_SCALE_STEP = 1.25
MAX_FIRST_STEP = 0.8  # the same, on a segment's second frame, when its speed is not known yet
# Re-finding a lost face of unknown identity (too small to recognise): it may have moved this many
# face sizes, plus this many per second gone.
REACQUIRE_DISTANCE = 1.0
REACQUIRE_SPEED = 4.0
REACQUIRE_SCALE = 2.0
EVERY_FRAME_SEARCHES = 3  # once lost, the whole frame is searched on this many frames in a row...
SEARCHES_PER_SECOND = 5.0  # ...then this often for a second...
SEARCHES_PER_SECOND_LATER = 2.0  # ...then this often (frames between searches are followed back: none is lost)
# A search's faces scoring at least this are taken for people first: real faces score 0.9 and more
# (two real people, 45 to 200 px, five backgrounds), faces the mesh sees in a cat or a logo 0.5 to 0.7.
CONFIDENT = 0.8
DESCRIBE_INTERVAL = 1.0  # seconds between two looks added to the followed person's gallery
RECHECK_INTERVAL = 0.5  # seconds between two checks by recognition that the followed face is still the person's...
SUSPECT_INTERVAL = 0.2  # ...and while the last check found it this far (or more) from their looks:
SUSPECT = 0.45
# frames held back while the face is lost (searches come at least twice a second): at most a second of them,
# and at most this many bytes (a 4K frame is 25 MB): when full, the next frame is searched
MAX_HELD_S = 1.0
MAX_HELD_BYTES = 256 * 2**20
STRANGER_MEMORY = 1.0  # seconds a face found not to be the person is not compared again (if it stays put)
_LONG_AGO = -(10**9)  # a frame number before any: the next clear face is described at once


@dataclass
class TrackedFrame:
    detection: Detection | None  # the followed face, None when it is not on this frame
    segment: int  # 0, 1, 2...: a new one after each cut and each gap
    cut: bool  # a hard cut (or a jump of the face to another place) starts a shot on this frame
    searched: bool  # the whole-frame search ran on this frame
    identified: bool = False  # the face is the person's by choice, recognition or continuity (not by place alone)


def credible(faces: list[Detection]) -> list[Detection]:
    """The confident faces when there are any, else all: a weak face is taken only when no real one is seen."""
    confident = [face for face in faces if face.confidence >= CONFIDENT]
    return confident or faces


def _step(a: Detection, b: Detection) -> tuple[float, float]:
    """(centre distance in units of a's size, size ratio >= 1) from face a to face b."""
    distance = float(np.linalg.norm(b.centre - a.centre)) / max(a.size, 1.0)
    ratio = max(a.size, b.size) / max(min(a.size, b.size), 1.0)
    return distance, ratio


def default_embed() -> Embed:
    """The face-recognition network (loaded on first use: it is not needed to follow a single shot)."""
    from ..identity.face_recognition import shared_recognizer

    return shared_recognizer().embed


class FaceTracker:
    """One person's face, frame after frame; see the module's docstring for the rules."""

    def __init__(self, fps: float = 30.0, point: tuple[float, float] | None = None, min_face: float = MIN_FACE_PX,
                 identity: Identity | None = None, embed: Embed | None = None, others: list[Identity] | None = None):
        self.fps = fps
        self.point = point
        self.landmarker = Landmarker()
        self.search = FaceSearch(self.landmarker, min_face)
        self.cuts = CutDetector(fps)
        self.identity = identity if identity is not None else Identity()
        self._given_identity = identity is not None and len(identity) > 0  # follow this person, not the largest face
        self.others = others or []  # other people's looks: a face nearer one of theirs is not the person's
        self._embed = embed
        self.embeddings = 0  # descriptors computed (for the benchmarks)
        per_frame = float(np.clip(REFERENCE_FPS / max(fps, 1e-3), 0.4, 2.5))  # longer between frames: more motion
        self.max_step, self.max_first_step = MAX_STEP * per_frame, MAX_FIRST_STEP * per_frame
        self.max_scale_step = MAX_SCALE_STEP ** per_frame
        self.chosen: Detection | None = None  # the face chosen at the first frame with a face
        self.chosen_frame: int | None = None
        self._frame = -1
        self._previous: Detection | None = None  # the followed face on the previous frame
        self._predicted: Detection | None = None  # where its motion puts it on this frame
        self._speed_known = False  # the prediction extrapolates a motion (else it is the previous face)
        self._last_seen: Detection | None = None
        self._last_seen_frame = 0
        self._others: list[Detection] = []  # other people (confident faces) at the last search in this shot
        self._strangers: list[tuple[Detection, int]] = []  # faces found not to be the person, and when
        self._lost_frames = 0
        self._segment = 0
        self._segment_has_face = False
        self._cut_pending = False  # a cut was seen and the face has not been found since
        self._held: list[tuple[np.ndarray, TrackedFrame]] = []  # frames held back while the face is lost
        self._identified = False  # this segment's face is surely the person: chosen, recognised, or followed from one
        self._described_frame = _LONG_AGO  # the last look learned
        self._checked_frame = _LONG_AGO  # the last check by recognition
        self._suspect = False  # the last check found the face near the threshold

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
        released: list[TrackedFrame] = []
        if cut:
            released = self.flush()  # frames held back before a cut are never followed back into
            self._start_shot()
        if self._previous is not None and not cut:
            found = self._follow(rgb, self._predicted)
            if found is not None and not self._continues(found):
                # the face jumped: a cut the picture did not show, or the follow slid onto someone else
                cut = True
                self._start_shot()
                found = self._recognised(rgb, [found])
        if found is None and (self._previous is not None or cut or self._search_due() or self._held_full(rgb)):
            expected = self._predicted if self._previous is not None else None
            found = self._choose(rgb, self.search.find(rgb))
            searched = True
            if found is not None and expected is not None and not cut and not self._continues(found):
                cut = True  # found again far from where the follow expected it: a new shot, as after a cut
                released = self.flush()
                self._new_segment()
        elif found is None and self._last_seen is not None:  # between searches: where it was last seen
            found = self._choose_again(rgb, self._follow_all(rgb, self._last_seen))
        if found is not None and not self._still_theirs(rgb, found):
            self._strangers.append((found, self._frame))
            found = None  # somebody else now: the follow ends here, a gap
        tracked = self._record(found, cut, searched)
        if found is None and not searched:
            self._held.append((rgb, tracked))
            return released
        if found is not None:
            self._follow_back(found, tracked.segment)
        return released + self.flush() + [tracked]

    def flush(self) -> list[TrackedFrame]:
        """The frames still held back (at the clip's end)."""
        out = [tracked for _, tracked in self._held]
        self._held.clear()
        return out

    def _start_shot(self) -> None:
        """A cut: the person must be recognised again; what was known of this shot's people goes."""
        self._cut_pending = True
        self._others, self._strangers = [], []
        self._identified = False
        self._described_frame = self._checked_frame = _LONG_AGO
        self._new_segment()

    def _follow_back(self, found: Detection, segment: int) -> None:
        """Follow a face found again backwards through the frames held back before it."""
        later = found
        for i in range(len(self._held) - 1, -1, -1):
            rgb, _ = self._held[i]
            face = self._follow(rgb, later)
            distance, ratio = _step(later, face) if face is not None else (np.inf, np.inf)
            if distance > self.max_first_step or ratio > self.max_scale_step:
                return
            self._held[i] = (rgb, TrackedFrame(face, segment, False, False, self._identified))
            later = face

    def _embeddings(self, rgb: np.ndarray, faces: list[Detection]) -> np.ndarray:
        if self._embed is None:
            self._embed = default_embed()
        self.embeddings += len(faces)
        return self._embed(rgb, faces)

    def _still_theirs(self, rgb: np.ndarray, face: Detection) -> bool:
        """Check the followed face by recognition when due (False: it is somebody else's); seed and grow the gallery."""
        if not recognisable(face) or self._checked_frame == self._frame:
            return True
        if not len(self.identity):  # the chosen face, described once it is large enough to stand for the person
            if self._identified:
                self.identity.anchor(self._embeddings(rgb, [face])[0])
                self._checked_frame = self._described_frame = self._frame
            return True
        interval = SUSPECT_INTERVAL if self._suspect else RECHECK_INTERVAL
        if self._frame - self._checked_frame < interval * self.fps:
            return True
        descriptor = self._embeddings(rgb, [face])
        distance = self._theirs(descriptor)[0]  # inf: nearer somebody else's looks
        # followed since it was recognised: still theirs within STILL_SAME; followed by place: recognised afresh
        theirs = self.identity.still_theirs(descriptor)[0] if self._identified else distance <= SAME_PERSON
        if not theirs or not np.isfinite(distance):
            self._identified = False
            return False
        self._identified = True
        self._note_look(descriptor[0], face)
        return True

    def _note_look(self, descriptor: np.ndarray, face: Detection) -> None:
        """A look found to be the person's: checked now; learned about once a second when the face is clear."""
        self._checked_frame = self._frame
        self._suspect = float(self.identity.distance(descriptor)[0]) >= SUSPECT
        due = self._frame - self._described_frame >= DESCRIBE_INTERVAL * self.fps
        if due and face.confidence >= CONFIDENT and self.identity.learn(descriptor, self._frame):
            self._described_frame = self._frame

    def _theirs(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) each descriptor's distance to the person's looks; inf where another person's looks are nearer."""
        found = self.identity.distance(descriptors)
        for other in self.others:
            found = np.where(other.distance(descriptors) < found, np.inf, found)
        return found

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

    def _extrapolate(self, previous: Detection, current: Detection) -> Detection:
        """Where the face will be on the next frame at its present speed."""
        motion = current.centre - previous.centre
        zoom = np.clip(current.size / max(previous.size, 1.0), 1 / self.max_scale_step, self.max_scale_step)
        centre = current.centre + motion
        return Detection(centre + (current.landmarks68 - current.centre) * zoom, current.confidence)

    def _new_segment(self) -> None:
        if self._segment_has_face:
            self._segment += 1
            self._segment_has_face = False

    def _held_full(self, rgb: np.ndarray) -> bool:
        return len(self._held) + 1 >= min(MAX_HELD_S * self.fps, MAX_HELD_BYTES / max(rgb.nbytes, 1))

    def _search_due(self) -> bool:
        if self._lost_frames < EVERY_FRAME_SEARCHES:
            return True
        rate = SEARCHES_PER_SECOND if self._lost_frames < self.fps else SEARCHES_PER_SECOND_LATER
        return (self._lost_frames - EVERY_FRAME_SEARCHES) % max(1, round(self.fps / rate)) == 0

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
        limit = self.max_step if self._speed_known else self.max_first_step
        return distance <= limit and ratio <= self.max_scale_step

    def _choose(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """The followed person among the faces a search found (None: not among them)."""
        if self.chosen is None:
            return self._first_choice(rgb, faces)
        if self._previous is not None and not self._cut_pending:  # the follow step failed on the previous face
            near = [face for face in faces if self._continues(face)]
            if near:
                return min(near, key=lambda face: _step(self._predicted, face)[0])
        chosen = self._choose_again(rgb, faces)
        self._others = [face for face in faces if face is not chosen and face.confidence >= CONFIDENT]
        return chosen

    def _choose_again(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """After a cut or a gap: the face that is the person's, by their looks (by place only when too small)."""
        faces = credible(faces)
        if self._last_seen is not None and not self._cut_pending and (
                not recognisable(self._last_seen) or not len(self.identity)):
            return self._reacquire_by_place(faces)  # the person has been too small to recognise, or to describe
        if not len(self.identity):  # after a cut, never described: chosen again by the first rule
            chosen = self._by_rule(rgb, faces)
            self._identified = chosen is not None
            return chosen
        return self._recognised(rgb, faces)

    def _recognised(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """The face among `faces` that is the person's, recognised by the embedding (None: nobody's is)."""
        candidates = [face for face in faces if recognisable(face) and not self._known_stranger(face)]
        if not candidates:
            return None
        descriptors = self._embeddings(rgb, candidates)
        found = self._theirs(descriptors)
        best = int(np.argmin(found)) if found.min() <= SAME_PERSON else None
        self._strangers += [(face, self._frame) for i, face in enumerate(candidates) if i != best]
        if best is None:
            return None
        self._identified = True
        self._note_look(descriptors[best], candidates[best])
        return candidates[best]

    def _known_stranger(self, face: Detection) -> bool:
        """The face is one found, in the last second of this shot, not to be the person (and has not moved)."""
        memory = STRANGER_MEMORY * self.fps
        self._strangers = [(other, frame) for other, frame in self._strangers if self._frame - frame <= memory]
        return any(_step(other, face)[0] <= self.max_first_step and _step(other, face)[1] <= self.max_scale_step
                   for other, _ in self._strangers)

    def _first_choice(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        chosen = self._recognised(rgb, credible(faces)) if self._given_identity else self._by_rule(rgb, faces)
        if chosen is None:
            return None
        self.chosen, self.chosen_frame = chosen, self._frame
        self._identified = True
        self._others = [face for face in faces if face is not chosen and face.confidence >= CONFIDENT]
        return chosen

    def _by_rule(self, rgb: np.ndarray, faces: list[Detection]) -> Detection | None:
        """The face the user's rule picks: the one nearest their point, or the largest."""
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

            return min(faces, key=lambda face: (distance_to_point(face), -face.size))
        return max(credible(faces), key=lambda face: face.size) if faces else None

    def _reacquire_by_place(self, faces: list[Detection]) -> Detection | None:
        """A face too small to recognise, lost in the same shot: the face nearest where it was last
        seen, never where another person was seen (the distance allowed grows with the time it was gone)."""
        last = self._last_seen
        seconds = (self._frame - self._last_seen_frame) / max(self.fps, 1e-3)
        reach = REACQUIRE_DISTANCE + REACQUIRE_SPEED * seconds
        candidates = []
        for face in faces:
            distance, ratio = _step(last, face)
            if ratio > REACQUIRE_SCALE or distance > reach:
                continue  # too far to be the face lost, whether or not anyone else was seen
            if any(_step(other, face)[0] < min(distance, self.max_first_step) for other in self._others):
                continue  # where another person was seen: that person, not ours
            candidates.append((distance, face))
        self._identified = False  # by place only
        return min(candidates, key=lambda item: item[0])[1] if candidates else None
