"""`NAME.people.json`: the people found in a clip, one entry per person (docs/people.md).

Written by the backend's `people` command (who appears, with a thumbnail each) and by `reconstruct
--people all` (the same, with each person's result file and the frames their face is on). Paths
inside are relative to the JSON file's folder, so the folder can be moved as a whole.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic_file import replacing
from ..errors import InputError

FORMAT = "sheap-people"
VERSION = 1
SUFFIX = ".people.json"
RESULT_SUFFIX = ".sheap.safetensors"


@dataclass
class PersonEntry:
    number: int  # 1, 2, ... in order of first appearance
    thumbnail: str  # PNG of their clearest face, relative to the JSON's folder
    first_frame: int  # footage frame where they are first seen
    seen: list[int]  # footage frames where a whole-frame search found and recognised them
    result: str | None = None  # their result file, relative to the JSON's folder (None: not reconstructed)
    frames: list[list[int]] = field(default_factory=list)  # [first, last] footage frames their face is tracked on
    looks: list[list[float]] = field(default_factory=list)  # face-recognition descriptors (128 each) that anchor them

    @property
    def frame_count(self) -> int:
        return sum(last - first + 1 for first, last in self.frames)


@dataclass
class PeopleFile:
    footage: str
    fps: float
    frame_range: list[int]  # [start, end) footage frames looked at
    people: list[PersonEntry]
    demo: bool = False  # the results were made with demo weights (stand-ins)

    def path_of(self, json_path: Path, relative: str) -> Path:
        return Path(json_path).parent / relative


def base_name(output: str | os.PathLike) -> str:
    """`clip` for `DIR/clip.sheap.safetensors` (or `DIR/clip.people.json`, or any other name's stem)."""
    name = Path(output).name
    for suffix in (RESULT_SUFFIX, SUFFIX):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def person_result_name(base: str, number: int) -> str:
    return f"{base}.person{number}{RESULT_SUFFIX}"


def person_thumbnail_name(base: str, number: int) -> str:
    return f"{base}.person{number}.png"


def frame_ranges(frames: list[int]) -> list[list[int]]:
    """[[first, last], ...] of the runs of consecutive frame numbers (sorted input)."""
    ranges: list[list[int]] = []
    for frame in frames:
        if ranges and frame == ranges[-1][1] + 1:
            ranges[-1][1] = frame
        else:
            ranges.append([frame, frame])
    return ranges


def write_people(path: str | os.PathLike, people: PeopleFile) -> Path:
    path = Path(path)
    document = {"format": FORMAT, "version": VERSION, "footage": people.footage, "fps": people.fps,
                "frame_range": people.frame_range, "demo": people.demo,
                "people": [vars(person) for person in people.people]}
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def read_people(path: str | os.PathLike) -> PeopleFile:
    """Read and check a people file; anything wrong is one `InputError` naming the file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a people file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(path, f"not a people file (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise InputError(path, f"people file version {document.get('version')!r}; this version reads {VERSION}")
    try:
        people = [_person(entry) for entry in document["people"]]
        fps = float(document["fps"])
        frame_range = [int(value) for value in document["frame_range"]]
        if not math.isfinite(fps) or fps <= 0 or len(frame_range) != 2:
            raise ValueError("fps or frame_range out of range")
        return PeopleFile(str(document["footage"]), fps, frame_range, people, bool(document.get("demo", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"people file is damaged ({exc.__class__.__name__}: {exc})") from None


def _person(entry: dict) -> PersonEntry:
    for key in ("thumbnail", "result"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or os.path.isabs(value) or ".." in Path(value).parts):
            raise ValueError(f"person {entry.get('number')}: {key} must be a name beside the file")
    return PersonEntry(number=int(entry["number"]), thumbnail=str(entry["thumbnail"]),
                       first_frame=int(entry["first_frame"]), seen=[int(frame) for frame in entry["seen"]],
                       result=entry.get("result"),
                       frames=[[int(first), int(last)] for first, last in entry.get("frames", [])],
                       looks=_looks(entry.get("looks", [])))


def _looks(looks) -> list[list[float]]:
    looks = [[float(value) for value in look] for look in looks]
    if any(len(look) != 128 or not all(math.isfinite(value) for value in look) for look in looks):
        raise ValueError("a look is not 128 finite numbers")
    return looks
