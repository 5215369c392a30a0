"""The "Drive Character" section of the SHeaP sidebar tab: the character, its editable mapping, the take."""

from __future__ import annotations

import os

import bpy

from . import character, character_mapping

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


def _draw_source(layout, context) -> str:
    """The result and FLAME choices; returns the FLAME file a drive would use ('' when none)."""
    settings = context.scene.sheap_character
    layout.prop(settings, "result")
    rig = None
    if settings.result:
        rig = character.rig_for_result(context.scene, bpy.path.abspath(settings.result))
    else:
        rig = character.default_rig(context)
        text = (f"Result of {rig.name}: {os.path.basename(rig['sheap_result'])}" if rig is not None
                else "No SHeaP rig in the scene: choose a result file")
        layout.label(text=text, icon="INFO" if rig is not None else "ERROR")
    layout.prop(settings, "flame")
    if settings.flame:
        return bpy.path.abspath(settings.flame)
    if rig is not None and os.path.isfile(rig.get("sheap_flame", "")):
        return rig["sheap_flame"]
    from .preferences import get_preferences

    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.flame_path) if prefs is not None and prefs.flame_path else ""


def draw_drive_character(layout, context) -> None:
    """The section's contents (the panel draws it; also usable elsewhere)."""
    settings = context.scene.sheap_character
    from .arkit_keys_operator import draw_make_keys

    draw_make_keys(layout, context)
    layout.prop(settings, "target")
    obj = settings.target
    if obj is None:
        layout.label(text="Choose a mesh with ARKit shape keys", icon="INFO")
        return
    names = character_mapping.shape_key_names(obj)
    if not names:
        layout.label(text=f"{obj.name} has no shape keys", icon="ERROR")
        return
    own = obj.sheap_character
    row = layout.row(align=True)
    row.operator("sheap.character_match", icon="AUTO")
    row.operator("sheap.character_preset_load", text="", icon="IMPORT")
    row.operator("sheap.character_preset_save", text="", icon="EXPORT")
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

    row = layout.row(align=True)
    row.prop(own, "head_armature", text="Head")
    if own.head_armature is not None:
        row.prop_search(own, "head_bone", own.head_armature.data, "bones", text="")

    flame = _draw_source(layout, context)
    layout.prop(settings, "camera")
    from .preferences import is_demo_file

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


classes = (SHEAP_UL_arkit_mapping, SHEAP_PT_character_view3d)
