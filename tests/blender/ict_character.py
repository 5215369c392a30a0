"""A character for tests and benchmarks: ICT-FaceKit's ARKit head (MIT, shipped in core/data) as a Blender mesh
with its 53 ARKit shapes as shape keys, named in one of several naming habits."""

from __future__ import annotations

import json
import re

import bpy
import numpy as np

from sheap_blender.core.arkit.reference import ICT_FACEKIT as ICT
from sheap_blender.core.safetensors_file import read_safetensors

HABITS = ("arkit", "upper_camel", "ict", "dot", "snake", "cc", "upper")


def ict_shapes() -> tuple[dict[str, np.ndarray], list[str]]:
    """ICT-FaceKit's tensors and its 53 shape names."""
    tensors, metadata = read_safetensors(ICT)
    return tensors, json.loads(metadata["shape_names"])


def habit_name(ict_name: str, habit: str, number: int) -> str:
    """ICT's `eyeBlink_L` / `jawOpen` / `browInnerUp_L` in a naming habit (keeping split halves' sides)."""
    base, _, side = ict_name.partition("_")
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+", base)]
    long_side = {"L": "Left", "R": "Right", "": ""}[side]
    camel = words[0] + "".join(w.capitalize() for w in words[1:])
    return {
        "arkit": camel + long_side,
        "upper_camel": camel[0].upper() + camel[1:] + long_side,
        "ict": ict_name,
        "dot": camel + (f".{side}" if side else ""),
        "snake": "_".join(w.capitalize() for w in words) + (f"_{side}" if side else ""),
        "cc": f"A{number:02d}_" + "_".join(w.capitalize() for w in words) + (f"_{long_side}" if side else ""),
        "upper": "_".join(w.upper() for w in words) + (f"_{long_side.upper()}" if side else ""),
    }[habit]


def build_character(name: str = "Face", habit: str = "ict", skip: tuple[str, ...] = (),
                    extra: tuple[str, ...] = ()) -> bpy.types.Object:
    """ICT-FaceKit's head (Blender axes: FLAME/ICT (x, y, z) -> (x, -z, y)), its ARKit shapes as shape keys."""
    tensors, names = ict_shapes()
    to_blender = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    neutral = tensors["neutral"].astype(np.float64) @ to_blender.T
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(neutral.tolist(), [], tensors["triangles"].tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for number, ict_name in enumerate(names, start=1):
        if ict_name in skip:
            continue
        block = obj.shape_key_add(name=habit_name(ict_name, habit, number), from_mix=False)
        offsets = tensors["offsets_mm"][number - 1].astype(np.float64) / 1000.0 @ to_blender.T
        block.data.foreach_set("co", (neutral + offsets).astype(np.float32).ravel())
    for extra_name in extra:
        obj.shape_key_add(name=extra_name, from_mix=False)
    return obj


def add_head_bone(obj: bpy.types.Object, name: str = "Body", bone: str = "head") -> bpy.types.Object:
    """An armature with one upright bone at the head, set on the character to take the head's rotation."""
    rig = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    edit = rig.data.edit_bones.new(bone)
    edit.head, edit.tail = (0.0, 0.0, -0.05), (0.0, 0.0, 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.sheap_character.head_armature, obj.sheap_character.head_bone = rig, bone
    return rig
