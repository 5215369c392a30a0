"""The rig's animation as F-curve channels: head motion (armature), expressions (shape keys), camera."""

from __future__ import annotations

import numpy as np

from ..core.flame.model import JOINT_NAMES
from ..core.result.rig_math import RigAnimation, corrective_key_names
from . import animation


def head_channels(anim: RigAnimation, heads: np.ndarray) -> list[animation.Channel]:
    channels = [animation.Channel("location", i, anim.translation[:, i], "Object Transforms") for i in range(3)]
    locations = anim.locations_for(heads)
    for joint, name in enumerate(JOINT_NAMES):
        bone = f'pose.bones["{name}"]'
        channels += [animation.Channel(f"{bone}.rotation_quaternion", i, anim.bone_quaternions[:, joint, i], name)
                     for i in range(4)]
        channels += [animation.Channel(f"{bone}.location", i, locations[:, joint, i], name) for i in range(3)]
    return channels


def shape_channels(names: list[str], values: np.ndarray, scales: np.ndarray) -> list[animation.Channel]:
    eyelids = {name for name in names if name.startswith("eyelid_")}
    correctives = set(corrective_key_names())
    channels = []
    for k, name in enumerate(names):
        group = "Eyelids" if name in eyelids else "Pose correctives" if name in correctives else "Expression"
        channels.append(animation.Channel(f'key_blocks["{name}"].value', 0, values[:, k] / scales[k], group))
    return channels


def camera_channels(settings: dict[str, np.ndarray]) -> list[animation.Channel]:
    return [animation.Channel(name, 0, settings[name], "Camera") for name in ("lens", "shift_x", "shift_y")]
