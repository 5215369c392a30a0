"""Everyone in a clip: find the people (`faces.people`), then reconstruct each one as a chosen face.

`reconstruct --people all -o DIR/NAME.sheap.safetensors` writes, beside each other:
- `NAME.person1.sheap.safetensors`, `NAME.person2...`: one result per person (frames where the
  person's face is not on screen are gaps, `valid` 0);
- `NAME.person1.png`, ...: a thumbnail of each person's clearest face;
- `NAME.people.json` (`sheap_blender.core.result.people_file`): who was found, their files and frames.
The `people` command writes the thumbnails and the JSON alone (who appears, before any reconstruction).
Every file is written under a temporary name and renamed; a run that fails or is cancelled removes
what it had written.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sheap_blender.core.atomic_file import replacing
from sheap_blender.core.errors import InputError
from sheap_blender.core.result.people_file import (
    PeopleFile,
    PersonEntry,
    base_name,
    frame_ranges,
    person_result_name,
    person_thumbnail_name,
    read_people,
    write_people,
)
from sheap_blender.core.result.result_format import Result, read_result, write_result

from .footage.reader import Footage
from .identity.gallery import MIN_RECOGNISABLE_PX, Embed
from .people.claims import Claim, give_up, settle
from .people.find_people import Person, find_people, write_png
from .people.tracker import default_embed
from .pipeline import ReconstructJob, reconstruct
from .progress import Cancelled

Report = Callable[[int, int], None]  # (done, total) frames


def people_path(output: Path) -> Path:
    """DIR/NAME.people.json for an output DIR/NAME.sheap.safetensors (or DIR/NAME.people.json itself)."""
    return output.parent / f"{base_name(output)}.people.json"


def discover(footage: Footage, start: int, end: int, stop: threading.Event, on_progress: Report,
             embed: Embed) -> list[Person]:
    """The people of the frame range; one line of error when there is nobody."""
    people = find_people(footage, start, end, stop, on_progress, embed)
    if stop.is_set():
        raise Cancelled()
    if not people:
        raise InputError(footage.path, f"nobody found in frames {start}-{end - 1}: no face clear enough to "
                                       f"recognise ({MIN_RECOGNISABLE_PX:g} px or more, confidently detected)")
    return people


@contextmanager
def _removed_on_failure() -> Iterator[list[Path]]:
    """Paths appended inside the block are removed if the block fails (or is cancelled)."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _one_face_one_person(job: ReconstructJob, claims: list[Claim], folder: Path, base: str, embed: Embed,
                         log: Callable[[str], None]) -> None:
    """A face two results hold goes to the person it is nearer (`claims`): the other result is rewritten without it."""
    lost = settle(job.footage, job.start, claims, embed)
    for claim in claims:
        frames = lost[claim.number]
        if frames.any():
            path = folder / person_result_name(base, claim.number)
            result = give_up(read_result(path), frames)
            write_result(path, result)  # atomically
            claim.valid &= ~frames
            log(f"person {claim.number}: {int(frames.sum())} frames of a face nearer somebody else's looks given up")


def _entries(people: list[Person], base: str, tracked: dict[int, list[int]]) -> list[PersonEntry]:
    """The people file's entries; `tracked`: the footage frames each person's result holds their face on."""
    entries = []
    for person in people:
        result = tracked.get(person.number)
        frames = [] if result is None else frame_ranges(result)
        looks = np.round(person.identity().anchors.astype(np.float64), 5).tolist()
        entries.append(PersonEntry(person.number, person_thumbnail_name(base, person.number), person.first_frame,
                                   sorted(person.frames), person_result_name(base, person.number) if result else None,
                                   frames, looks))
    return entries


def _write_thumbnails(people: list[Person], folder: Path, base: str, written: list[Path]) -> None:
    for person in people:
        path = folder / person_thumbnail_name(base, person.number)
        with replacing(path) as tmp:
            write_png(tmp, person.thumbnail)
        written.append(path)


def write_people_only(footage: Footage, start: int, end: int, output: Path, stop: threading.Event,
                      on_progress: Report, embed: Embed | None = None, demo: bool = False) -> list[Person]:
    """The `people` command: find who appears, write their thumbnails and `output` (a people file)."""
    people = discover(footage, start, end, stop, on_progress, embed or default_embed())
    base = base_name(output)
    with _removed_on_failure() as written:
        _write_thumbnails(people, output.parent, base, written)
        write_people(output, PeopleFile(os.fspath(footage.path), float(footage.fps), [start, end],
                                        _entries(people, base, {}), demo))
    return people


def known_people(job: ReconstructJob, people_file: Path) -> list[Person] | None:
    """The people of a people file made for this footage and frame range, with their looks (no search);
    None when the file holds no looks (written by an older version: the clip is searched again)."""
    listing = read_people(people_file)
    end = job.footage.frame_count if job.end is None else min(job.end, job.footage.frame_count)
    if os.path.normcase(os.path.abspath(listing.footage)) != os.path.normcase(os.path.abspath(job.footage.path)):
        raise InputError(people_file, f"lists the people of {listing.footage}, not of {job.footage.path}")
    if listing.frame_range != [job.start, end]:
        first, after = listing.frame_range
        raise InputError(people_file, f"lists the people of frames {first}-{after - 1}, not {job.start}-{end - 1}: "
                                      "find them again for this range")
    if not listing.people or not all(entry.looks for entry in listing.people):
        return None
    return [Person(number=entry.number, seen=list(entry.seen), anchors=np.array(entry.looks, np.float32))
            for entry in listing.people]


def choose_person(job: ReconstructJob, number: int, stop: threading.Event | None = None,
                  people_file: Path | None = None) -> None:
    """Follow person `number` as the `people` command numbers them for the same frame range (the search
    is the same, and so is the order; with `people_file`, that command's file is read instead of
    searching again): sets the job's person, and the others (not to be taken for them)."""
    end = job.footage.frame_count if job.end is None else min(job.end, job.footage.frame_count)
    found = known_people(job, people_file) if people_file is not None else None
    if found is None:
        found = discover(job.footage, job.start, end, stop or threading.Event(), lambda done, total: None,
                         job.embed or default_embed())
    if number > len(found):
        raise InputError(job.footage.path, f"person {number} asked for: {len(found)} "
                                           f"{'person' if len(found) == 1 else 'people'} found in frames "
                                           f"{job.start}-{end - 1}")
    job.person, job.others = found[number - 1], found


def reconstruct_everyone(job: ReconstructJob, output: Path, write_one: Callable[[Result, Path], None],
                         on_progress: Report, stop: threading.Event | None = None,
                         log: Callable[[str], None] = lambda text: None) -> tuple[Path, list[Person]]:
    """`reconstruct --people all`: every person's result, thumbnail and the people file; returns its path.

    Progress counts the frames of every pass: the search for people, then one pass per person.
    """
    stop = stop or threading.Event()
    end = job.footage.frame_count if job.end is None else min(job.end, job.footage.frame_count)
    frames = end - job.start
    embed = job.embed or default_embed()
    passes = 2  # a guess until the people are known: the search, and one person

    def report(offset: int) -> Report:
        return lambda done, total: on_progress(offset + done, frames * passes)

    people = discover(job.footage, job.start, end, stop, report(0), embed)
    passes = 1 + len(people)
    log(f"{len(people)} {'person' if len(people) == 1 else 'people'} found; reconstructing each in turn")
    base, folder = base_name(output), output.parent
    claims: dict[int, Claim] = {}  # what each result holds (boxes, not parameters: memory stays small)
    with _removed_on_failure() as written:
        _write_thumbnails(people, folder, base, written)
        for order, person in enumerate(people, start=1):
            person_job = dataclasses.replace(job, person=person, others=people, embed=embed)
            try:
                result = reconstruct(person_job, report(order * frames), stop)
            except InputError:  # found by the search, never followed on a frame: no result, said in the log
                log(f"person {person.number}: not followed on any frame; no result")
                continue
            path = folder / person_result_name(base, person.number)
            write_one(result, path)
            written.append(path)
            claims[person.number] = Claim.of(person.number, person.identity(), result)
            log(f"person {person.number}: {int(result.valid.sum())} of {result.n_frames} frames -> {path.name}")
            del result  # written, its boxes claimed: not held through the next person's pass
        _one_face_one_person(job, list(claims.values()), folder, base, embed, log)
        tracked = {number: (job.start + np.flatnonzero(claim.valid)).tolist() for number, claim in claims.items()}
        json_path = write_people(people_path(output), PeopleFile(
            os.fspath(job.footage.path), float(job.footage.fps), [job.start, end], _entries(people, base, tracked),
            job.is_demo))
    on_progress(frames * passes, frames * passes)
    return json_path, people
