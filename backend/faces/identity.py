"""Who a face is: face-recognition descriptors, and one person's gallery of them.

A face is described by dlib's face-recognition ResNet (King, "High quality face recognition with
deep metric learning", dlib.net 2017; 128 numbers, trained so that one person's faces lie within
0.6 of each other in Euclidean distance), run by torch (`face_net`) on the face cut out and aligned
by its landmarks (`face_chip`). The threshold and the distances it was chosen from are in
docs/people.md (`benchmarks/identity_distances.py` prints them).

A person's gallery keeps descriptors of their face from across the clip; a face is theirs when it
lies within `SAME_PERSON` of the nearest one. Faces smaller than `MIN_RECOGNISABLE_PX` carry too
little detail to say who they are: the tracker follows them by position only and never decides a
question of identity on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .landmarks import Detection

SAME_PERSON = 0.55  # at most this far from a person's nearest description: theirs (docs/people.md)
MIN_RECOGNISABLE_PX = 24.0  # faces smaller than this (extent of the 68 landmarks) are not compared
GALLERY = 24  # descriptions kept of one person

# embed(rgb, faces) -> (len(faces), 128) float32 descriptors
Embed = Callable[[np.ndarray, Sequence[Detection]], np.ndarray]


def distances(descriptors: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(n, m) Euclidean distances between (n, 128) and (m, 128) descriptors."""
    difference = descriptors[:, None, :] - gallery[None, :, :]
    return np.sqrt(np.einsum("nmk,nmk->nm", difference, difference))


def recognisable(face: Detection) -> bool:
    return face.size >= MIN_RECOGNISABLE_PX


class Identity:
    """One person's looks: descriptors of their face over the clip."""

    def __init__(self, descriptors: np.ndarray | None = None):
        self._gallery = np.zeros((0, 128), np.float32) if descriptors is None else np.asarray(descriptors, np.float32)

    def __len__(self) -> int:
        return len(self._gallery)

    @property
    def descriptors(self) -> np.ndarray:
        return self._gallery.copy()

    def add(self, descriptor: np.ndarray) -> None:
        """Remember one more look; when full, every second old one goes (the rest still spans the clip)."""
        if len(self._gallery) >= GALLERY:
            self._gallery = self._gallery[::2]
        self._gallery = np.concatenate([self._gallery, np.asarray(descriptor, np.float32)[None]])

    def distance(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) distance of each descriptor to the person's nearest look (inf with no look yet)."""
        descriptors = np.atleast_2d(descriptors)
        if not len(self._gallery):
            return np.full(len(descriptors), np.inf)
        return distances(descriptors, self._gallery).min(axis=1)

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
