"""Import a people file (`NAME.people.json`): one FLAME rig per person with a result, all or nothing.

Each person's result goes through the ordinary importer (importer.py) into a collection of its own,
"SHeaP <clip> person N", the number kept in the rig root's `sheap_person` (and the people file in
`sheap_people`), so importing the file again re-animates each person's rig instead of adding one.
Each rig keeps its own camera: a camera's per-frame lens and shift are that person's crops, so one
camera cannot show every head where the footage has it. The first person's camera is the scene
camera (fps, frame range, render size, render over footage and the lights come with it, once);
the timeline gets one set of markers for the clip: "no face" where nobody's face is found, "cut" at
every hard cut any person's result names. Every file is read and checked before the scene is
touched, and one Transaction covers every rig: a failure leaves the scene as it was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ..core.errors import InputError
from ..core.result.face_choice import cut_rows
from ..core.result.people_file import PeopleFile, read_people
from ..core.result.result_format import read_result
from ..rig import timeline
from ..rig.build import ROLE
from ..rig.transaction import Transaction
from .importer import ImportedRig, import_result


@dataclass
class ImportedPeople:
    """What a people import made or re-animated, person number -> rig."""

    path: Path
    rigs: dict[int, ImportedRig]
    without_result: list[int]  # people found but not reconstructed (no result in the file)
    is_demo: bool
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rigs = list(self.rigs.values())
        what = "re-animated" if all(made.reused for made in rigs) else "imported"
        names = ", ".join(made.collection.name for made in rigs)
        text = (f"SHeaP: {what} {len(rigs)} {'person' if len(rigs) == 1 else 'people'} ({names}), "
                f"{rigs[0].n_frames} frames, in {self.seconds:.2f} s")
        if self.without_result:
            text += f"; no result for person {', '.join(map(str, self.without_result))}"
        if self.is_demo:
            text += "; demo weights: not a real reconstruction"
        return text


def person_rig(scene: bpy.types.Scene, people_path: Path, number: int) -> bpy.types.Object | None:
    """The root of the rig an earlier import of this people file made for person `number`."""
    for obj in scene.objects:
        if (obj.get(ROLE) == "root" and obj.get("sheap_rig") and obj.get("sheap_person") == number
                and obj.get("sheap_people") == os.fspath(people_path)):
            return obj
    return None


def _checked(people_path: Path) -> tuple[PeopleFile, list[tuple[int, Path, int, np.ndarray, np.ndarray]]]:
    """The people file and, per person with a result: (number, result path, first row's offset, valid, cut rows)."""
    listing = read_people(people_path)
    people = []
    for entry in listing.people:
        if entry.result is None:
            continue
        path = listing.path_of(people_path, entry.result).resolve()
        if not path.is_file():
            raise InputError(path, f"person {entry.number}'s result, named in {people_path.name}, not found")
        result = read_result(path)  # an unreadable one is an InputError naming it
        offset = int(result.frame_index[0]) - int(listing.frame_range[0]) if result.n_frames else 0
        if offset < 0:
            raise InputError(path, f"starts at footage frame {int(result.frame_index[0])}, before the people file's "
                                   f"range {listing.frame_range[0]}-{listing.frame_range[1] - 1}")
        people.append((entry.number, path, offset, np.asarray(result.valid, dtype=bool),
                       cut_rows(path, result.metadata, result.frame_index)))
    if not people:
        found = len(listing.people)
        raise InputError(people_path, f"no person in it has a result ({found} found, none reconstructed): "
                                      "reconstruct Everyone to make them")
    return listing, people


def import_people(
    context: bpy.types.Context | None,
    people_path: str | os.PathLike,
    flame_path: str | os.PathLike,
    *,
    frame_start: int = 1,
    set_scene: bool = True,
    gaussians: bool = True,
    render_over_footage: bool = True,
) -> ImportedPeople:
    """Build (or re-animate) one rig per person of a people file; InputError (one line) leaves the scene as it was."""
    started = time.perf_counter()
    context = context or bpy.context
    scene, view_layer = context.scene, context.view_layer
    people_path = Path(people_path).resolve()
    listing, people = _checked(people_path)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    rigs: dict[int, ImportedRig] = {}
    warnings: list[str] = []
    tx = Transaction(scene, view_layer)
    try:
        for order, (number, path, offset, _, _) in enumerate(people):
            made = import_result(context, path, flame_path, target="AUTO",
                                 rig_object=person_rig(scene, people_path, number), frame_start=frame_start + offset,
                                 set_scene=set_scene and order == 0, gaussians=gaussians,
                                 render_over_footage=render_over_footage, transaction=tx, person=number,
                                 people_file=people_path, markers=False)
            rigs[number] = made
            warnings += [f"person {number}: {warning}" for warning in made.warnings
                         if not warning.startswith("demo weights")]
        # one set of markers for the clip: "no face" where nobody's face is, "cut" at every person's cuts
        length = max(offset + len(valid) for _, _, offset, valid, _ in people)
        anyone = np.zeros(length, dtype=bool)
        cuts = set()
        for _, _, offset, valid, rows in people:
            anyone[offset:offset + len(valid)] |= valid
            cuts.update(offset + int(row) for row in rows)
        timeline.remove_invalid_markers(scene)
        tx.markers += timeline.mark_invalid(scene, anyone, frame_start)
        timeline.remove_cut_markers(scene)
        tx.markers += timeline.mark_cuts(scene, np.array(sorted(cuts), dtype=np.int64), frame_start)
        if set_scene:  # the range covers every person's frames
            timeline.set_timing(scene, listing.fps, frame_start, length)
            scene.camera = rigs[people[0][0]].camera
    except BaseException:
        tx.rollback()
        raise
    tx.commit()
    is_demo = listing.demo or any(made.is_demo for made in rigs.values())
    if is_demo:
        warnings.insert(0, "demo weights: the stand-in predictor or FLAME was used, not a real reconstruction")
    without = [entry.number for entry in listing.people if entry.result is None]
    imported = ImportedPeople(people_path, rigs, without, is_demo, warnings)
    imported.seconds = time.perf_counter() - started
    return imported
