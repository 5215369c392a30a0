"""Who a face is: face-recognition descriptors, and one person's gallery of them.

A face is described by dlib's face-recognition ResNet (King, "High quality face recognition with
deep metric learning", dlib.net 2017; 128 numbers, trained so that one person's faces lie within
0.6 of each other in Euclidean distance), run by torch (`face_net`) on the face cut out and aligned
by its landmarks (`face_chip`). The threshold and the distances it was chosen from are in
docs/people.md (`benchmarks/identity_distances.py` prints them).

A person's gallery holds two kinds of looks:
- anchors: the clearest looks of the person chosen (the face chosen, or a person's clearest sightings
  from the search for everyone); never dropped. A face within `SAME_PERSON` of an anchor is theirs;
  a face followed continuously since it was recognised stays theirs within `STILL_SAME`.
- learned looks, added while the person is followed, only when within `LEARN` of an anchor (tighter
  than `SAME_PERSON`); a face within `LEARN` of one is theirs too. Both radii together stay under
  the distance from a person to a cross-dissolve into somebody else (docs/people.md): the looks
  learned on the way through a dissolve never let the other person in. When full, the learned looks
  are thinned to keep them spread over the clip (the one with the nearest neighbours in time goes).

Faces smaller than `MIN_RECOGNISABLE_PX` carry too little detail to say who they are: the tracker
follows them by position only and never decides a question of identity on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..faces.landmarks import Detection

SAME_PERSON = 0.55  # at most this far from one of a person's anchor looks: theirs (docs/people.md)
# A face followed continuously since it was recognised is still theirs within this of an anchor: the different-
# person pairs' 1st percentile (docs/people.md); one person's looks over a shot of compressed video, turning, reach it.
STILL_SAME = 0.62
LEARN = 0.40  # a look is learned within this of an anchor; a face within this of a learned look is theirs
MIN_RECOGNISABLE_PX = 24.0  # faces smaller than this (extent of the 68 landmarks) are not compared
GALLERY = 24  # descriptions kept of one person, anchors included
ANCHORS = 12  # at most this many of them anchors

# embed(rgb, faces) -> (len(faces), 128) float32 descriptors
Embed = Callable[[np.ndarray, Sequence[Detection]], np.ndarray]


def distances(descriptors: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(n, m) Euclidean distances between (n, 128) and (m, 128) descriptors."""
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: an (n, m) table, never an (n, m, 128) one (float64: no cancellation)
    a, b = np.asarray(descriptors, np.float64), np.asarray(gallery, np.float64)
    squared = np.einsum("nk,nk->n", a, a)[:, None] + np.einsum("mk,mk->m", b, b)[None] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def recognisable(face: Detection) -> bool:
    return face.size >= MIN_RECOGNISABLE_PX


class Identity:
    """One person's looks: anchors (never dropped) and looks learned over the clip (see the module's docstring)."""

    def __init__(self, anchors: np.ndarray | None = None):
        self._anchors = np.zeros((0, 128), np.float32) if anchors is None else \
            np.asarray(anchors, np.float32).reshape(-1, 128)[:ANCHORS]
        self._learned = np.zeros((0, 128), np.float32)
        self._learned_at = np.zeros(0, np.int64)  # frame of each learned look

    def __len__(self) -> int:
        return len(self._anchors) + len(self._learned)

    @property
    def descriptors(self) -> np.ndarray:
        return np.concatenate([self._anchors, self._learned])

    @property
    def anchors(self) -> np.ndarray:
        return self._anchors.copy()

    def anchor(self, descriptor: np.ndarray) -> None:
        """Make this look an anchor (the face chosen, described once it is clear enough)."""
        if len(self._anchors) < ANCHORS:
            self._anchors = np.concatenate([self._anchors, np.asarray(descriptor, np.float32).reshape(1, 128)])

    def learn(self, descriptor: np.ndarray, frame: int) -> bool:
        """Learn one more look, when it lies within LEARN of an anchor; True when it was kept."""
        descriptor = np.asarray(descriptor, np.float32).reshape(1, 128)
        if not len(self._anchors) or distances(descriptor, self._anchors).min() > LEARN:
            return False
        room = GALLERY - len(self._anchors)
        if room <= 0:
            return False
        if len(self._learned) >= room:
            self._thin()
        self._learned = np.concatenate([self._learned, descriptor])
        self._learned_at = np.append(self._learned_at, frame)
        return True

    def _thin(self) -> None:
        """Drop the learned look whose neighbours in time are nearest: those left stay spread over the clip."""
        at = self._learned_at
        # the one whose removal leaves the shortest span between its neighbours; the first and last are kept
        drop = 0 if len(at) <= 2 else 1 + int(np.argmin(at[2:] - at[:-2]))
        self._learned = np.delete(self._learned, drop, axis=0)
        self._learned_at = np.delete(self._learned_at, drop)

    def distance(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) how far each descriptor is from being the person's: its distance to the nearest anchor,
        or to the nearest learned look scaled so that LEARN counts as SAME_PERSON (inf with no look)."""
        descriptors = np.atleast_2d(descriptors)
        found = np.full(len(descriptors), np.inf)
        if len(self._anchors):
            found = distances(descriptors, self._anchors).min(axis=1)
        if len(self._learned):
            found = np.minimum(found, distances(descriptors, self._learned).min(axis=1) * (SAME_PERSON / LEARN))
        return found

    def still_theirs(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) bool: each descriptor, of a face followed since it was recognised, is still this person's:
        within STILL_SAME of an anchor or LEARN of a learned look (never further: a dissolve's looks)."""
        descriptors = np.atleast_2d(descriptors)
        near = np.zeros(len(descriptors), bool)
        if len(self._anchors):
            near |= distances(descriptors, self._anchors).min(axis=1) <= STILL_SAME
        if len(self._learned):
            near |= distances(descriptors, self._learned).min(axis=1) <= LEARN
        return near

    def matches(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) bool: each descriptor is this person's."""
        return self.distance(descriptors) <= SAME_PERSON

    def best(self, descriptors: np.ndarray) -> int | None:
        """Index of the descriptor that is most surely this person's, None when none is theirs."""
        if not len(descriptors):
            return None
        found = self.distance(descriptors)
        index = int(np.argmin(found))
        return index if found[index] <= SAME_PERSON else None
