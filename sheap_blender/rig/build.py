"""The FLAME head in Blender: mesh, shape keys, armature, vertex groups (no animation here).

Everything is in FLAME axes (metres, +Y up, face toward +Z); the importer parents it under an
object turned +90 degrees about X, which maps FLAME (x, y, z) to Blender (x, -z, y).

- mesh: FLAME's topology, basis = `v_template`; shape keys relative to the basis:
  `identity` (template + the clip's identity, value 1), `exp000`..`exp099`, `eyelid_l/_r` (when
  the model has them), `pose_<joint>_<row><col>` (the 36 pose correctives). A key whose values
  would leave Blender's slider limit of +-10 stores its direction multiplied by a scale s (its
  keys then hold value / s), so every frame is exact;
- armature: one bone per FLAME joint, head at the rest joint, tail straight up (+Y, FLAME),
  roll 0: every bone's rest orientation is the identity, so FLAME's axis-angle rotations are the
  bones' quaternions as they are; vertex groups = FLAME's skinning weights; an Armature modifier
  (linear blend skinning, no preserve volume).
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.flame.model import JOINT_NAMES, PARENTS, FlameModel
from ..core.result.rig_math import corrective_key_names, expression_key_names, eyelid_key_names

ROLE = "sheap_role"  # custom property naming each object's part in the rig
BONE_LENGTHS = {"root": 0.06, "neck": 0.05, "jaw": 0.04, "eye_l": 0.015, "eye_r": 0.015}
BASIS_KEY = "Basis"
IDENTITY_KEY = "identity"


def key_directions(model: FlameModel) -> dict[str, np.ndarray]:
    """Name -> (V, 3) direction of every animated shape key, in the importer's channel order."""
    directions = {name: model.shapedirs[:, :, 300 + i] for i, name in enumerate(expression_key_names())}
    if model.eyelid_dirs is not None:
        directions.update({name: model.eyelid_dirs[:, :, i] for i, name in enumerate(eyelid_key_names(model))})
    directions.update({name: model.posedirs[:, :, i] for i, name in enumerate(corrective_key_names())})
    return directions


def build_mesh(name: str, model: FlameModel) -> bpy.types.Object:
    """A mesh object with FLAME's template and triangles, smooth shaded (not linked anywhere)."""
    mesh = bpy.data.meshes.new(name)
    try:
        mesh.from_pydata(model.v_template.tolist(), [], model.faces.tolist())
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        mesh.update()
        obj = bpy.data.objects.new(name, mesh)
    except BaseException:
        bpy.data.meshes.remove(mesh)
        raise
    obj[ROLE] = "head"
    return obj


def _set_coords(block, coords: np.ndarray) -> None:
    block.data.foreach_set("co", np.ascontiguousarray(coords, dtype=np.float32).ravel())


def write_shape_keys(
    obj: bpy.types.Object,
    model: FlameModel,
    identity_vertices: np.ndarray,
    scales: dict[str, float],
    ranges: dict[str, tuple[float, float]],
) -> None:
    """Create (first time) or rewrite every shape key of the head: basis, identity, animated keys.

    `scales[name]` multiplies that key's direction (1 unless its values exceed +-10);
    `ranges[name]` is its (slider_min, slider_max).
    """
    basis = model.v_template
    if obj.data.shape_keys is None:
        obj.shape_key_add(name=BASIS_KEY, from_mix=False)
    blocks = obj.data.shape_keys.key_blocks
    wanted = {IDENTITY_KEY: identity_vertices}
    for name, direction in key_directions(model).items():
        wanted[name] = basis + scales.get(name, 1.0) * direction
    _set_coords(blocks[0], basis)
    for name, coords in wanted.items():
        block = blocks.get(name)
        if block is None:
            block = obj.shape_key_add(name=name, from_mix=False)
        _set_coords(block, coords)
        block.relative_key = blocks[0]
        low, high = ranges.get(name, (0.0, 1.0))
        block.slider_min, block.slider_max = -10.0, 10.0  # widen first: min must stay below max
        block.slider_min, block.slider_max = low, high
    identity = blocks[IDENTITY_KEY]
    identity.slider_min, identity.slider_max = 0.0, 1.0
    identity.value = 1.0
    obj.data.shape_keys.use_relative = True
    obj.data.update()


def add_vertex_groups(obj: bpy.types.Object, weights: np.ndarray) -> None:
    """One vertex group per FLAME joint holding its skinning weights (zeros left out).

    Vertices that share a weight go in with one call (FLAME's weights are mostly exactly 0 or 1).
    """
    for joint, name in enumerate(JOINT_NAMES):
        group = obj.vertex_groups.get(name) or obj.vertex_groups.new(name=name)
        column = weights[:, joint].astype(np.float32)
        nonzero = np.flatnonzero(column > 0)
        values, inverse = np.unique(column[nonzero], return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(values) + 1))
        for k, value in enumerate(values.tolist()):
            group.add(nonzero[order[bounds[k] : bounds[k + 1]]].tolist(), value, "REPLACE")


def build_armature(name: str) -> bpy.types.Object:
    """An armature object without bones yet (bones need edit mode: `set_rest_joints`)."""
    data = bpy.data.armatures.new(name)
    try:
        obj = bpy.data.objects.new(name, data)
    except BaseException:
        bpy.data.armatures.remove(data)
        raise
    data.display_type = "STICK"
    obj.show_in_front = True
    obj[ROLE] = "armature"
    return obj


def set_rest_joints(arm: bpy.types.Object, rest_joints: np.ndarray, view_layer: bpy.types.ViewLayer) -> np.ndarray:
    """Create or move the five bones to `rest_joints` (armature space = FLAME axes) in edit mode.

    Returns the bones' heads as Blender stores them (float32): the importer computes the bone
    locations from these, so rounding of the rest pose cannot creep into the result.
    """
    previous = view_layer.objects.active
    hidden = arm.hide_get(view_layer=view_layer)
    arm.hide_set(False, view_layer=view_layer)
    view_layer.objects.active = arm
    if bpy.context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = arm.data.edit_bones
        for joint, name in enumerate(JOINT_NAMES):
            bone = edit_bones.get(name) or edit_bones.new(name)
            head = rest_joints[joint]
            bone.head = head.tolist()
            bone.tail = (head + (0.0, BONE_LENGTHS[name], 0.0)).tolist()
            bone.roll = 0.0
            bone.use_connect = False
            bone.use_deform = True
            bone.inherit_scale = "FULL"
            bone.use_inherit_rotation = True
            bone.use_local_location = True
        for joint, name in enumerate(JOINT_NAMES):
            parent = PARENTS[joint]
            edit_bones[name].parent = None if parent < 0 else edit_bones[JOINT_NAMES[parent]]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        arm.hide_set(hidden, view_layer=view_layer)
        view_layer.objects.active = previous
    heads = np.array([arm.data.bones[name].head_local[:] for name in JOINT_NAMES], dtype=np.float64)
    for pose_bone in arm.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return heads


def add_armature_modifier(obj: bpy.types.Object, arm: bpy.types.Object) -> None:
    modifier = obj.modifiers.get("FLAME skinning") or obj.modifiers.new("FLAME skinning", "ARMATURE")
    modifier.object = arm
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    modifier.use_deform_preserve_volume = False
