"""Operators of the panel's "Drive Character" section: match, presets, drive with a result, import a CSV.

Each reads its character from `object` (a name) or the panel's choice. Bad input is one report line and
changes nothing; a change is one undo step (UNDO in bl_options, one execute).
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import character, character_mapping
from .core.errors import InputError

PRESET_FOLDER = os.path.join("presets", "sheap_blender", "arkit_mapping")


def preset_folder() -> str:
    """Blender's user preset folder for mapping presets (made when missing)."""
    return bpy.utils.user_resource("SCRIPTS", path=PRESET_FOLDER, create=True)


def _character(context, name: str) -> bpy.types.Object:
    """The named object, else the panel's character (InputError when there is none or it cannot be driven)."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(None, f"no object named {name!r}")
    else:
        obj = context.scene.sheap_character.target
    character_mapping.check_character(obj)
    return obj


class _CharacterOperator:
    object: StringProperty(name="Object", description="The character's name; empty: the panel's", default="",
                           options={"SKIP_SAVE"})

    def fail(self, exc: Exception) -> set[str]:
        self.report({"ERROR"}, f"SHeaP: {exc}")
        return {"CANCELLED"}


class SHEAP_OT_character_match(_CharacterOperator, bpy.types.Operator):
    """Map each shape key to the ARKit channel its name says, whatever the naming habit"""

    bl_idname = "sheap.character_match"
    bl_label = "Match Automatically"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            obj = _character(context, self.object)
        except InputError as exc:
            return self.fail(exc)
        mapping = character_mapping.automatic_mapping(obj)
        character_mapping.store_mapping(obj, mapping)
        report = character_mapping.mapping_report(obj, mapping)
        level = "WARNING" if report.unmatched_channels or report.unmatched_keys else "INFO"
        self.report({level}, f"SHeaP: {obj.name}: {report.line()}")
        return {"FINISHED"}


class SHEAP_OT_character_preset_save(_CharacterOperator, bpy.types.Operator, ExportHelper):
    """Save the character's shape key -> ARKit mapping as a preset (JSON)"""

    bl_idname = "sheap.character_preset_save"
    bl_label = "Save Mapping Preset"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        obj = context.scene.sheap_character.target if not self.object else bpy.data.objects.get(self.object)
        if not self.filepath:
            self.filepath = os.path.join(preset_folder(), f"{bpy.path.clean_name(obj.name if obj else 'mapping')}"
                                                          f"{self.filename_ext}")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .core.arkit_preset import write_preset

        try:
            obj = _character(context, self.object)
            mapping = character_mapping.stored_mapping(obj)
            if not mapping:
                raise InputError(None, f"{obj.name!r} has no mapping yet: Match Automatically first")
            path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), self.filename_ext)
            try:
                write_preset(path, mapping)
            except OSError as exc:
                raise InputError(path, f"cannot write the preset ({exc.strerror or type(exc).__name__})") from None
        except InputError as exc:
            return self.fail(exc)
        self.report({"INFO"}, f"SHeaP: saved the mapping of {obj.name} ({len(mapping)} keys) to {path}")
        return {"FINISHED"}


class SHEAP_OT_character_preset_load(_CharacterOperator, bpy.types.Operator, ImportHelper):
    """Load a shape key -> ARKit mapping preset (JSON) onto the character: its keys named in it take its channels"""

    bl_idname = "sheap.character_preset_load"
    bl_label = "Load Mapping Preset"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = preset_folder() + os.sep
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .core.arkit_preset import read_preset

        try:
            obj = _character(context, self.object)
            preset = read_preset(bpy.path.abspath(self.filepath))
        except InputError as exc:
            return self.fail(exc)
        mapping, absent = character_mapping.preset_mapping(obj, preset)
        if not any(mapping.values()):
            return self.fail(InputError(self.filepath, f"names none of the shape keys of {obj.name!r}: not loaded"))
        character_mapping.store_mapping(obj, mapping)
        text = f"SHeaP: {obj.name}: loaded {Path(self.filepath).name}: " + \
            character_mapping.mapping_report(obj, mapping).line()
        if absent:
            text += f"; in the preset but not on the mesh: {', '.join(absent)}"
        self.report({"INFO"}, text)
        return {"FINISHED"}


def _preferred_flame(context) -> str:
    from .preferences import get_preferences

    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.flame_path) if prefs is not None and prefs.flame_path else ""


class SHEAP_OT_drive_character(_CharacterOperator, bpy.types.Operator):
    """Key the character's ARKit shape keys (and head bone) with the SHeaP result, every frame"""

    bl_idname = "sheap.drive_character"
    bl_label = "Drive Character"
    bl_options = {"REGISTER", "UNDO"}

    result: StringProperty(name="Result", subtype="FILE_PATH", default="", options={"SKIP_SAVE"},
                           description="Empty: the panel's, else the scene's SHeaP rig's result")
    flame: StringProperty(name="FLAME", subtype="FILE_PATH", default="", options={"SKIP_SAVE"},
                          description="Empty: the panel's, the rig's, the preferences'")
    frame_start: IntProperty(name="Start Frame", default=1, options={"SKIP_SAVE"},
                             description="Scene frame of the result's first row (unset: the rig's, else 1)")
    camera: BoolProperty(name="Footage Camera", default=False, options={"SKIP_SAVE"},
                         description="Also set up the footage camera (unset: the panel's choice)")
    set_scene: BoolProperty(name="Set Up Scene", default=True,
                            description="Scene fps and frame range from the clip, as the rig's import does")

    def execute(self, context):
        settings = context.scene.sheap_character
        camera = self.camera if self.properties.is_property_set("camera") else settings.camera
        start = self.frame_start if self.properties.is_property_set("frame_start") else None
        try:
            obj = _character(context, self.object)
            source = character.resolve_source(context, self.result or settings.result, self.flame or settings.flame,
                                              _preferred_flame(context), start)
            driven = character.drive_with_result(context, obj, source, set_scene=self.set_scene, camera=camera)
        except InputError as exc:
            return self.fail(exc)
        for warning in driven.warnings:
            self.report({"WARNING"}, f"SHeaP: {warning}")
        self.report({"WARNING" if driven.is_demo else "INFO"}, driven.summary())
        return {"FINISHED"}


class SHEAP_OT_character_import_csv(_CharacterOperator, bpy.types.Operator, ImportHelper):
    """Key a Live Link Face CSV take on the character's ARKit shape keys (and head bone), by timecode"""

    bl_idname = "sheap.character_import_csv"
    bl_label = "Import Live Link Face CSV"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})
    fps: FloatProperty(name="Timecode Rate", default=0.0, min=0.0, max=1000.0, options={"SKIP_SAVE"},
                       description="The take's timecode rate; 0: read from the take (the app counts at 60)")
    frame_start: IntProperty(name="Start Frame", default=1, options={"SKIP_SAVE"},
                             description="Scene frame of the first row (unset: the scene's start)")

    def invoke(self, context, event):
        self.frame_start = context.scene.frame_start
        return super().invoke(context, event)

    def execute(self, context):
        fps = self.fps if self.fps > 0 else None  # the take's own rate unless the user typed one
        start = self.frame_start if self.properties.is_property_set("frame_start") else context.scene.frame_start
        try:
            obj = _character(context, self.object)
            driven = character.drive_with_csv(context, obj, bpy.path.abspath(self.filepath), fps, start)
        except InputError as exc:
            return self.fail(exc)
        for warning in driven.warnings:
            self.report({"WARNING"}, f"SHeaP: {warning}")
        self.report({"INFO"}, driven.summary())
        return {"FINISHED"}


classes = (SHEAP_OT_character_match, SHEAP_OT_character_preset_save, SHEAP_OT_character_preset_load,
           SHEAP_OT_drive_character, SHEAP_OT_character_import_csv)
