"""Who appears in a clip: every person, told apart by face recognition, across shots.

One pass over the clip: the whole frame is searched on the first frame of each shot (`CutDetector`)
and twice a second (`SCAN_INTERVAL`); every clear face found (confident, large enough to
recognise) is described (`identity`). The descriptions are grouped into people in time order: a face
joins the person whose looks are nearest, within `SAME_PERSON`, and two faces of one frame are never
one person. Groups that turn out alike afterwards (a person first seen small, then close) are joined
when they never share a frame and several looks agree (`alike`: a median, not one close pair: the two
people of a shot/reverse-shot dialogue never share a frame either). A person keeps their
`MAX_SIGHTINGS` clearest sightings and one thumbnail, so memory does not grow with the clip. People
seen on fewer than `MIN_SIGHTINGS` searches are left out (a passer-by seen once), unless their face was
large in the frame (`CLOSE_FACE`: a short close-up).

Each person found is then followed through the clip like a chosen face (`tracker.FaceTracker` with
their `Identity`, everyone else's looks given too: a face nearer another person's looks is not
theirs), one after another, which is what `reconstruct --people all` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..faces.crop import crop_region
from ..faces.landmarks import Detection, Landmarker, square_box
from ..faces.search import FaceSearch
from ..footage.cuts import CutDetector
from ..footage.reader import Footage
from ..identity.gallery import ANCHORS, SAME_PERSON, Embed, Identity, distances, recognisable
from .tracker import CONFIDENT, default_embed

SCAN_INTERVAL = 0.5  # seconds between two whole-frame searches within a shot
MIN_SIGHTINGS = 2  # a person must be found on this many searches to count (on screen for SCAN_INTERVAL)...
CLOSE_FACE = 1 / 12  # ...or once with a face this large (of the frame's shorter side): someone the shot is about
THUMBNAIL_PX = 160  # side of a person's thumbnail
THUMBNAIL_MARGIN = 1.8  # thumbnail side / face size
MAX_SIGHTINGS = 64  # sightings (descriptors) kept per person, the clearest: memory and grouping stay bounded


@dataclass
class Sighting:
    frame: int  # footage frame
    face: Detection
    descriptor: np.ndarray  # (128,)

    @property
    def clarity(self) -> float:
        return float(self.face.size * self.face.confidence)


@dataclass
class Person:
    number: int = 0  # 1, 2, ... in order of first appearance (set once everyone is found)
    sightings: list[Sighting] = field(default_factory=list)  # the clearest MAX_SIGHTINGS, in time order
    seen: list[int] = field(default_factory=list)  # every frame a search found them on, in order
    thumbnail: np.ndarray | None = None  # (THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8: their clearest face
    anchors: np.ndarray | None = None  # (n, 128) their anchor looks, when known already (a people file)

    @property
    def first_frame(self) -> int:
        return self.seen[0]

    @property
    def frames(self) -> set[int]:
        return set(self.seen)

    @property
    def descriptors(self) -> np.ndarray:
        return np.array([sighting.descriptor for sighting in self.sightings], np.float32).reshape(-1, 128)

    def add(self, sighting: Sighting) -> None:
        """One more sighting; beyond MAX_SIGHTINGS the least clear one goes (its frame stays in `seen`)."""
        self.seen.append(sighting.frame)
        self.sightings.append(sighting)
        if len(self.sightings) > MAX_SIGHTINGS:
            del self.sightings[min(range(len(self.sightings)), key=lambda i: self.sightings[i].clarity)]

    def identity(self) -> Identity:
        """Their looks, for following them: the clearest sighting of each of ANCHORS stretches of their
        sightings (anchors: clear, and spread over the clip)."""
        if self.anchors is not None:
            return Identity(self.anchors)
        chunks = np.array_split(np.arange(len(self.sightings)), min(ANCHORS, len(self.sightings)))
        keep = [max(chunk, key=lambda i: self.sightings[i].clarity) for chunk in chunks if len(chunk)]
        return Identity(self.descriptors[keep])

    def clearest(self) -> Sighting:
        """The sighting with the largest, most confident face."""
        return max(self.sightings, key=lambda sighting: sighting.clarity)


def thumbnail(rgb: np.ndarray, face: Detection) -> np.ndarray:
    """(THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8: the face with some of the head around it."""
    return crop_region(rgb, square_box(face.centre, face.size * THUMBNAIL_MARGIN), THUMBNAIL_PX)


def write_png(path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not encode the thumbnail")
    path.write_bytes(data.tobytes())


class Grouping:
    """Sightings grouped into people as the searched frames come, in time order (see the module's docstring)."""

    def __init__(self):
        self.people: list[Person] = []

    def add(self, sightings: list[Sighting], rgb: np.ndarray | None = None) -> None:
        """A searched frame's sightings; `rgb`: the frame, for the thumbnail of whoever is clearest here."""
        if not sightings:
            return
        people = self.people
        descriptors = np.array([sighting.descriptor for sighting in sightings])
        # distance of every face of this frame to every person's nearest look
        table = np.array([distances(descriptors, person.descriptors).min(axis=1) for person in people]).T \
            if people else np.full((len(sightings), 0), np.inf)
        taken: dict[int, Person] = {}
        claimed: set[int] = set()  # people given a face of this frame already: one face each
        for face, person in sorted(np.ndindex(*table.shape), key=lambda index: table[index]):
            if table[face, person] > SAME_PERSON:
                break
            if face in taken or person in claimed:
                continue
            taken[face] = people[person]
            claimed.add(person)
        for index, sighting in enumerate(sightings):
            person = taken.get(index)
            if person is None:
                person = Person()
                people.append(person)
            clearest = person.clearest().clarity if person.sightings else -1.0
            person.add(sighting)
            if rgb is not None and sighting.clarity > clearest:
                person.thumbnail = thumbnail(rgb, sighting.face)

    def result(self) -> list[Person]:
        return _join_alike(self.people)


def group(sightings_by_frame: list[list[Sighting]]) -> list[Person]:
    """Sightings (per searched frame, in time order) grouped into people; see the module's docstring."""
    grouping = Grouping()
    for sightings in sightings_by_frame:
        grouping.add(sightings)
    return grouping.result()


def alike(a: Person, b: Person) -> bool:
    """Several looks agree that a and b are one person: the median, over the looks of the one with fewer,
    of the distance to the other's nearest look is within SAME_PERSON (one close pair is not enough)."""
    few, many = (a, b) if len(a.sightings) <= len(b.sightings) else (b, a)
    return float(np.median(distances(few.descriptors, many.descriptors).min(axis=1))) <= SAME_PERSON


def _merge(a: Person, b: Person) -> Person:
    merged = Person(seen=sorted(a.seen + b.seen))
    merged.sightings = sorted(a.sightings + b.sightings, key=lambda sighting: sighting.frame)
    while len(merged.sightings) > MAX_SIGHTINGS:
        del merged.sightings[min(range(len(merged.sightings)), key=lambda i: merged.sightings[i].clarity)]
    merged.thumbnail = a.thumbnail if a.clearest().clarity >= b.clearest().clarity else b.thumbnail
    return merged


def _join_alike(people: list[Person]) -> list[Person]:
    """Join two people who are `alike` and never on one frame."""
    joined = True
    while joined:
        joined = False
        for a in range(len(people)):
            for b in range(a + 1, len(people)):
                if not people[a].frames & people[b].frames and alike(people[a], people[b]):
                    people[a] = _merge(people[a], people[b])
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
    grouping = Grouping()
    since_search = interval
    try:
        for index, rgb in footage.frames(start, end):
            if cancel is not None and cancel.is_set():
                break
            since_search = 0 if cuts.push(rgb) or since_search >= interval - 1 else since_search + 1
            if since_search == 0:
                faces = [face for face in search.find(rgb) if face.confidence >= CONFIDENT and recognisable(face)]
                descriptors = embed(rgb, faces) if faces else np.zeros((0, 128), np.float32)
                grouping.add([Sighting(index, face, descriptor) for face, descriptor in zip(faces, descriptors)], rgb)
            on_progress(index + 1 - start, end - start)
    finally:
        search.close()
        landmarker.close()
    close = CLOSE_FACE * min(footage.width, footage.height)
    people = [person for person in grouping.result()
              if len(person.seen) >= MIN_SIGHTINGS or person.clearest().face.size >= close]
    people.sort(key=lambda person: person.first_frame)
    for number, person in enumerate(people, start=1):
        person.number = number
    return people
