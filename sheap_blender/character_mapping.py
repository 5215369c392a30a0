"""A character's shape key -> ARKit channel mapping, stored on the object (saved in the .blend), and its head bone.

`Object.sheap_character` holds the mapping (one item per shape key: its name and an ARKit channel or
"NONE"), the armature and bone that take the head's rotation; `Scene.sheap_character` the panel's
choices (which character, which result). `automatic_mapping` reads the keys' names whatever the naming
habit (core/arkit_names.py); several keys may take one channel (ICT-FaceKit's browInnerUp_L / _R).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from .core.arkit_names import ARKIT_NAMES, channel_for_key, unmatched_channels
from .core.errors import InputError

NONE = "NONE"
CHANNEL_ITEMS = [(NONE, "None", "This shape key is not driven"),
                 *((name, name, f"ARKit's {name}") for name in ARKIT_NAMES)]


# ---------------------------------------------------------------------------------------- properties


class SHEAP_ArkitKey(bpy.types.PropertyGroup):
    """One shape key and the ARKit channel that drives it."""

    key: bpy.props.StringProperty(name="Shape Key", description="The shape key's name")
    channel: bpy.props.EnumProperty(name="ARKit Channel", items=CHANNEL_ITEMS, default=NONE,
                                    description="The ARKit coefficient keyed on this shape key")


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _has_shape_keys(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and obj.data.shape_keys is not None


class SHEAP_CharacterSettings(bpy.types.PropertyGroup):
    """A character's own settings, saved with the object: the mapping and the head bone."""

    mapping: bpy.props.CollectionProperty(type=SHEAP_ArkitKey)
    active_index: bpy.props.IntProperty(name="Active Key", default=0)
    head_armature: bpy.props.PointerProperty(name="Head Armature", type=bpy.types.Object, poll=_is_armature,
                                             description="The armature whose bone takes the head's rotation")
    head_bone: bpy.props.StringProperty(name="Head Bone", description="The bone that takes the head's rotation "
                                        "(turned in its rest frame; the character faces -Y, Blender's front)")


class SHEAP_CharacterScene(bpy.types.PropertyGroup):
    """The panel's choices: which character, which result."""

    target: bpy.props.PointerProperty(name="Character", type=bpy.types.Object, poll=_has_shape_keys,
                                      description="The mesh whose ARKit shape keys are driven")
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


classes = (SHEAP_ArkitKey, SHEAP_CharacterSettings, SHEAP_CharacterScene)


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

    def line(self) -> str:
        """One line for an operator's report."""
        text = f"{len(self.driven_keys)} shape keys on {len(self.channels)} of the 52 ARKit channels"
        if self.unmatched_channels:
            text += f"; no key for {len(self.unmatched_channels)}: {', '.join(self.unmatched_channels)}"
        if self.unmatched_keys:
            text += f"; keys not driven ({len(self.unmatched_keys)}): {', '.join(self.unmatched_keys)}"
        if self.missing_keys:
            text += f"; not on the mesh (renamed or removed): {', '.join(self.missing_keys)}"
        return text


def mapping_report(obj: bpy.types.Object, mapping: dict[str, str | None]) -> MappingReport:
    """What `mapping` drives on `obj`."""
    names = shape_key_names(obj)
    present = set(names)
    usable = {key: channel for key, channel in mapping.items() if key in present}
    driven = [key for key, channel in usable.items() if channel]
    return MappingReport(
        driven_keys=driven,
        channels=[name for name in ARKIT_NAMES if name in set(usable.values())],
        unmatched_channels=unmatched_channels(usable),
        unmatched_keys=[name for name in names if not mapping.get(name)],
        missing_keys=[key for key in mapping if key not in present],
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


def find_character(blend_file: str, name: str | None = None) -> bpy.types.Object:
    """The object to drive in the open .blend: `name`, else the only mesh with ARKit shape keys (InputError)."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(blend_file, f"no object named {name!r}")
        check_character(obj)
        return obj
    found = arkit_characters(bpy.data.objects)
    if not found:
        raise InputError(blend_file, "no mesh with ARKit-named shape keys: name it with --character-object")
    if len(found) > 1:
        names = ", ".join(repr(obj.name) for obj in found)
        raise InputError(blend_file, f"several meshes with ARKit shape keys ({names}): choose one with "
                                     "--character-object")
    return found[0]


def head_bone_of(obj: bpy.types.Object) -> tuple[bpy.types.Object | None, str]:
    """The armature and bone set on the character to take the head's rotation (None, '' when none)."""
    settings = obj.sheap_character
    if settings.head_armature is None or not settings.head_bone:
        return None, ""
    return settings.head_armature, settings.head_bone


def check_head_bone(arm: bpy.types.Object | None, bone: str) -> None:
    """InputError unless `bone` is a bone of the armature `arm` (nothing set is fine)."""
    if arm is None and not bone:
        return
    if arm is None or arm.type != "ARMATURE":
        raise InputError(None, f"head bone {bone!r}: choose its armature")
    if bone not in arm.data.bones:
        raise InputError(None, f"the armature {arm.name!r} has no bone {bone!r}")
