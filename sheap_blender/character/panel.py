"""The "Drive Character" section of the SHeaP sidebar tab: the character (armature or mesh), each mesh's editable
mapping, its bones, the animator's controls, the take."""

from __future__ import annotations

import os

import bpy

from ..core.character.bones import ROLES
from ..core.errors import InputError
from . import drive
from . import mapping as character_mapping

MAX_NAMES = 6  # names listed on one panel line before "... and N more"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" ... and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


class SHEAP_UL_arkit_mapping(bpy.types.UIList):
    """One row per shape key: its name and the ARKit channel that drives it."""

    bl_idname = "SHEAP_UL_arkit_mapping"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        keys = data.id_data.data.shape_keys if data.id_data.type == "MESH" else None
        present = keys is not None and item.key in keys.key_blocks
        row = layout.row(align=True)
        row.label(text=item.key, icon="SHAPEKEY_DATA" if present else "ERROR")
        row.prop(item, "channel", text="")


class SHEAP_UL_arkit_channels(bpy.types.UIList):
    """One row per ARKit channel: the animator's gain, offset and smoothing."""

    bl_idname = "SHEAP_UL_arkit_channels"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.label(text=item.name)
        row.prop(item, "gain", text="")
        row.prop(item, "offset", text="")
        row.prop(item, "smoothing", text="")


def _draw_source(layout, context) -> str:
    """The result and FLAME choices; returns the FLAME file a drive would use ('' when none)."""
    settings = context.scene.sheap_character
    layout.prop(settings, "result")
    rig = None
    if settings.result:
        rig = drive.rig_for_result(context.scene, bpy.path.abspath(settings.result))
    else:
        rig = drive.default_rig(context)
        text = (f"Result of {rig.name}: {os.path.basename(rig['sheap_result'])}" if rig is not None
                else "No SHeaP rig in the scene: choose a result file")
        layout.label(text=text, icon="INFO" if rig is not None else "ERROR")
    layout.prop(settings, "flame")
    if settings.flame:
        return bpy.path.abspath(settings.flame)
    if rig is not None and os.path.isfile(rig.get("sheap_flame", "")):
        return rig["sheap_flame"]
    from ..settings.preferences import get_preferences

    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.flame_path) if prefs is not None and prefs.flame_path else ""


def _draw_mapping(layout, context, obj) -> None:
    """One mesh's mapping list and what it leaves out."""
    own = obj.sheap_character
    if len(own.mapping):
        layout.template_list("SHEAP_UL_arkit_mapping", "", own, "mapping", own, "active_index", rows=6)
        report = character_mapping.mapping_report(obj, character_mapping.stored_mapping(obj))
    else:
        layout.label(text="No mapping yet: matched from the key names when driven", icon="INFO")
        report = character_mapping.mapping_report(obj, character_mapping.automatic_mapping(obj))
    column = layout.column(align=True)
    column.label(text=f"{len(report.driven_keys)} keys drive {len(report.channels)} of the 52 ARKit channels")
    if report.unmatched_channels:
        column.label(text=f"No key for: {_names(report.unmatched_channels)}", icon="ERROR")
    if report.unmatched_keys:
        column.label(text=f"Keys not driven: {_names(report.unmatched_keys)}", icon="INFO")
    if report.missing_keys:
        column.label(text=f"Not on the mesh: {_names(report.missing_keys)}", icon="ERROR")
    for channel, keys in report.duplicate_keys.items():
        column.label(text=f"A second key for {channel}, not driven: {_names(keys)}", icon="ERROR")
    if report.driver_keys:
        column.label(text=f"Set by a driver, not keyed: {_names(report.driver_keys)}", icon="ERROR")


def _draw_bones(layout, rig) -> None:
    """The bones each role takes (chosen, else found by name) and how the head's turn is split."""
    own = rig.owner.sheap_character
    column = layout.column(align=True)
    if rig.armature is None:
        if rig.owner.type == "MESH":
            row = column.row(align=True)
            row.prop(own, "head_armature", text="Head")
        column.label(text="No armature: shape keys only", icon="INFO")
        return
    column.prop(own, "find_bones")
    for role in ROLES:
        row = column.row(align=True)
        row.prop_search(own, f"{role}_bone", rig.armature.data, "bones", text=role.replace("_", " ").title())
        found = rig.bone(role)
        if found and not getattr(own, f"{role}_bone"):
            row.label(text=found, icon="BONE_DATA")
    column.prop(own, "neck_share")
    column.prop(own, "facing")
    row = column.row(align=True)
    row.prop(own, "jaw_open_angle", text="Jaw Open")
    row.prop(own, "jaw_side_angle", text="Side")


def _draw_controls(layout, rig) -> None:
    """Gaps, the neutral pose, rotation smoothing and the per-channel adjustments."""
    own = rig.owner.sheap_character
    column = layout.column(align=True)
    column.prop(own, "gap_policy")
    row = column.row(align=True)
    row.prop(own, "use_neutral")
    if own.use_neutral:
        row.prop(own, "neutral_start", text="From")
        row.prop(own, "neutral_end", text="To")
    row.operator("sheap.character_neutral_here", text="", icon="TIME")
    column.prop(own, "rotation_smoothing")
    if len(own.channels):
        layout.label(text="Channel: gain, offset, smoothing")
        layout.template_list("SHEAP_UL_arkit_channels", "", own, "channels", own, "active_channel", rows=4)
    else:
        layout.label(text="Match Automatically to adjust each channel", icon="INFO")


def draw_drive_character(layout, context) -> None:
    """The section's contents (the panel draws it; also usable elsewhere)."""
    from .arkit_keys_operator import draw_make_keys
    from .character_rig import resolve

    draw_make_keys(layout, context)
    settings = context.scene.sheap_character
    layout.prop(settings, "target")
    if settings.target is None:
        layout.label(text="Choose the character: its armature, or a mesh with ARKit shape keys", icon="INFO")
        return
    try:
        rig = resolve(settings.target)
    except InputError as exc:
        layout.label(text=str(exc), icon="ERROR")
        return
    row = layout.row(align=True)
    row.operator("sheap.character_match", icon="AUTO")
    row.operator("sheap.character_preset_load", text="", icon="IMPORT")
    row.operator("sheap.character_preset_save", text="", icon="EXPORT")
    shown = settings.mapping_mesh if settings.mapping_mesh in rig.meshes else rig.meshes[0]
    if len(rig.meshes) > 1:
        layout.label(text=f"{len(rig.meshes)} meshes: {_names([obj.name for obj in rig.meshes])}")
        layout.prop(settings, "mapping_mesh")
    _draw_mapping(layout, context, shown)
    _draw_bones(layout, rig)
    _draw_controls(layout, rig)

    flame = _draw_source(layout, context)
    layout.prop(settings, "camera")
    layout.prop(settings, "set_scene")
    from ..settings.preferences import is_demo_file

    if flame and is_demo_file(flame):
        layout.label(text="demo weights: not a real reconstruction", icon="INFO")
    row = layout.row()
    row.scale_y = 1.5
    row.operator("sheap.drive_character", icon="ARMATURE_DATA")
    layout.operator("sheap.character_import_csv", icon="IMPORT")


class _CharacterPanel:
    bl_label = "Drive Character"
    bl_category = "SHeaP"
    bl_region_type = "UI"

    def draw(self, context):
        draw_drive_character(self.layout, context)


class SHEAP_PT_character_view3d(_CharacterPanel, bpy.types.Panel):
    bl_idname = "SHEAP_PT_character_view3d"
    bl_space_type = "VIEW_3D"


classes = (SHEAP_UL_arkit_mapping, SHEAP_UL_arkit_channels, SHEAP_PT_character_view3d)
