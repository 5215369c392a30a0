"""A character as users have it: an armature (or a collection) with every mesh under it whose shape keys ARKit
drives, and the bones a take turns (neck, head, eyes, jaw), chosen on the character or found by usual names.

The character's settings (bones, controls) live on its armature, else on its only mesh; each mesh keeps its
own shape key mapping (mapping.py). Which way the character faces is read from its eye bones
(right eye -> left eye is its left), else its armature's axes (Blender's front, -Y), or the user's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core.character.bones import ROLES, usual_bone
from ..core.character.head_rotation import ARKIT_TO_BLENDER, character_axes
from ..core.errors import InputError
from ..rig.lookup import rig_root
from .mapping import arkit_characters, check_character

FACING_LEFT = {"NEG_Y": (1.0, 0.0, 0.0), "POS_Y": (-1.0, 0.0, 0.0), "POS_X": (0.0, 1.0, 0.0), "NEG_X": (0.0, -1.0, 0.0)}
EYE_MESH_SHARE = 0.9  # a mesh is an eye when this share of its skin weight is on the eye bones


@dataclass
class Rig:
    """A character to drive: its meshes, its armature and the bones found for each role ('' when none)."""

    name: str
    owner: bpy.types.Object  # holds the character's settings (`sheap_character`)
    meshes: list[bpy.types.Object]
    armature: bpy.types.Object | None = None
    bones: dict[str, str] = field(default_factory=dict)  # role -> bone name

    def bone(self, role: str) -> str:
        return self.bones.get(role, "")


def armature_of(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The armature that moves a mesh: a parent, else its Armature modifier's, else the head armature set on it."""
    parent = obj.parent
    while parent is not None:
        if parent.type == "ARMATURE":
            return parent
        parent = parent.parent
    for modifier in getattr(obj, "modifiers", ()):
        if modifier.type == "ARMATURE" and modifier.object is not None:
            return modifier.object
    chosen = obj.sheap_character.head_armature if obj.type == "MESH" else None
    return chosen if chosen is not None and chosen.type == "ARMATURE" else None


def meshes_of(armature: bpy.types.Object) -> list[bpy.types.Object]:
    """The meshes the armature moves whose shape keys ARKit drives, by name."""
    candidates = [obj for obj in bpy.data.objects if obj.type == "MESH" and armature_of(obj) == armature]
    return sorted(arkit_characters(candidates), key=lambda obj: obj.name)


def characters_in_file() -> list[bpy.types.Object]:
    """The characters of the open file: armatures with ARKit meshes, and ARKit meshes under no armature."""
    loose, armatures = [], set()
    for obj in arkit_characters(bpy.data.objects):
        if rig_root(obj) is not None:  # a SHeaP FLAME rig is a source, not a character
            continue
        armature = armature_of(obj)
        if armature is None or obj.parent is None and not _deformed_by(obj, armature):
            loose.append(obj)
        else:
            armatures.add(armature)
    return sorted(armatures, key=lambda a: a.name) + loose


def _deformed_by(obj: bpy.types.Object, armature: bpy.types.Object) -> bool:
    return any(m.type == "ARMATURE" and m.object == armature for m in obj.modifiers)


def resolve(target: bpy.types.Object | bpy.types.Collection | None, narrow: bool = False) -> Rig:
    """The character `target` names: an armature or any of its meshes (the armature's every ARKit mesh), a
    collection (its ARKit meshes), or a mesh under no armature.

    `narrow`: a mesh under an armature is driven alone (with the armature's bones). InputError (one line)
    when there is nothing to drive.
    """
    if isinstance(target, Rig):
        return target
    if target is None:
        raise InputError(None, "choose the character: an armature or a mesh with ARKit shape keys")
    if isinstance(target, bpy.types.Collection):
        meshes = sorted(arkit_characters(target.all_objects), key=lambda obj: obj.name)
        armatures = {armature_of(obj) for obj in meshes} - {None}
        if not meshes:
            raise InputError(None, f"the collection {target.name!r} has no mesh with ARKit shape keys")
        armature = armatures.pop() if len(armatures) == 1 else None
        rig = Rig(target.name, armature or meshes[0], meshes, armature)
    elif target.type == "ARMATURE":
        meshes = meshes_of(target)
        if not meshes:
            raise InputError(None, f"no mesh with ARKit shape keys is under the armature {target.name!r}")
        rig = Rig(target.name, target, meshes, target)
    else:
        check_character(target)
        armature = armature_of(target)
        under = armature is not None and armature != target.sheap_character.head_armature
        meshes = [target] if narrow or armature is None else meshes_of(armature)
        rig = Rig(target.name, armature if under else target, meshes, armature)
    for mesh in rig.meshes:
        check_character(mesh)
    rig.bones = find_bones(rig.owner, rig.armature)
    return rig


def find_bones(owner: bpy.types.Object, armature: bpy.types.Object | None) -> dict[str, str]:
    """Role -> bone: the one chosen on the character, else the armature's bone of a usual name."""
    settings = owner.sheap_character
    if armature is None:  # a head bone named without its armature: nothing to turn (as before armatures)
        return {}
    if armature.type != "ARMATURE":
        raise InputError(None, f"{armature.name!r} is not an armature")
    names = armature.data.bones.keys()
    bones = {}
    for role in ROLES:
        chosen = getattr(settings, f"{role}_bone")
        if chosen and chosen not in armature.data.bones:
            raise InputError(None, f"the armature {armature.name!r} has no bone {chosen!r}")
        bones[role] = chosen or (usual_bone(role, names) if settings.find_bones else "")
    return bones


def world_rest(armature: bpy.types.Object, bone: str) -> np.ndarray:
    """(3, 3) the bone's rest orientation in world axes."""
    return np.array(armature.matrix_world.to_3x3(), dtype=np.float64) @ np.array(
        armature.data.bones[bone].matrix_local.to_3x3(), dtype=np.float64)


def facing_axes(rig: Rig) -> np.ndarray:
    """(3, 3) columns: the character's left, up, forward in world axes (core/head_rotation.character_axes).

    Left: from the right eye bone to the left one, else the armature's +X (Blender's and glTF's front is -Y),
    else the user's Facing (in world axes). Up: the world's +Z (the armature's own when the character lies).
    """
    if rig.armature is None:
        return ARKIT_TO_BLENDER
    to_world = np.array(rig.armature.matrix_world.to_3x3(), dtype=np.float64)
    facing = rig.owner.sheap_character.facing
    left = None
    if facing != "AUTO":
        left = np.array(FACING_LEFT[facing])
    elif rig.bone("left_eye") and rig.bone("right_eye"):
        bones = rig.armature.data.bones
        span = to_world @ np.array(bones[rig.bone("left_eye")].head_local - bones[rig.bone("right_eye")].head_local)
        left = span if np.linalg.norm(span) > 1e-6 else None
    if left is None:
        left = to_world @ np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    if abs(np.dot(left, up)) > 0.9 * np.linalg.norm(left):
        up = to_world @ np.array([0.0, 0.0, 1.0])
    return character_axes(left, up)


def eye_meshes(rig: Rig) -> list[bpy.types.Object]:
    """The rig's meshes the eye bones turn (parented to an eye bone, or skinned almost only to them)."""
    eyes = {rig.bone("left_eye"), rig.bone("right_eye")} - {""}
    if not eyes:
        return []
    deforming = {bone.name for bone in rig.armature.data.bones if bone.use_deform}
    found = []
    for mesh in rig.meshes:
        if mesh.parent == rig.armature and mesh.parent_type == "BONE" and mesh.parent_bone in eyes:
            found.append(mesh)
            continue
        groups = {group.index: group.name for group in mesh.vertex_groups if group.name in deforming | eyes}
        if not eyes & set(groups.values()):
            continue
        on_eyes = total = 0.0
        for vertex in mesh.data.vertices:  # no bulk read of weights in bpy; eye meshes are small
            for element in vertex.groups:
                name = groups.get(element.group)
                if name is not None:
                    total += element.weight
                    on_eyes += element.weight if name in eyes else 0.0
        if total > 0 and on_eyes >= EYE_MESH_SHARE * total:
            found.append(mesh)
    return found


def find_character(blend_file: str, name: str | None = None) -> bpy.types.Object | bpy.types.Collection:
    """What to drive in the open .blend: the object or collection `name`, else its only character (InputError).

    A character is an armature with ARKit meshes under it, or an ARKit mesh under no armature.
    """
    if name:
        target = bpy.data.objects.get(name) or bpy.data.collections.get(name)
        if target is None:
            raise InputError(blend_file, f"no object named {name!r}")
        try:
            resolve(target)
        except InputError as exc:
            raise InputError(blend_file, exc.problem) from None
        return target
    found = characters_in_file()
    if not found:
        raise InputError(blend_file, "no mesh with ARKit-named shape keys: name it with --character-object")
    if len(found) > 1:
        names = ", ".join(repr(obj.name) for obj in found)
        raise InputError(blend_file, f"several characters ({names}): choose one with --character-object")
    return found[0]
