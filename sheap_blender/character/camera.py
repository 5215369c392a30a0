"""The footage camera for a driven character, as the FLAME rig has one (rig/scene_camera.py).

Per-frame lens and shift from the crops (core/camera.py), the footage behind it, the render size and
the scene camera. SHeaP's camera looks at FLAME's head from `-cam_trans + (0, 0, 1)`; the character's
face (the centre of what its driven keys move) takes the head's place at the clip's mean offset, the
camera looking along +Y (the character faces -Y). The character is not the FLAME head, so the face
lines up with the footage only roughly; the lens, the shift and the footage are exactly the rig's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from ..core.camera import blender_camera
from ..rig import animation, scene_camera

ROLE_KEY = "sheap_role"  # as the rig's objects say what they are
ROLE = "character_camera"


@dataclass
class CameraPlan:
    """Everything the camera needs, computed before any datablock is made."""

    name: str
    character: str
    location: np.ndarray  # (3,) world
    settings: dict[str, np.ndarray]  # lens, shift_x, shift_y per frame
    footage: scene_camera.FootagePlan
    frames: np.ndarray
    width: int
    height: int


def face_centre(obj: bpy.types.Object, keys: list[str]) -> np.ndarray:
    """World position of the centre of the vertices that the shape keys `keys` move (the object's origin if none)."""
    blocks = obj.data.shape_keys.key_blocks
    n = len(obj.data.vertices)
    basis = np.empty(3 * n, dtype=np.float32)
    obj.data.shape_keys.reference_key.data.foreach_get("co", basis)
    moved = np.zeros(n, dtype=bool)
    coords = np.empty(3 * n, dtype=np.float32)
    for key in keys:
        blocks[key].data.foreach_get("co", coords)
        moved |= (np.abs(coords - basis).reshape(n, 3) > 1e-6).any(axis=1)
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    if not moved.any():
        return matrix[:3, 3].copy()
    lo, hi = basis.reshape(n, 3)[moved].min(0), basis.reshape(n, 3)[moved].max(0)
    return matrix[:3, :3] @ ((lo + hi) / 2.0) + matrix[:3, 3]


def plan_camera(obj: bpy.types.Object, take, keys: list[str]) -> CameraPlan:
    """Place and key the camera for `take` (a character.Take from a result)."""
    result = take.result
    if result is None:
        raise ValueError("the footage camera needs a take from a result")
    trans = result.params["cam_trans"].astype(np.float64).mean(axis=0)
    offset = np.array([-trans[0], -(1.0 - trans[2]), -trans[1]])  # FLAME (x, y, z) -> Blender (x, -z, y)
    settings = blender_camera(result.params["crop_box"], result.width, result.height, result.fov_deg)
    plan = scene_camera.plan_footage(result.metadata.get("footage", ""), take.result_path, result.frame_index)
    return CameraPlan(name=f"{take.name} footage camera", character=obj.name, location=face_centre(obj, keys) + offset,
                      settings=settings, footage=plan, frames=np.asarray(take.frames), width=result.width,
                      height=result.height)


def earlier_cameras(scene: bpy.types.Scene, character: str) -> list[bpy.types.Object]:
    """The footage cameras earlier drives made for the character (replaced by a new one)."""
    return [obj for obj in scene.objects if obj.get(ROLE_KEY) == ROLE and obj.get("sheap_character") == character]


def build_footage_camera(context: bpy.types.Context, plan: CameraPlan, tx, warnings: list[str]) -> bpy.types.Object:
    """Make the camera (through the transaction `tx`), key it, show the footage, make it the scene camera."""
    scene = context.scene
    camera = scene_camera.build_camera(plan.name)
    tx.add(camera.data)
    tx.add(camera)
    camera[ROLE_KEY] = ROLE
    camera["sheap_character"] = plan.character
    camera.location = plan.location.tolist()
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looking along +Y, +Z up
    scene.collection.objects.link(camera)
    if plan.footage.warning:
        warnings.append(plan.footage.warning)
    try:
        footage = scene_camera.load_background(plan.footage)
    except RuntimeError as exc:
        footage = None
        warnings.append(f"cannot show the footage {plan.footage.path}: {str(exc).strip()}")
    if footage is not None:
        tx.add(footage)
        footage["sheap_footage"] = True
        warnings += scene_camera.size_warnings(footage, plan.width, plan.height)
    start = int(round(plan.frames[0]))
    scene_camera.set_background(camera.data, footage, plan.footage, start, len(plan.frames))
    target = animation.new_action(plan.name, "CAMERA", slot_name=plan.name)
    tx.add(target.action)
    animation.write_channels(target, plan.frames, [animation.Channel(name, 0, plan.settings[name], "Camera")
                                                   for name in ("lens", "shift_x", "shift_y")])
    animation.assign(camera.data, target)
    scene_camera.set_render_size(scene, plan.width, plan.height)
    scene.camera = camera
    return camera


def remove_camera(obj: bpy.types.Object) -> None:
    data = obj.data
    action = data.animation_data.action if data.animation_data is not None else None
    bpy.data.objects.remove(obj)
    if data.users == 0:
        bpy.data.cameras.remove(data)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)
