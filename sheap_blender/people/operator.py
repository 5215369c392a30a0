"""Find People (`sheap.find_people`), choosing a person, importing a people file (the list: panel.py).

Find People runs the backend's `people` command as a background job (modal in the UI, synchronous in
background mode), exactly as Reconstruct Head runs: progress in the panel and the status bar, Esc or
Cancel ends it. The people file goes beside the results (`<clip>-<hash>.found.people.json`); the panel
then shows each person's thumbnail (loaded with bpy.utils.previews) to click, and Reconstruct Head
follows that person (`--people N`) or, with Everyone, makes a rig per person (`--people all`).
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy_extras.io_utils import ImportHelper

from ..backend_client.find_people import FindPeople, PeopleRequest
from ..core.errors import InputError
from ..core.result.people_file import SUFFIX, base_name
from ..reconstruct.job_modal import JobModal
from ..reconstruct.operator import result_path_for
from ..settings import preferences
from ..settings.preferences import preferred_flame


def people_path_for(footage: str) -> Path:
    """Where Find People writes for this footage: beside its results, never one of an Everyone run's names."""
    output = result_path_for(footage)
    return output.with_name(f"{base_name(output)}.found{SUFFIX}")


class SHEAP_OT_find_people(JobModal, bpy.types.Operator):
    """Find who appears in the footage (face recognition): a picture of each, to follow one or everyone"""

    bl_idname = "sheap.find_people"
    bl_label = "Find People"
    bl_options = {"REGISTER"}

    footage: bpy.props.StringProperty(name="Footage", subtype="FILE_PATH", description="Empty: the panel's choice")
    backend_python: bpy.props.StringProperty(name="Backend Python", subtype="FILE_PATH",
                                             description="Empty: the preferences'")
    frame_start: bpy.props.IntProperty(name="First frame", default=-1, min=-1, description="-1: the panel's")
    frame_end: bpy.props.IntProperty(name="End frame", default=-1, min=-1,
                                     description="Footage frame after the last; -1: the panel's / the clip's end")

    def _request(self, context) -> PeopleRequest | str:
        """The run's request, or the one-line reason it cannot start."""
        settings = context.scene.sheap
        footage = bpy.path.abspath(self.footage) if self.footage else settings.footage_path(context)
        if not footage:
            return "No footage: choose a movie clip or a file in the SHeaP panel"
        if not os.path.exists(footage) and "%" not in footage:
            return f"{footage}: footage not found"
        prefs = preferences.get_preferences(context)
        python = (bpy.path.abspath(self.backend_python) if self.backend_python
                  else prefs.python_path() if prefs else str(preferences.default_backend_python()))
        if not os.path.isfile(python):
            return f"{python}: backend Python not found (run 'Set up backend' or set it in the preferences)"
        start = self.frame_start if self.frame_start >= 0 else settings.start
        end = self.frame_end if self.frame_end >= 0 else (settings.end if settings.end > 0 else None)
        return PeopleRequest(footage=footage, output=str(people_path_for(footage)), backend_python=python,
                             start=start, end=end)

    def _finish(self, context, run: FindPeople) -> set[str]:
        """Keep what was found on the scene's settings (the panel shows the thumbnails)."""
        if run.state != "done":
            if run.state == "cancelled":
                self.report({"WARNING"}, "SHeaP: Find People cancelled")
            else:
                self.report({"ERROR"}, f"SHeaP: {run.error}")
            return {"CANCELLED"}
        settings = context.scene.sheap
        request = run.request
        same = settings.people_found_for(request.footage, request.start, request.end)
        settings.people_file = run.people_path
        settings.people_footage = os.path.normcase(os.path.abspath(request.footage))
        settings.people_start, settings.people_end = request.start, request.end or 0
        if run.count == 1:
            settings.person = 1
        elif not same or settings.person > run.count:
            settings.person = 0  # the numbers are those of other footage: choose again
        who = "1 person" if run.count == 1 else f"{run.count} people"
        clip = os.path.basename(request.footage.rstrip("/\\"))
        self.report({"INFO"}, f"SHeaP: {who} found in {clip}: click one to follow, or choose Everyone")
        return {"FINISHED"}

    @staticmethod
    def _start(request: PeopleRequest) -> FindPeople:
        return FindPeople(request)


class SHEAP_OT_choose_person(bpy.types.Operator):
    """Follow this person (Reconstruct Head then makes their rig)"""

    bl_idname = "sheap.choose_person"
    bl_label = "Choose Person"
    bl_options = {"REGISTER", "UNDO"}

    number: bpy.props.IntProperty(name="Person", default=1, min=1)

    def execute(self, context):
        settings = context.scene.sheap
        settings.person = self.number
        settings.face_rule = "PERSON"
        return {"FINISHED"}


class SHEAP_OT_import_people(bpy.types.Operator, ImportHelper):
    """Import a people file (NAME.people.json): a rig for each person with a result, each in its own collection"""

    bl_idname = "sheap.import_people"
    bl_label = "Import SHeaP People"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.people.json", options={"HIDDEN"})
    flame: bpy.props.StringProperty(name="FLAME model", subtype="FILE_PATH",
                                    description="FLAME's generic_model.pkl or its .safetensors (empty: the "
                                                "preferences')")
    frame_start: bpy.props.IntProperty(name="Start Frame", default=1,
                                       description="Scene frame of the clip's first frame")
    set_scene: bpy.props.BoolProperty(name="Set Up Scene", default=True,
                                      description="The first person's camera as the scene camera; render size, fps "
                                                  "and frame range from the clip")
    gaussians: bpy.props.BoolProperty(name="Gaussian Preview", default=True,
                                      description="When a result has Gaussians, build their point cloud on its rig")

    def execute(self, context):
        from ..reconstruct.people_import import import_people

        flame = self.flame or preferred_flame(context)
        if not flame:
            self.report({"ERROR"}, "choose the FLAME model (generic_model.pkl or its .safetensors)")
            return {"CANCELLED"}
        try:
            imported = import_people(context, self.filepath, bpy.path.abspath(flame), frame_start=self.frame_start,
                                     set_scene=self.set_scene, gaussians=self.gaussians)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in imported.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, imported.summary())
        return {"FINISHED"}


classes = (SHEAP_OT_find_people, SHEAP_OT_choose_person, SHEAP_OT_import_people)
