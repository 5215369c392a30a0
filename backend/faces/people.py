"""Who appears in a clip: every person, told apart by face recognition, across shots.

One pass over the clip: the whole frame is searched on the first frame of each shot (`CutDetector`)
and twice a second (`SCAN_INTERVAL`); every clear face found (confident, large enough to
recognise) is described (`identity`). The descriptions are grouped into people in time order: a face
joins the person whose looks are nearest, within `SAME_PERSON`, and two faces of one frame are never
one person. Groups that turn out alike afterwards (a person first seen small, then close) are joined
when they never share a frame. People seen on fewer than `MIN_SIGHTINGS` searches are left out (a
passer-by seen once), unless their face was large in the frame (`CLOSE_FACE`: a short close-up).

Each person found is then followed through the clip like a chosen face (`tracker.FaceTracker` with
their `Identity`), one after another, which is what `reconstruct --people all` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .crop import crop_region
from .cuts import CutDetector
from .footage import Footage
from .identity import GALLERY, SAME_PERSON, Embed, Identity, distances, recognisable
from .landmarks import Detection, Landmarker, square_box
from .search import FaceSearch
from .tracker import CONFIDENT, default_embed

SCAN_INTERVAL = 0.5  # seconds between two whole-frame searches within a shot
MIN_SIGHTINGS = 2  # a person must be found on this many searches to count (on screen for SCAN_INTERVAL)...
CLOSE_FACE = 1 / 12  # ...or once with a face this large (of the frame's shorter side): someone the shot is about
THUMBNAIL_PX = 160  # side of a person's thumbnail
THUMBNAIL_MARGIN = 1.8  # thumbnail side / face size


@dataclass
class Sighting:
    frame: int  # footage frame
    face: Detection
    descriptor: np.ndarray  # (128,)
    thumbnail: np.ndarray  # (THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8: the face as seen here


@dataclass
class Person:
    number: int = 0  # 1, 2, ... in order of first appearance (set once everyone is found)
    sightings: list[Sighting] = field(default_factory=list)

    @property
    def first_frame(self) -> int:
        return self.sightings[0].frame

    @property
    def frames(self) -> set[int]:
        return {sighting.frame for sighting in self.sightings}

    @property
    def descriptors(self) -> np.ndarray:
        return np.array([sighting.descriptor for sighting in self.sightings], np.float32)

    def identity(self) -> Identity:
        """Their looks, for following them: spread over every sighting (at most `GALLERY`)."""
        keep = np.unique(np.linspace(0, len(self.sightings) - 1, min(GALLERY, len(self.sightings))).round().astype(int))
        return Identity(self.descriptors[keep])

    def clearest(self) -> Sighting:
        """The sighting with the largest, most confident face."""
        return max(self.sightings, key=lambda sighting: sighting.face.size * sighting.face.confidence)


def thumbnail(rgb: np.ndarray, face: Detection) -> np.ndarray:
    """(THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8: the face with some of the head around it."""
    return crop_region(rgb, square_box(face.centre, face.size * THUMBNAIL_MARGIN), THUMBNAIL_PX)


def write_png(path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not encode the thumbnail")
    path.write_bytes(data.tobytes())


def group(sightings_by_frame: list[list[Sighting]]) -> list[Person]:
    """Sightings (per searched frame, in time order) grouped into people; see the module's docstring."""
    people: list[Person] = []
    for sightings in sightings_by_frame:
        if not sightings:
            continue
        descriptors = np.array([sighting.descriptor for sighting in sightings])
        # distance of every face of this frame to every person's nearest look
        table = np.array([distances(descriptors, person.descriptors).min(axis=1) for person in people]).T \
            if people else np.full((len(sightings), 0), np.inf)
        taken: set[int] = set()
        claimed: set[int] = set()  # people given a face of this frame already: one face each
        for face, person in sorted(np.ndindex(*table.shape), key=lambda index: table[index]):
            if table[face, person] > SAME_PERSON:
                break
            if face in taken or person in claimed:
                continue
            people[person].sightings.append(sightings[face])
            taken.add(face)
            claimed.add(person)
        people += [Person(sightings=[sighting]) for index, sighting in enumerate(sightings) if index not in taken]
    return _join_alike(people)


def _join_alike(people: list[Person]) -> list[Person]:
    """Join two people whose looks lie within SAME_PERSON somewhere and who are never on one frame."""
    joined = True
    while joined:
        joined = False
        for a in range(len(people)):
            for b in range(a + 1, len(people)):
                close = distances(people[a].descriptors, people[b].descriptors).min() <= SAME_PERSON
                if close and not people[a].frames & people[b].frames:
                    merged = sorted(people[a].sightings + people[b].sightings, key=lambda sighting: sighting.frame)
                    people[a] = Person(sightings=merged)
                    del people[b]
                    joined = True
                    break
            if joined:
                break
    return people


def find_people(footage: Footage, start: int = 0, end: int | None = None, cancel: threading.Event | None = None,
                on_progress: Callable[[int, int], None] = lambda done, total: None,
                embed: Embed | None = None) -> list[Person]:
    """Everyone seen on at least MIN_SIGHTINGS searches (or once, close up), numbered by first appearance."""
    end = footage.frame_count if end is None else min(end, footage.frame_count)
    embed = embed or default_embed()
    interval = max(1, round(SCAN_INTERVAL * footage.fps))
    cuts = CutDetector(footage.fps)
    landmarker = Landmarker()
    search = FaceSearch(landmarker)
    sightings_by_frame: list[list[Sighting]] = []
    since_search = interval
    try:
        for index, rgb in footage.frames(start, end):
            if cancel is not None and cancel.is_set():
                break
            since_search = 0 if cuts.push(rgb) or since_search >= interval - 1 else since_search + 1
            if since_search == 0:
                faces = [face for face in search.find(rgb) if face.confidence >= CONFIDENT and recognisable(face)]
                descriptors = embed(rgb, faces) if faces else np.zeros((0, 128), np.float32)
                sightings_by_frame.append([Sighting(index, face, descriptor, thumbnail(rgb, face))
                                           for face, descriptor in zip(faces, descriptors)])
            on_progress(index + 1 - start, end - start)
    finally:
        search.close()
        landmarker.close()
    close = CLOSE_FACE * min(footage.width, footage.height)
    people = [person for person in group(sightings_by_frame)
              if len(person.sightings) >= MIN_SIGHTINGS or person.clearest().face.size >= close]
    people.sort(key=lambda person: person.first_frame)
    for number, person in enumerate(people, start=1):
        person.number = number
    return people
