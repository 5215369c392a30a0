"""Operators of the panel's "Drive Character" section: match, presets, drive with a result, import a CSV.

Each reads its character from `object` (the name of an armature, a mesh or a collection) or the panel's
choice; an armature means every mesh under it with ARKit shape keys. Bad input is one report line and
changes nothing; a change is one undo step (UNDO in bl_options, one execute).
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.errors import InputError
from ..settings.preferences import preferred_flame
from . import drive
from . import mapping as character_mapping

PRESET_FOLDER = os.path.join("presets", "sheap_blender", "arkit_mapping")


def preset_folder() -> str:
    """Blender's user preset folder for mapping presets (made when missing)."""
    return bpy.utils.user_resource("SCRIPTS", path=PRESET_FOLDER, create=True)


def _character(context, name: str):
    """The named object or collection, else the panel's character, as a rig (InputError when it cannot be driven)."""
    from .character_rig import resolve

    if name:
        target = bpy.data.objects.get(name) or bpy.data.collections.get(name)
        if target is None:
            raise InputError(None, f"no object named {name!r}")
    else:
        target = context.scene.sheap_character.target
    return resolve(target)


def _preset_mapping(rig) -> dict[str, str | None]:
    """The character's meshes' mappings as one (a key named alike on two meshes must take one channel)."""
    merged: dict[str, str | None] = {}
    for obj in rig.meshes:
        for key, channel in character_mapping.stored_mapping(obj).items():
            if merged.setdefault(key, channel) != channel:
                raise InputError(None, f"the key {key!r} takes {merged[key]} on one mesh and {channel} on "
                                       f"{obj.name!r}: one preset cannot hold both")
    return merged


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
            rig = _character(context, self.object)
        except InputError as exc:
            return self.fail(exc)
        character_mapping.ensure_channels(rig.owner)
        for obj in rig.meshes:
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
        from ..core.arkit.preset import write_preset

        try:
            rig = _character(context, self.object)
            mapping = _preset_mapping(rig)
            if not mapping:
                raise InputError(None, f"{rig.name!r} has no mapping yet: Match Automatically first")
            path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), self.filename_ext)
            try:
                write_preset(path, mapping, character_mapping.channel_adjustments(rig.owner))
            except OSError as exc:
                raise InputError(path, f"cannot write the preset ({exc.strerror or type(exc).__name__})") from None
        except InputError as exc:
            return self.fail(exc)
        self.report({"INFO"}, f"SHeaP: saved the mapping of {rig.name} ({len(mapping)} keys) to {path}")
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
        from ..core.arkit.preset import read_preset_with_channels

        try:
            rig = _character(context, self.object)
            preset, channels = read_preset_with_channels(bpy.path.abspath(self.filepath))
        except InputError as exc:
            return self.fail(exc)
        mappings = {obj: character_mapping.preset_mapping(obj, preset) for obj in rig.meshes}
        if not any(any(mapping.values()) for mapping, _ in mappings.values()):
            return self.fail(InputError(self.filepath, f"names none of the shape keys of {rig.name!r}: not loaded"))
        for obj, (mapping, absent) in mappings.items():
            character_mapping.store_mapping(obj, mapping)
            text = f"SHeaP: {obj.name}: loaded {Path(self.filepath).name}: " + \
                character_mapping.mapping_report(obj, mapping).line()
            if absent:
                text += f"; in the preset but not on the mesh: {', '.join(absent)}"
            self.report({"INFO"}, text)
        character_mapping.set_channel_adjustments(rig.owner, channels)
        return {"FINISHED"}


class SHEAP_OT_character_neutral_here(_CharacterOperator, bpy.types.Operator):
    """Take the neutral pose from the current frame: its values are subtracted from every frame, channel by channel"""

    bl_idname = "sheap.character_neutral_here"
    bl_label = "Neutral Here"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            rig = _character(context, self.object)
        except InputError as exc:
            return self.fail(exc)
        settings = rig.owner.sheap_character
        frame = context.scene.frame_current
        settings.use_neutral, settings.neutral_start, settings.neutral_end = True, frame, frame
        self.report({"INFO"}, f"SHeaP: {rig.name}: neutral pose from frame {frame} (drive again to apply it)")
        return {"FINISHED"}


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
    set_scene: BoolProperty(name="Set Scene Timing", default=False, options={"SKIP_SAVE"},
                            description="Scene fps and frame range from the clip, as the rig's import does (unset: "
                                        "the panel's choice); off: the take is retimed to the scene's fps")

    def execute(self, context):
        settings = context.scene.sheap_character
        camera = self.camera if self.properties.is_property_set("camera") else settings.camera
        start = self.frame_start if self.properties.is_property_set("frame_start") else None
        set_scene = self.set_scene if self.properties.is_property_set("set_scene") else settings.set_scene
        try:
            rig = _character(context, self.object)
            source = drive.resolve_source(context, self.result or settings.result, self.flame or settings.flame,
                                              preferred_flame(context), start)
            driven = drive.drive_with_result(context, rig, source, set_scene=set_scene, camera=camera)
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
            rig = _character(context, self.object)
            driven = drive.drive_with_csv(context, rig, bpy.path.abspath(self.filepath), fps, start)
        except InputError as exc:
            return self.fail(exc)
        for warning in driven.warnings:
            self.report({"WARNING"}, f"SHeaP: {warning}")
        self.report({"INFO"}, driven.summary())
        return {"FINISHED"}


classes = (SHEAP_OT_character_match, SHEAP_OT_character_preset_save, SHEAP_OT_character_preset_load,
           SHEAP_OT_character_neutral_here, SHEAP_OT_drive_character, SHEAP_OT_character_import_csv)
