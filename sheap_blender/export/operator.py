"""sheap.export_head: the Export Head operator (the work is in head.py)."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper

from ..core.errors import InputError
from ..core.export.export_format import EXTENSIONS


class SHEAP_OT_export_head(bpy.types.Operator, ExportHelper):
    """Export the SHeaP head (or a driven character) so that it plays back elsewhere as it does here: glTF (.glb,
    .gltf), FBX (.fbx), Alembic (.abc) or USD (.usd, .usdc, .usda), picked by the file's extension"""

    bl_idname = "sheap.export_head"
    bl_label = "Export Head"
    bl_options = {"REGISTER"}

    filename_ext = ".glb"
    check_extension = None  # the extension the user types picks the format
    filter_glob: StringProperty(default=";".join(f"*{ext}" for ext in EXTENSIONS), options={"HIDDEN"})
    target: StringProperty(
        name="Object",
        description="The rig (any part of it) or the character's mesh to export (empty: the selected SHeaP rig, "
                    "the scene's only one, else the active mesh)",
    )

    def execute(self, context):
        from .head import export_head

        obj = None
        if self.target:
            obj = bpy.data.objects.get(self.target)
            if obj is None:
                self.report({"ERROR"}, f"no object named {self.target!r} to export")
                return {"CANCELLED"}
        try:
            exported = export_head(context, bpy.path.abspath(self.filepath), obj)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in exported.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, exported.summary())
        return {"FINISHED"}


def menu_export(self, context):
    self.layout.operator(SHEAP_OT_export_head.bl_idname, text="SHeaP Head (.glb, .fbx, .abc, .usd)")


classes = (SHEAP_OT_export_head,)
