"""A character's shape key -> ARKit channel mapping, stored on each mesh (saved in the .blend), and its settings.

`Object.sheap_character` holds, on a mesh, the mapping (one item per shape key: its name and an ARKit
channel or "NONE"); on the character's armature (or its only mesh) the bones that take the take's
rotations and the animator's controls (neutral pose, gaps, per-channel gain/offset/smoothing).
`Scene.sheap_character` holds the panel's choices (which character, which result). `automatic_mapping`
reads the keys' names whatever the naming habit (core/arkit/names.py); the two halves of a split channel
(ICT-FaceKit's browInnerUp_L / _R) both take it, but a second key for one channel (`eyeBlinkLeft.001`)
and a key a driver sets are reported and not driven.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy

from ..core.arkit.names import ARKIT_NAMES, channel_for_key, duplicate_keys, unmatched_channels
from ..core.errors import InputError

NONE = "NONE"
CHANNEL_ITEMS = [(NONE, "None", "This shape key is not driven"),
                 *((name, name, f"ARKit's {name}") for name in ARKIT_NAMES)]


# ---------------------------------------------------------------------------------------- properties


class SHEAP_ArkitKey(bpy.types.PropertyGroup):
    """One shape key and the ARKit channel that drives it."""

    key: bpy.props.StringProperty(name="Shape Key", description="The shape key's name")
    channel: bpy.props.EnumProperty(name="ARKit Channel", items=CHANNEL_ITEMS, default=NONE,
                                    description="The ARKit coefficient keyed on this shape key")


class SHEAP_ArkitChannel(bpy.types.PropertyGroup):
    """An animator's adjustment of one ARKit channel (saved with the mapping preset)."""

    name: bpy.props.StringProperty(name="Channel", description="The ARKit channel")
    gain: bpy.props.FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0,
                                  description="The channel's value is multiplied by this (after the neutral pose)")
    offset: bpy.props.FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0,
                                    description="Added to the channel's value after the gain (then kept in 0..1)")
    smoothing: bpy.props.FloatProperty(name="Smoothing", default=0.0, min=0.0, soft_max=5.0,
                                       description="Gaussian smoothing of the channel over time, in scene frames "
                                                   "(0: none)")


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _is_character(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE" or obj.type == "MESH" and obj.data.shape_keys is not None


def _bone_property(role: str) -> bpy.props.StringProperty:
    return bpy.props.StringProperty(name=f"{role.replace('_', ' ').title()} Bone",
                                    description=f"The bone that takes the take's {role.replace('_', ' ')} rotation "
                                                "(empty: found by its usual names)")


class SHEAP_CharacterSettings(bpy.types.PropertyGroup):
    """A character's own settings, saved with the object: the mapping (meshes), bones and controls (the rig)."""

    mapping: bpy.props.CollectionProperty(type=SHEAP_ArkitKey)
    active_index: bpy.props.IntProperty(name="Active Key", default=0)
    head_armature: bpy.props.PointerProperty(name="Head Armature", type=bpy.types.Object, poll=_is_armature,
                                             description="The armature whose bone takes the head's rotation (a "
                                                         "mesh not parented to it)")
    head_bone: bpy.props.StringProperty(name="Head Bone", description="The bone that takes the head's rotation "
                                        "(empty: found by its usual names: Head, CC_Base_Head, J_Bip_C_Head ...)")
    neck_bone: _bone_property("neck")
    left_eye_bone: _bone_property("left_eye")
    right_eye_bone: _bone_property("right_eye")
    jaw_bone: _bone_property("jaw")
    find_bones: bpy.props.BoolProperty(name="Find Bones", default=True,
                                       description="Bones not chosen are found by their usual names (Head, LeftEye, "
                                                   "CC_Base_L_Eye, J_Adj_L_FaceEye, eye.L, CC_Base_JawRoot, jaw ...)")
    neck_share: bpy.props.FloatProperty(name="Neck Share", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                                        description="The share of the head's turn taken by the neck bone; the head "
                                                    "bone takes the rest")
    facing: bpy.props.EnumProperty(name="Facing", default="AUTO", items=[
        ("AUTO", "Automatic", "From the eye bones (right eye to left eye is the character's left), else its "
                              "armature's -Y (Blender's front view)"),
        ("NEG_Y", "-Y", "The character faces the world's -Y (Blender's front view)"),
        ("POS_Y", "+Y", "The character faces the world's +Y"),
        ("POS_X", "+X", "The character faces the world's +X"),
        ("NEG_X", "-X", "The character faces the world's -X")],
        description="Which way the character's face looks, for turning its bones")
    jaw_open_angle: bpy.props.FloatProperty(name="Jaw Open Angle", default=0.35, min=0.0, max=1.5, subtype="ANGLE",
                                            description="The jaw bone's turn at jawOpen = 1")
    jaw_side_angle: bpy.props.FloatProperty(name="Jaw Side Angle", default=0.1, min=0.0, max=1.0, subtype="ANGLE",
                                            description="The jaw bone's turn at jawLeft or jawRight = 1")
    gap_policy: bpy.props.EnumProperty(name="No Face", default="HOLD", items=[
        ("HOLD", "Hold", "Frames without a face keep the last frame with one"),
        ("NEUTRAL", "Neutral", "Frames without a face return to the neutral pose"),
        ("INTERPOLATE", "Interpolate", "Frames without a face are interpolated between the frames around")],
        description="What frames without a face are keyed with")
    use_neutral: bpy.props.BoolProperty(name="Neutral Pose", default=False,
                                        description="Subtract the take's values on these frames from every frame, "
                                                    "channel by channel")
    neutral_start: bpy.props.IntProperty(name="Neutral From", default=1,
                                         description="First scene frame of the neutral pose")
    neutral_end: bpy.props.IntProperty(name="Neutral To", default=1,
                                       description="Last scene frame of the neutral pose")
    rotation_smoothing: bpy.props.FloatProperty(name="Rotation Smoothing", default=0.0, min=0.0, soft_max=5.0,
                                                description="Gaussian smoothing of the head, eye rotations, "
                                                            "in scene frames (0: none)")
    channels: bpy.props.CollectionProperty(type=SHEAP_ArkitChannel)
    active_channel: bpy.props.IntProperty(name="Active Channel", default=0)


class SHEAP_CharacterScene(bpy.types.PropertyGroup):
    """The panel's choices: which character, which result."""

    target: bpy.props.PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                                      description="The character: its armature (every mesh under it with ARKit "
                                                  "shape keys), or one mesh")
    mapping_mesh: bpy.props.PointerProperty(name="Mesh", type=bpy.types.Object, poll=_is_character,
                                            description="The mesh of the character whose mapping is shown")
    result: bpy.props.StringProperty(name="Result", subtype="FILE_PATH",
                                     description="A SHeaP result (*.sheap.safetensors); empty: the result of the "
                                                 "scene's SHeaP rig (the selected one, else the newest)")
    flame: bpy.props.StringProperty(name="FLAME", subtype="FILE_PATH",
                                    description="Empty: the FLAME file of the rig made from the result, else the "
                                                "preferences'")
    camera: bpy.props.BoolProperty(name="Footage Camera", default=False,
                                   description="Also set up the footage camera as the rig does: per-frame lens from "
                                               "the crops, the footage behind it, render size; placed in front of "
                                               "the character's face")
    set_scene: bpy.props.BoolProperty(name="Set Scene Timing", default=False,
                                      description="Set the scene's fps and frame range from the clip; off: the take "
                                                  "is retimed to the scene's fps (played at the clip's speed)")


classes = (SHEAP_ArkitKey, SHEAP_ArkitChannel, SHEAP_CharacterSettings, SHEAP_CharacterScene)


def register_properties() -> None:
    bpy.types.Object.sheap_character = bpy.props.PointerProperty(type=SHEAP_CharacterSettings)
    bpy.types.Scene.sheap_character = bpy.props.PointerProperty(type=SHEAP_CharacterScene)


def unregister_properties() -> None:
    del bpy.types.Scene.sheap_character
    del bpy.types.Object.sheap_character


# ---------------------------------------------------------------------------------------- the mapping


def shape_key_names(obj: bpy.types.Object) -> list[str]:
    """The object's shape keys that can be driven (all but the basis), in order."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        return []
    return [block.name for block in keys.key_blocks if block != keys.reference_key]


def stored_mapping(obj: bpy.types.Object) -> dict[str, str | None]:
    """The mapping saved on the object: key -> ARKit channel or None."""
    return {item.key: (None if item.channel == NONE else item.channel) for item in obj.sheap_character.mapping}


def store_mapping(obj: bpy.types.Object, mapping: dict[str, str | None]) -> None:
    """Replace the object's mapping (its list shows the keys in this order)."""
    items = obj.sheap_character.mapping
    items.clear()
    for key, channel in mapping.items():
        item = items.add()
        item.key = key
        item.channel = channel or NONE
    obj.sheap_character.active_index = min(obj.sheap_character.active_index, max(len(items) - 1, 0))


def ensure_channels(owner: bpy.types.Object) -> None:
    """Give the character's settings an adjustment item for each of the 52 ARKit channels (kept when there)."""
    items = owner.sheap_character.channels
    have = {item.name for item in items}
    for name in ARKIT_NAMES:
        if name not in have:
            items.add().name = name


def channel_adjustments(owner: bpy.types.Object) -> dict[str, dict[str, float]]:
    """ARKit channel -> its gain, offset, smoothing on the character (Blender keeps them as float32: 6 decimals)."""
    return {item.name: {"gain": round(item.gain, 6), "offset": round(item.offset, 6),
                        "smoothing": round(item.smoothing, 6)}
            for item in owner.sheap_character.channels if item.name in ARKIT_NAMES}


def set_channel_adjustments(owner: bpy.types.Object, channels: dict[str, dict[str, float]]) -> None:
    """Every channel's adjustments as `channels` says (channels it does not name: the defaults)."""
    ensure_channels(owner)
    for item in owner.sheap_character.channels:
        values = channels.get(item.name, {})
        item.gain, item.offset, item.smoothing = (values.get("gain", 1.0), values.get("offset", 0.0),
                                                  values.get("smoothing", 0.0))


def automatic_mapping(obj: bpy.types.Object) -> dict[str, str | None]:
    """Each of the object's shape keys -> the ARKit channel its name says (None where it says none)."""
    return {name: channel_for_key(name) for name in shape_key_names(obj)}


def preset_mapping(obj: bpy.types.Object, preset: dict[str, str | None]) -> tuple[dict[str, str | None], list[str]]:
    """The object's keys mapped as the preset says (others: None), and the preset's keys the object lacks."""
    names = shape_key_names(obj)
    present = set(names)
    return {name: preset.get(name) for name in names}, [key for key in preset if key not in present]


@dataclass
class MappingReport:
    """What a mapping drives and what it leaves out."""

    driven_keys: list[str]
    channels: list[str]  # the ARKit channels some key takes, ARKIT_NAMES order
    unmatched_channels: list[str]  # the ARKit channels no key takes
    unmatched_keys: list[str]  # the object's keys that no channel drives
    missing_keys: list[str]  # keys in the mapping the object does not have (renamed or removed)
    duplicate_keys: dict[str, list[str]] = field(default_factory=dict)  # channel -> second keys, not driven
    driver_keys: list[str] = field(default_factory=list)  # keys a driver sets: keying them would move nothing

    def line(self) -> str:
        """One line for an operator's report."""
        text = f"{len(self.driven_keys)} shape keys on {len(self.channels)} of the 52 ARKit channels"
        if self.unmatched_channels:
            text += f"; no key for {len(self.unmatched_channels)}: {', '.join(self.unmatched_channels)}"
        if self.unmatched_keys:
            text += f"; keys not driven ({len(self.unmatched_keys)}): {', '.join(self.unmatched_keys)}"
        if self.missing_keys:
            text += f"; not on the mesh (renamed or removed): {', '.join(self.missing_keys)}"
        for channel, keys in self.duplicate_keys.items():
            text += f"; a second key for {channel}, not driven: {', '.join(keys)}"
        if self.driver_keys:
            text += f"; set by a driver, not keyed: {', '.join(self.driver_keys)}"
        return text


def driver_keys(obj: bpy.types.Object) -> set[str]:
    """The shape keys whose value a driver sets (keying them would move nothing)."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    data = keys.animation_data if keys is not None else None
    if data is None:
        return set()
    return {block.name for block in keys.key_blocks
            if data.drivers.find(f'key_blocks["{bpy.utils.escape_identifier(block.name)}"].value') is not None}


def mapping_report(obj: bpy.types.Object, mapping: dict[str, str | None]) -> MappingReport:
    """What `mapping` drives on `obj`: never a second key for one channel, never a key a driver sets."""
    names = shape_key_names(obj)
    present = set(names)
    driven_by_driver = driver_keys(obj)
    usable = {key: channel for key, channel in mapping.items() if key in present and key not in driven_by_driver}
    duplicates = duplicate_keys(usable)
    second = {key for keys in duplicates.values() for key in keys}
    driven = [key for key, channel in usable.items() if channel and key not in second]
    return MappingReport(
        driven_keys=driven,
        channels=[name for name in ARKIT_NAMES if name in {usable[key] for key in driven}],
        unmatched_channels=unmatched_channels({key: usable[key] for key in driven}),
        unmatched_keys=[name for name in names if not mapping.get(name)],
        missing_keys=[key for key in mapping if key not in present],
        duplicate_keys=duplicates,
        driver_keys=[name for name in names if name in driven_by_driver and mapping.get(name)],
    )


# ---------------------------------------------------------------------------------------- finding things


def check_character(obj: bpy.types.Object | None) -> None:
    """InputError (one line) unless `obj` is a mesh with shape keys that can be driven."""
    if obj is None:
        raise InputError(None, "choose the character: a mesh object with ARKit shape keys")
    if obj.type != "MESH":
        raise InputError(None, f"{obj.name!r} is not a mesh: choose a mesh object with ARKit shape keys")
    keys = obj.data.shape_keys
    if keys is None or not shape_key_names(obj):
        raise InputError(None, f"{obj.name!r} has no shape keys to drive (it needs ARKit's 52, any naming)")
    if not keys.use_relative:
        raise InputError(None, f"{obj.name!r}: its shape keys are absolute (Relative is off); ARKit drives relative "
                               "keys")


def arkit_characters(objects) -> list[bpy.types.Object]:
    """The meshes among `objects` with shape keys that ARKit channels drive (stored mapping or names)."""
    found, keys_seen = [], set()
    for obj in objects:
        if obj.type != "MESH" or obj.data.shape_keys is None or obj.data.shape_keys in keys_seen:
            continue
        mapping = stored_mapping(obj) or automatic_mapping(obj)
        if any(mapping.values()):
            found.append(obj)
            keys_seen.add(obj.data.shape_keys)
    return found
