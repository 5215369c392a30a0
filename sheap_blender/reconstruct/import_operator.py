"""`bpy.ops.sheap.import_result(filepath=RESULT, flame=FLAME)`: File > Import > SHeaP Result.

The Python function `importer.import_result` does the same and returns what it made. Bad input is
reported as one line and leaves the scene as it was.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.errors import InputError
from ..settings.preferences import preferred_flame
from .importer import import_result


class SHEAP_OT_import_result(bpy.types.Operator, ImportHelper):
    """Import a SHeaP result file: FLAME head rig, baked animation and the footage camera"""

    bl_idname = "sheap.import_result"
    bl_label = "Import SHeaP Result"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".safetensors"
    filter_glob: StringProperty(default="*.safetensors", options={"HIDDEN"})
    flame: StringProperty(
        name="FLAME model",
        description="FLAME's generic_model.pkl or its converted .safetensors (empty: the one in the preferences)",
        subtype="FILE_PATH",
    )
    target: EnumProperty(
        name="Onto",
        items=(
            ("AUTO", "Same Result's Rig or New", "Re-animate the rig made from this file earlier, else build one"),
            ("NEW", "New Rig", "Always build a new rig"),
            ("SELECTED", "Selected Rig", "Replace the animation of the selected SHeaP rig"),
        ),
        default="AUTO",
    )
    frame_start: IntProperty(name="Start Frame", description="Scene frame of the clip's first frame", default=1)
    set_scene: BoolProperty(
        name="Set Up Scene",
        description="Make its camera the scene camera; render size, fps and frame range from the clip",
        default=True,
    )
    render_over_footage: BoolProperty(
        name="Render over Footage",
        description="A new rig renders as it looks: the footage composited behind the render, lights, a neutral "
                    "head material (with Set Up Scene)",
        default=True,
    )
    gaussians: BoolProperty(
        name="Gaussian Preview",
        description="When the result has Gaussians, build their point cloud on the rig (replacing its earlier one)",
        default=True,
    )

    def execute(self, context):
        flame = self.flame or preferred_flame(context)
        if not flame:
            self.report({"ERROR"}, "choose the FLAME model (generic_model.pkl or its .safetensors)")
            return {"CANCELLED"}
        try:
            imported = import_result(context, self.filepath, bpy.path.abspath(flame), target=self.target,
                                     frame_start=self.frame_start, set_scene=self.set_scene,
                                     gaussians=self.gaussians, render_over_footage=self.render_over_footage)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in imported.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, imported.summary())
        return {"FINISHED"}


classes = (SHEAP_OT_import_result,)
