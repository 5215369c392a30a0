"""Test characters built the way real tools build them (no asset of theirs copied): an armature and several meshes,
each mesh with the 52 ARKit keys, skinned to the armature with a vertex group for every bone (as Blender's glTF
importer makes them).

- `ready_player_me`: meshes Wolf3D_Head, Wolf3D_Teeth, EyeLeft, EyeRight, each with 15 viseme_* keys and the 52 ARKit
  keys as ARKit spells them; bones Hips, Spine, Neck, Head, LeftEye, RightEye; no jaw bone (the teeth's jawOpen key
  drops the lower teeth).
- `character_creator`: CC_Base_Body, CC_Base_Teeth, CC_Base_Eye (both eyes), keys named CC-style (A25_Jaw_Open ...);
  bones CC_Base_NeckTwist01, CC_Base_Head, CC_Base_L_Eye, CC_Base_R_Eye, CC_Base_JawRoot (the lower teeth on it).
- `vroid`: J_Bip_C_Neck, J_Bip_C_Head, J_Adj_L_FaceEye, J_Adj_R_FaceEye, facing +Y in its own data (VRM 0.x).

Every character is modelled facing -Y in metres, then turned by `turn` radians about Z (in the data for `vroid`).
The eye meshes' own eyeLook keys slide the eye 5 mm sideways: keyed on top of the eye bones, the irises would
move too far.
"""

from __future__ import annotations

import re

import bmesh
import bpy
import numpy as np

from sheap_blender.core.arkit.names import ARKIT_NAMES

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
HEAD_CENTRE = np.array([0.0, 0.0, 1.62])
NOSE_TIP = np.array([0.0, -0.115, 1.61])
EYE_CENTRES = {"left": np.array([0.032, -0.07, 1.65]), "right": np.array([-0.032, -0.07, 1.65])}
EYE_RADIUS = 0.012
LOWER_TEETH_Z, UPPER_TEETH_Z = 1.572, 1.585


def _sphere(centre: np.ndarray, radius: float, subdivisions: int = 2) -> tuple[np.ndarray, list]:
    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=subdivisions, radius=radius)
    verts = np.array([v.co[:] for v in bm.verts]) + centre
    faces = [[v.index for v in f.verts] for f in bm.faces]
    bm.free()
    return verts, faces


def _arc(y: float, z: float, n: int = 8) -> tuple[np.ndarray, list]:
    """A row of teeth: a strip of quads in front of the mouth."""
    x = np.linspace(-0.022, 0.022, n)
    front = np.column_stack([x, np.full(n, y) + 20 * x * x, np.full(n, z)])
    back = front + [0.0, 0.008, 0.0]
    verts = np.concatenate([front, back])
    return verts, [[i, i + 1, n + i + 1, n + i] for i in range(n - 1)]


def _turned(points: np.ndarray, turn) -> np.ndarray:
    """Points turned by `turn` radians about Z, or by a (3, 3) matrix."""
    if np.ndim(turn) == 0:
        c, s = np.cos(turn), np.sin(turn)
        turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(points) @ np.asarray(turn).T


def _armature(name: str, bones: list[tuple], data_turn: float) -> bpy.types.Object:
    """bones: (name, head, tail, roll, parent) facing -Y; the data turned by `data_turn` about Z."""
    arm = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, head, tail, roll, parent in bones:
        edit = arm.data.edit_bones.new(bone)
        edit.head, edit.tail = _turned(head, data_turn), _turned(tail, data_turn)
        edit.roll = roll
        if parent:
            edit.parent = arm.data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return arm


def _mesh(name: str, parts: list[tuple[np.ndarray, list, str]], arm: bpy.types.Object, keys: list[str],
          offsets: dict[str, np.ndarray], data_turn: float) -> bpy.types.Object:
    """A mesh of parts (vertices, faces, the bone each part is skinned to), its keys' offsets by key name."""
    verts, faces, owner = [], [], []
    for part_verts, part_faces, bone in parts:
        faces += [[i + len(verts) for i in face] for face in part_faces]
        owner += [bone] * len(part_verts)
        verts += [tuple(v) for v in _turned(part_verts, data_turn)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.parent = arm
    obj.modifiers.new("Armature", "ARMATURE").object = arm
    for bone in arm.data.bones:  # a group for every joint, most of them empty (glTF import)
        group = obj.vertex_groups.new(name=bone.name)
        indices = [i for i, b in enumerate(owner) if b == bone.name]
        if indices:
            group.add(indices, 1.0, "REPLACE")
    basis = np.array(verts)
    obj.shape_key_add(name="Basis", from_mix=False)
    for key in keys:
        block = obj.shape_key_add(name=key, from_mix=False)
        if key in offsets:
            block.data.foreach_set("co", (basis + _turned(offsets[key], data_turn)).astype(np.float32).ravel())
    return obj


def _face_parts(head_bone: str) -> tuple[np.ndarray, list, np.ndarray, int]:
    """The head: a sphere, a nose triangle; its chin and its nose tip's index."""
    verts, faces = _sphere(HEAD_CENTRE, 0.09)
    nose = np.array([NOSE_TIP, NOSE_TIP + [0.01, 0.015, -0.01], NOSE_TIP + [-0.01, 0.015, -0.01]])
    faces = faces + [[len(verts), len(verts) + 1, len(verts) + 2]]
    verts = np.concatenate([verts, nose])
    chin = (verts[:, 2] < 1.58) & (verts[:, 1] < -0.02)
    return verts, faces, chin, len(verts) - 3


def _eye_keys(verts: np.ndarray, side: str) -> dict[str, np.ndarray]:
    """An eye mesh's own gaze keys: slide it 5 mm toward where it looks (its left: +X)."""
    slide = np.zeros_like(verts)
    slide[:, 0] = 0.005
    out_key, in_key = (f"eyeLookOut{side.title()}", f"eyeLookIn{side.title()}")
    return {out_key: slide if side == "left" else -slide, in_key: -slide if side == "left" else slide}


def ready_player_me(turn: float = 0.0, y_up: bool = False) -> bpy.types.Object:
    """Wolf3D_Head, Wolf3D_Teeth, EyeLeft, EyeRight under "Armature" (turned by `turn` about Z as an object).

    `y_up`: the data Y-up and the armature object turned +90 degrees about X, as an FBX import makes it.
    """
    data = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]) if y_up else 0.0  # world -> Y-up
    bones = [("Hips", (0, 0, 1.0), (0, 0, 1.1), 0.0, ""), ("Spine", (0, 0, 1.1), (0, 0, 1.45), 0.0, "Hips"),
             ("Neck", (0, 0, 1.45), (0, 0, 1.55), 0.0, "Spine"), ("Head", (0, 0, 1.55), (0, 0, 1.75), 0.0, "Neck"),
             ("LeftEye", tuple(EYE_CENTRES["left"]), tuple(EYE_CENTRES["left"] + [0, 0, 0.02]), 0.0, "Head"),
             ("RightEye", tuple(EYE_CENTRES["right"]), tuple(EYE_CENTRES["right"] + [0, 0, 0.02]), 0.0, "Head")]
    arm = _armature("Armature", bones, data)
    keys = [f"viseme_{v}" for v in VISEMES] + list(ARKIT_NAMES)
    head_verts, head_faces, chin, _ = _face_parts("Head")
    jaw = np.zeros_like(head_verts)
    jaw[chin, 2] = -0.01
    _mesh("Wolf3D_Head", [(head_verts, head_faces, "Head")], arm, keys, {"jawOpen": jaw}, data)
    upper, upper_faces = _arc(-0.075, UPPER_TEETH_Z)
    lower, lower_faces = _arc(-0.075, LOWER_TEETH_Z)
    drop = np.concatenate([np.zeros_like(upper), np.tile([0.0, 0.004, -0.012], (len(lower), 1))])
    _mesh("Wolf3D_Teeth", [(upper, upper_faces, "Head"), (lower, lower_faces, "Head")], arm, keys,
          {"jawOpen": drop}, data)
    for side, bone, name in (("left", "LeftEye", "EyeLeft"), ("right", "RightEye", "EyeRight")):
        verts, faces = _sphere(EYE_CENTRES[side], EYE_RADIUS)
        _mesh(name, [(verts, faces, bone)], arm, keys, _eye_keys(verts, side), data)
    arm.rotation_euler = (np.pi / 2 if y_up else 0.0, 0.0, turn)
    bpy.context.view_layer.update()
    return arm


def character_creator() -> bpy.types.Object:
    """CC_Base_Body, CC_Base_Teeth, CC_Base_Eye under "CC_Base_BoneRoot"; bones with CC's odd rest orientations."""
    bones = [("CC_Base_Hip", (0, 0, 1.0), (0, 0.1, 1.0), 0.3, ""),
             ("CC_Base_NeckTwist01", (0, 0, 1.45), (0, -0.02, 1.55), 1.0, "CC_Base_Hip"),
             ("CC_Base_Head", (0, -0.01, 1.55), (0.05, -0.01, 1.7), -0.7, "CC_Base_NeckTwist01"),
             ("CC_Base_JawRoot", (0, -0.02, 1.6), (0, -0.09, 1.56), 2.0, "CC_Base_Head"),
             ("CC_Base_L_Eye", tuple(EYE_CENTRES["left"]), tuple(EYE_CENTRES["left"] + [0.0, -0.02, 0.0]), 1.4,
              "CC_Base_Head"),
             ("CC_Base_R_Eye", tuple(EYE_CENTRES["right"]), tuple(EYE_CENTRES["right"] + [0.0, -0.02, 0.0]), -2.1,
              "CC_Base_Head")]
    arm = _armature("CC_Base_BoneRoot", bones, 0.0)
    keys = [f"A{i + 1:02d}_" + "_".join(w.capitalize() for w in re.findall(r"[A-Z]?[a-z]+", name))
            for i, name in enumerate(ARKIT_NAMES)]
    head_verts, head_faces, _, _ = _face_parts("CC_Base_Head")
    _mesh("CC_Base_Body", [(head_verts, head_faces, "CC_Base_Head")], arm, keys, {}, 0.0)
    upper, upper_faces = _arc(-0.075, UPPER_TEETH_Z)
    lower, lower_faces = _arc(-0.075, LOWER_TEETH_Z)
    _mesh("CC_Base_Teeth", [(upper, upper_faces, "CC_Base_Head"), (lower, lower_faces, "CC_Base_JawRoot")], arm,
          keys, {}, 0.0)
    left, left_faces = _sphere(EYE_CENTRES["left"], EYE_RADIUS)
    right, right_faces = _sphere(EYE_CENTRES["right"], EYE_RADIUS)
    _mesh("CC_Base_Eye", [(left, left_faces, "CC_Base_L_Eye"), (right, right_faces, "CC_Base_R_Eye")], arm, keys,
          {}, 0.0)
    return arm


def vroid() -> bpy.types.Object:
    """A VRoid-like character facing +Y in its own data (the armature object not turned)."""
    bones = [("J_Bip_C_Hips", (0, 0, 1.0), (0, 0, 1.1), 0.0, ""),
             ("J_Bip_C_Neck", (0, 0, 1.45), (0, 0, 1.55), 0.5, "J_Bip_C_Hips"),
             ("J_Bip_C_Head", (0, 0, 1.55), (0, 0, 1.75), 0.5, "J_Bip_C_Neck"),
             ("J_Adj_L_FaceEye", tuple(EYE_CENTRES["left"]), tuple(EYE_CENTRES["left"] + [0.0, 0.0, 0.02]), 0.2,
              "J_Bip_C_Head"),
             ("J_Adj_R_FaceEye", tuple(EYE_CENTRES["right"]), tuple(EYE_CENTRES["right"] + [0.0, 0.0, 0.02]), -0.2,
              "J_Bip_C_Head")]
    turn = np.pi
    arm = _armature("Armature", bones, turn)
    keys = list(ARKIT_NAMES)
    head_verts, head_faces, _, _ = _face_parts("J_Bip_C_Head")
    _mesh("Face", [(head_verts, head_faces, "J_Bip_C_Head")], arm, keys, {}, turn)
    for side, bone, name in (("left", "J_Adj_L_FaceEye", "EyeLeft"), ("right", "J_Adj_R_FaceEye", "EyeRight")):
        verts, faces = _sphere(EYE_CENTRES[side], EYE_RADIUS)
        _mesh(name, [(verts, faces, bone)], arm, keys, _eye_keys(verts, side), turn)
    return arm


def world_vertices(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) the object's evaluated vertices (keys, armature) in world space, at the scene's current frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
