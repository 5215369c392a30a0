"""`bpy.ops.sheap.reconstruct_head`: footage -> backend -> result -> FLAME rig in the scene.

In the UI it is modal (job_modal.py): a timer drains the backend's events, the status bar and the panel show
"frame 812/2400 - 24 fps", Esc or the panel's Cancel stops it within a second (the backend
process is ended). In background mode (`blender -b`, bpy as a module) it runs synchronously and
prints progress lines on stdout. The scene is touched only at the very end, by the importer,
which builds everything or nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import bpy

from ..backend_client.reconstruction import Reconstruction, Request
from ..core.result.face_choice import parse_face
from ..core.result.people_file import base_name, person_result_name
from ..core.result.result_format import SMOOTHING_GROUPS
from ..settings import preferences
from .job_modal import JobModal, forget_active_run


def footage_of_clip(clip: bpy.types.MovieClip) -> str:
    """What the backend reads for a movie clip: the file, or the folder of an image sequence."""
    path = bpy.path.abspath(clip.filepath)
    return os.path.dirname(path) if clip.source == "SEQUENCE" else path


def result_path_for(footage: str) -> Path:
    """Where the result goes: beside the .blend when saved, else in the extension's user folder.

    Named after the footage plus a short hash of its full path: two clips called `face.mp4` in
    different folders get results (and rigs) of their own; the same clip again reuses its own.
    """
    path = Path(os.path.abspath(footage.rstrip("/\\")))
    name = path.parent.name if "%" in path.name else path.name  # frames/%04d.png: the folder names it
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem if Path(name).suffix else name) or "footage"
    tag = hashlib.sha1(os.fspath(path).encode("utf-8")).hexdigest()[:8]
    folder = Path(bpy.path.abspath("//sheap_results")) if bpy.data.filepath else preferences.user_dir() / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}-{tag}.sheap.safetensors"


def person_output(footage: str, number: int) -> Path:
    """Where a run following person N writes: the file an Everyone run writes for that person."""
    output = result_path_for(footage)
    return output.with_name(person_result_name(base_name(output), number))


def parse_people(text: str) -> str | int:
    """ "all" or a person's number from the operator's `people`, else ValueError with the one-line reason."""
    text = text.strip().lower()
    if text == "all":
        return "all"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"people {text!r}: give all, or a person's number (1, 2, ... as Find People numbers them)")


def whom_to_follow(face_text: str, people_text: str, settings, footage: str, start: int,
                   end: int | None) -> tuple[tuple[float, float] | None, str | int | None] | str:
    """(face, people) for the request from the operator's properties, else the panel's choice; or why not."""
    face_text, people_text = face_text.strip(), people_text.strip()
    try:
        if face_text and people_text:
            return "face and people both say whom to follow: give one of them"
        if people_text:
            return None, parse_people(people_text)
        if face_text:
            return parse_face(face_text), None
    except ValueError as exc:
        return str(exc)
    if settings.face_rule == "EVERYONE":
        return None, "all"
    if settings.face_rule != "PERSON":
        return settings.face(), None
    if settings.person < 1 or not settings.people_file:
        return "no person chosen: press Find People, then click the person to follow"
    if not settings.people_found_for(footage, start, end):
        return "the people shown were found in other footage or another frame range: press Find People again"
    return None, int(settings.person)


def parse_smooth_groups(text: str) -> dict[str, float] | str:
    """ "expression=0.3, jaw=0.1" -> {"expression": 0.3, "jaw": 0.1}, or the one-line reason it is wrong."""
    groups = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in SMOOTHING_GROUPS:
            return f"smoothing group {name!r} unknown; known: {', '.join(SMOOTHING_GROUPS)}"
        try:
            groups[name] = float(value)
        except ValueError:
            return f"smoothing group {name}: {value.strip()!r} is not a strength from 0 to 1"
        if not 0.0 <= groups[name] <= 1.0:
            return f"smoothing group {name}: {groups[name]} is not a strength from 0 to 1"
    return groups


class SHEAP_OT_reconstruct_head(JobModal, bpy.types.Operator):
    """Reconstruct an animated FLAME head from the footage with SHeaP"""

    bl_idname = "sheap.reconstruct_head"
    bl_label = "Reconstruct Head"
    # No UNDO flag: with it, Adjust Last Operation would re-run the whole reconstruction for a
    # changed property. The import pushes its own undo step instead (see _finish).
    bl_options = {"REGISTER"}

    footage: bpy.props.StringProperty(name="Footage", subtype="FILE_PATH",
                                      description="Video, image folder, printf pattern or image; "
                                                  "empty: the panel's choice")
    flame: bpy.props.StringProperty(name="FLAME", subtype="FILE_PATH", description="Empty: the preferences'")
    weights: bpy.props.StringProperty(name="Weights", subtype="FILE_PATH", description="Empty: the preferences'")
    backend_python: bpy.props.StringProperty(name="Backend Python", subtype="FILE_PATH",
                                             description="Empty: the preferences'")
    device: bpy.props.EnumProperty(name="Device", items=[("PREFS", "Preferences", ""), ("auto", "Auto", ""),
                                                         ("cuda", "CUDA", ""), ("cpu", "CPU", "")], default="PREFS")
    precision: bpy.props.EnumProperty(name="Precision", items=[("PREFS", "Preferences", ""), ("auto", "Auto", ""),
                                                               ("fp32", "Float32", ""), ("bf16", "BFloat16", ""),
                                                               ("fp16", "Float16", "")], default="PREFS")
    frame_start: bpy.props.IntProperty(name="First frame", default=-1, min=-1,
                                       description="First footage frame (0-based); -1: the panel's")
    frame_end: bpy.props.IntProperty(name="End frame", default=-1, min=-1,
                                     description="Footage frame after the last; -1: the panel's / the clip's end")
    batch_size: bpy.props.IntProperty(name="Batch size", default=0, min=0, description="0: the preferences'")
    smooth: bpy.props.FloatProperty(name="Smoothing", default=-1.0, min=-1.0, max=1.0,
                                    description="0 off .. 1 strongest; -1: the panel's")
    smooth_groups: bpy.props.StringProperty(
        name="Smoothing per group", default="",
        description='Per-group strengths, e.g. "expression=0.3,jaw=0.1" (groups: expression, eyelids, jaw, '
                    'head, eyes, translation). Empty: the panel\'s')
    onto_selected: bpy.props.BoolProperty(name="Onto selected rig", default=False)
    gaussians: bpy.props.BoolProperty(name="Gaussians", default=False,
                                      description="Bind Gaussians to the head and show their preview; "
                                                  "unset: the panel's checkbox")
    gaussian_count: bpy.props.IntProperty(name="Gaussian count", default=0, min=0, max=2_000_000,
                                          description="0: the panel's")
    face: bpy.props.StringProperty(
        name="Face", default="",
        description='Which face to follow: "largest", or "X,Y", a point on the first frame of the range as '
                    "fractions 0..1 of the frame's width and height from its top-left corner (the person "
                    "nearest it). Empty: the panel's")
    people: bpy.props.StringProperty(
        name="People", default="",
        description='Whom to follow instead of one face: "all", a rig per person who appears (a people file), or '
                    '"N", person N as Find People numbers them. Empty: the panel\'s')

    # -- gathering the request ------------------------------------------------------------------
    def _request(self, context) -> Request | str:
        """The run's request, or the one-line reason it cannot start."""
        prefs = preferences.get_preferences(context)
        settings = context.scene.sheap
        footage = bpy.path.abspath(self.footage) if self.footage else settings.footage_path(context)
        if not footage:
            return "No footage: choose a movie clip or a file in the SHeaP panel"
        if not os.path.exists(footage) and "%" not in footage:
            return f"{footage}: footage not found"
        flame = bpy.path.abspath(self.flame) if self.flame else (prefs and bpy.path.abspath(prefs.flame_path)) or ""
        weights = bpy.path.abspath(self.weights) if self.weights else (prefs.weights_path() if prefs else "")
        python = (bpy.path.abspath(self.backend_python) if self.backend_python
                  else prefs.python_path() if prefs else str(preferences.default_backend_python()))
        problems = preferences.readiness(python, flame, weights)
        if problems:
            return f"{problems[0][0]}: {problems[0][1]}"
        start = self.frame_start if self.frame_start >= 0 else settings.start
        end = self.frame_end if self.frame_end >= 0 else (settings.end if settings.end > 0 else None)
        smooth = self.smooth if self.smooth >= 0 else settings.smooth
        groups = parse_smooth_groups(self.smooth_groups) if self.smooth_groups else settings.smooth_groups()
        if isinstance(groups, str):
            return groups
        gaussians = self.gaussians if self.properties.is_property_set("gaussians") else settings.gaussians
        whom = whom_to_follow(self.face, self.people, settings, footage, start, end)
        if isinstance(whom, str):
            return whom
        face, people = whom
        if people == "all" and self.onto_selected:
            return "Everyone makes a rig per person: onto a selected rig takes one face or person"
        output = person_output(footage, people) if isinstance(people, int) else result_path_for(footage)
        # the people Find People listed for this footage and range: the backend reads their looks, no search again
        people_file = bpy.path.abspath(settings.people_file) if isinstance(people, int) and \
            settings.people_found_for(footage, start, end) else None
        return Request(
            footage=footage, output=str(output), flame=flame, weights=weights,
            backend_python=python,
            device=self.device if self.device != "PREFS" else (prefs.device if prefs else "auto"),
            precision=self.precision if self.precision != "PREFS" else (prefs.precision if prefs else "auto"),
            start=start, end=end, batch_size=self.batch_size or (prefs.batch_size if prefs else 16), smooth=smooth,
            smooth_groups=groups,
            gaussians=gaussians, gaussian_count=self.gaussian_count or settings.gaussian_count, face=face,
            people=people, people_file=people_file,
        )

    # -- finishing: the only place the scene changes ----------------------------------------------
    def _finish(self, context, run: Reconstruction) -> set[str]:
        forget_active_run()
        if run.state != "done":
            if run.state == "cancelled":
                self.report({"WARNING"}, "SHeaP: cancelled; the scene is unchanged")
            else:
                self.report({"ERROR"}, f"SHeaP: {run.error}")
            return {"CANCELLED"}
        from ..core.errors import InputError
        from .importer import import_result
        from .people_import import import_people

        people = getattr(run.request, "people", None)
        try:
            if people == "all":
                made = import_people(context, run.people_path, run.request.flame, gaussians=run.request.gaussians)
            else:
                made = import_result(context, run.result_path, run.request.flame, onto_selected=self.onto_selected,
                                     gaussians=run.request.gaussians,
                                     person=people if isinstance(people, int) else None)
        except InputError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        if not bpy.app.background:  # Ctrl+Z takes the import back (there is no undo stack in background mode)
            bpy.ops.ed.undo_push(message="Reconstruct Head")
        demo = run.demo or made.is_demo
        note = " (demo weights: not a real reconstruction)" if demo else ""
        if people == "all":
            names = ", ".join(rig.collection.name for rig in made.rigs.values())
            line = f"SHeaP: {len(made.rigs)} {'person' if len(made.rigs) == 1 else 'people'} reconstructed into {names}"
            if made.without_result:
                line += f" (no result for person {', '.join(map(str, made.without_result))})"
        else:
            line = f"SHeaP: {run.total} frames reconstructed into {made.collection.name}"
        self.report({"WARNING" if demo else "INFO"}, line + note)
        return {"FINISHED"}

    @staticmethod
    def _start(request: Request) -> Reconstruction:
        return Reconstruction(request)


class SHEAP_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction or Find People (the scene stays as it was)"""

    bl_idname = "sheap.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        context.scene.sheap.cancel_requested = True
        return {"FINISHED"}


classes = (SHEAP_OT_reconstruct_head, SHEAP_OT_cancel)
