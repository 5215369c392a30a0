"""Drive a user's character: ARKit-52 shape keys (and a head bone) keyed from a SHeaP result or a Live Link Face take.

The mapping shape key -> ARKit channel and the head bone live on the object (character_mapping.py).
`drive_with_result` solves the take (core/arkit_solve.take_for_result, the function `python -m backend arkit`
uses) and keys row i on scene frame `frame_start + i`, as the FLAME rig's importer does; `drive_with_csv` keys a
Live Link Face CSV by timecode (its rate read from the take, every row at its own time at the scene's rate).
Keys are written in bulk (animation.py) into a copy of the Key's (and the armature's) action, replacing only
the driven F-curves, and the copy takes the original's place: the mesh data is never touched, and a failure
puts everything back (transaction.Transaction).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from . import animation, timeline
from .character_mapping import (
    MappingReport,
    automatic_mapping,
    check_character,
    check_head_bone,
    head_bone_of,
    mapping_report,
    store_mapping,
    stored_mapping,
)
from .core.arkit_names import ARKIT_INDEX, ARKIT_NAMES
from .core.errors import InputError
from .core.head_rotation import head_turn_in_blender, in_rest_frame, rotation_channels
from .rig_lookup import rig_root
from .transaction import Transaction

KEY_GROUP = "ARKit"


# ---------------------------------------------------------------------------------------- sources


def scene_rigs(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """The roots of the scene's SHeaP rigs."""
    return [obj for obj in scene.objects if rig_root(obj) is obj]


def rig_for_result(scene: bpy.types.Scene, result: str | os.PathLike) -> bpy.types.Object | None:
    """The scene's SHeaP rig made from `result`, if any."""
    wanted = os.path.normcase(os.path.abspath(result))
    for root in scene_rigs(scene):
        if os.path.normcase(os.path.abspath(root.get("sheap_result", ""))) == wanted:
            return root
    return None


def default_rig(context: bpy.types.Context) -> bpy.types.Object | None:
    """The rig whose result drives the character by default: a selected rig, else the one with the newest result."""
    for obj in [context.active_object, *getattr(context, "selected_objects", ())]:
        root = rig_root(obj)
        if root is not None and os.path.isfile(root.get("sheap_result", "")):
            return root

    def written(root: bpy.types.Object) -> float:
        try:
            return os.stat(root.get("sheap_result", "")).st_mtime
        except OSError:
            return -1.0

    rigs = [root for root in scene_rigs(context.scene) if written(root) >= 0]
    return max(rigs, key=written) if rigs else None


@dataclass
class Source:
    """Where a take comes from: a result file, its FLAME, the scene frame of its first row."""

    result: Path
    flame: str
    frame_start: int
    rig: bpy.types.Object | None = None


def resolve_source(context: bpy.types.Context, result: str = "", flame: str = "", preferred_flame: str = "",
                   frame_start: int | None = None) -> Source:
    """The result (given, else the default rig's), its FLAME (given, the rig's, `preferred_flame`) and first frame."""
    scene = context.scene
    if result:
        path = Path(bpy.path.abspath(result)).resolve()
        rig = rig_for_result(scene, path)
    else:
        rig = default_rig(context)
        if rig is None:
            raise InputError(None, "no result: choose a SHeaP result file (*.sheap.safetensors), or reconstruct or "
                                   "import a head first")
        path = Path(rig["sheap_result"])
    if not flame:
        rig_flame = rig.get("sheap_flame", "") if rig is not None else ""
        flame = rig_flame if rig_flame and os.path.isfile(rig_flame) else preferred_flame
    if not flame:
        raise InputError(None, "choose the FLAME model (generic_model.pkl or its .safetensors)")
    if frame_start is None:
        frame_start = int(rig.get("sheap_frame_start", 1)) if rig is not None else 1
    return Source(path, bpy.path.abspath(flame), frame_start, rig)


# ---------------------------------------------------------------------------------------- takes


@dataclass
class Take:
    """What to key: ARKit weights per scene frame, the head's yaw/pitch/roll, the channels the source has."""

    frames: np.ndarray  # (F,) scene frames, increasing
    weights: np.ndarray  # (F, 52) ARKIT_NAMES order
    head: np.ndarray  # (F, 3) yaw, pitch, roll (radians, core/head_rotation.py)
    name: str  # names the actions it makes
    present: tuple[str, ...] = ARKIT_NAMES
    is_demo: bool = False
    valid: np.ndarray | None = None  # (F,) frames with a face (results only): "no face" markers
    cuts: np.ndarray | None = None  # rows where a shot starts after a hard cut (results only)
    fps: float | None = None  # the clip's rate (results only)
    warnings: list[str] = field(default_factory=list)
    result: object = None  # the Result (results only), for the footage camera
    result_path: Path | None = None
    head_rotation: bool = True  # False: the take has no head rotation (all 0), the head bone is left alone
    notes: list[str] = field(default_factory=list)  # for the report line (how a CSV's timecode was read)


def cache_dir() -> Path:
    """Where the calibrated ARKit solve is kept: the extension's own per-user folder.

    The build is reproducible (core/arkit_solve.py breaks ties the same way everywhere), so a solve built
    here equals the backend command's for the same FLAME file, whichever NumPy Blender brings.
    """
    from .preferences import user_dir

    return user_dir() / "arkit-solve"


def take_from_result(source: Source) -> Take:
    """Solve the result's frames into ARKit weights and the head's rotation (InputError for unusable files)."""
    from .core.arkit_solve import lost_blinks, take_for_result
    from .core.face_choice import cut_rows
    from .core.flame_model import load_flame
    from .core.result_format import read_result

    result = read_result(source.result)
    model = load_flame(source.flame)
    warnings = []
    expected = result.metadata.get("flame_sha256", "")
    if expected and model.source_sha256 and expected != model.source_sha256:
        warnings.append("this FLAME file is not the one the result was made with (SHA-256 differs): "
                        "the expressions may not match the footage")
    blinks = lost_blinks(result, model)
    if blinks:
        warnings.append(blinks)
    take = take_for_result(result, model, cache_dir=cache_dir())
    if len(take.frames) != result.n_frames:
        raise InputError(source.result, f"the solve gave {len(take.frames)} frames for {result.n_frames} rows")
    footage = result.metadata.get("footage", "")
    stem = Path(footage.rstrip("/\\")).stem.replace("%", "") if footage else ""
    return Take(frames=source.frame_start + np.arange(result.n_frames, dtype=np.float64), weights=take.weights,
                head=take.head, name=stem or source.result.name.split(".")[0] or "take",
                is_demo=result.is_demo or bool(model.is_demo), valid=result.valid,
                cuts=cut_rows(source.result, result.metadata, result.frame_index), fps=result.fps, warnings=warnings,
                result=result, result_path=source.result)


def take_from_csv(path: str | os.PathLike, fps: float | None, scene_fps: float, frame_start: float) -> Take:
    """A Live Link Face CSV (timecodes at `fps`, None: the take's own rate) on scene frames from `frame_start`."""
    from .core.live_link_csv import on_scene_frames, read_live_link_csv

    if not (fps is None or fps > 0) or not scene_fps > 0:
        raise InputError(path, f"frame rate {fps if fps is not None else scene_fps} is not usable")
    read = read_live_link_csv(path, fps)
    take = on_scene_frames(read, scene_fps, frame_start)
    warnings = []
    if read.head_rotation_off:
        warnings.append("the take's head rotation is 0 on every row (head rotation off in Live Link Face): "
                        "the head's animation is left as it is")
    return Take(frames=take.frames, weights=take.weights, head=take.head, name=Path(path).stem, present=take.present,
                warnings=warnings, head_rotation=not read.head_rotation_off,
                notes=[f"timecode read at {read.fps:.6g} fps, {len(read.frames)} rows over "
                       f"{read.seconds()[-1] - read.seconds()[0]:.2f} s"])


# ---------------------------------------------------------------------------------------- keying


@dataclass
class Driven:
    """What driving a character made, for the report."""

    obj: bpy.types.Object
    report: MappingReport
    frames: tuple[float, float]
    n_frames: int
    n_keys: int
    head_bone: str = ""
    is_demo: bool = False
    seconds: float = 0.0
    actions: dict[str, bpy.types.Action] = field(default_factory=dict)  # "shape", "head"
    warnings: list[str] = field(default_factory=list)
    camera: bpy.types.Object | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        first, last = self.frames
        text = (f"SHeaP: drove {self.obj.name!r}: {self.n_frames} frames ({first:g}-{last:g}) in "
                f"{self.seconds:.2f} s, {self.report.line()}")
        if self.head_bone:
            text += f"; head rotation on bone {self.head_bone!r}"
        if self.is_demo:
            text += "; demo weights: not a real reconstruction"
        return "; ".join([text, *self.notes])


def _escaped(name: str) -> str:
    return bpy.utils.escape_identifier(name)


def _channelbag(action: bpy.types.Action, slot) -> object:
    """The channelbag of `slot` on the action's first keyframe strip (made when missing), Blender 4.4+."""
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = next((s for s in layer.strips if s.type == "KEYFRAME"), None) or layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def _take_target(id_data: bpy.types.ID, id_type: str, name: str, replaced: set[tuple[str, int]],
                 tx: Transaction) -> tuple[animation.ActionTarget, bpy.types.Action | None]:
    """A copy of the ID's action without the F-curves in `replaced` (a new action when it has none)."""
    data = id_data.animation_data
    old = data.action if data is not None else None
    if old is None:
        target = animation.new_action(name, id_type, slot_name=name)
        tx.add(target.action)
        return target, None
    action = tx.add(old.copy())
    if animation.USE_LEGACY_API:
        target = animation.ActionTarget(action)
    else:
        slot_id = data.action_slot.identifier if data.action_slot is not None else None
        slot = next((s for s in action.slots if s.identifier == slot_id), None)
        if slot is None:
            slot = action.slots.new(id_type=id_type, name=name)
        target = animation.ActionTarget(action, slot, _channelbag(action, slot))
    for fcurve in [fc for fc in target.fcurves if (fc.data_path, fc.array_index) in replaced]:
        target.fcurves.remove(fcurve)
    return target, old


def _head_channels(arm: bpy.types.Object, bone_name: str, head: np.ndarray) -> tuple[list[animation.Channel], str]:
    """The bone's rotation channels (in its rotation mode) turning it as the head turns, in world axes."""
    bone = arm.data.bones[bone_name]
    rest = np.array(arm.matrix_world.to_3x3(), dtype=np.float64) @ np.array(bone.matrix_local.to_3x3(),
                                                                             dtype=np.float64)
    turns = in_rest_frame(head_turn_in_blender(head), rest)
    mode = arm.pose.bones[bone_name].rotation_mode
    prop, values = rotation_channels(turns, mode)
    path = f'pose.bones["{_escaped(bone_name)}"].{prop}'
    return [animation.Channel(path, i, values[:, i], bone_name) for i in range(values.shape[1])], prop


def key_take(context: bpy.types.Context, obj: bpy.types.Object, take: Take, *, set_scene: bool = False,
             camera: bool = False, started: float | None = None) -> Driven:
    """Key `take` on the character (its stored mapping, filled automatically when empty) and its head bone.

    All or nothing: checks and every value are computed before the first datablock changes; a failure
    after that puts back the actions, the mapping and the scene as they were. Never touches the mesh data.
    """
    started = time.perf_counter() if started is None else started
    check_character(obj)
    arm, bone = head_bone_of(obj)
    check_head_bone(arm, bone)
    frames = np.asarray(take.frames, dtype=np.float64)
    if frames.size == 0 or not np.isfinite(frames).all() or np.any(np.diff(frames) <= 0):
        raise InputError(None, "the take's frames are not increasing")
    mapping = stored_mapping(obj)
    warnings = list(take.warnings)
    matched_now = not mapping
    if matched_now:
        mapping = automatic_mapping(obj)
    report = mapping_report(obj, mapping)
    driven = [key for key in report.driven_keys if mapping[key] in take.present]
    if not driven:
        raise InputError(None, f"no shape key of {obj.name!r} is mapped to an ARKit channel"
                               + (" the take has" if take.present != ARKIT_NAMES else "")
                               + ": use Match Automatically or set the mapping by hand")
    absent = sorted({mapping[key] for key in report.driven_keys} - set(take.present))
    if absent:
        warnings.append(f"the take has no values for {', '.join(absent)}: those keys are left as they are")
    shape_channels = [animation.Channel(f'key_blocks["{_escaped(key)}"].value', 0,
                                        take.weights[:, ARKIT_INDEX[mapping[key]]], KEY_GROUP) for key in driven]
    head_channels, head_prop = (_head_channels(arm, bone, take.head) if arm is not None and take.head_rotation
                                else ([], ""))
    camera_plan = None
    if camera:
        if take.result is None:
            raise InputError(None, "the footage camera needs a SHeaP result (a CSV take has no footage)")
        from . import character_camera

        camera_plan = character_camera.plan_camera(obj, take, driven)
        earlier_cameras = character_camera.earlier_cameras(context.scene, obj.name)

    scene, view_layer = context.scene, context.view_layer
    tx = Transaction(scene, view_layer)
    saved_mapping = stored_mapping(obj)
    swaps = []
    n_keys = 0
    made = None
    try:
        keys = obj.data.shape_keys
        jobs = [("shape", keys, "KEY", f"{take.name} ARKit", shape_channels)]
        if head_channels:
            jobs.append(("head", arm, "OBJECT", f"{arm.name} action", head_channels))
        actions = {}
        for role, id_data, id_type, name, channels in jobs:
            replaced = {(c.data_path, c.index) for c in channels}
            target, old = _take_target(id_data, id_type, name, replaced, tx)
            target.action["sheap_character_take"] = role
            n_keys += animation.write_channels(target, frames, channels)
            animation.assign(id_data, target)
            tx.undo_steps.append(lambda id_data=id_data, old=old: _reassign(id_data, old))
            swaps.append((old, target.action))
            actions[role] = target.action
        if matched_now:
            store_mapping(obj, mapping)
            tx.undo_steps.append(lambda: store_mapping(obj, saved_mapping))
        if take.valid is not None:
            start = int(round(frames[0]))
            timeline.remove_invalid_markers(scene)
            tx.markers += timeline.mark_invalid(scene, take.valid, start)
            timeline.remove_cut_markers(scene)
            tx.markers += timeline.mark_cuts(scene, take.cuts if take.cuts is not None else [], start)
        if set_scene and take.fps:
            timeline.set_timing(scene, take.fps, int(round(frames[0])), len(frames))
        if camera_plan is not None:
            made = character_camera.build_footage_camera(context, camera_plan, tx, warnings)
    except BaseException:
        tx.rollback()
        raise

    if made is not None:
        for earlier in earlier_cameras:
            character_camera.remove_camera(earlier)
    # an action the copy replaced and nothing else uses goes; the copy takes its name
    for old, new in swaps:
        if old is not None and old.users == 0:
            name = old.name
            bpy.data.actions.remove(old)
            new.name = name
    if matched_now:
        warnings.insert(0, "the mapping was empty: matched automatically from the key names")
    if take.is_demo:
        warnings.insert(0, "demo weights: the stand-in FLAME or predictor was used, not a real reconstruction")
    return Driven(obj=obj, report=report, frames=(float(frames[0]), float(frames[-1])), n_frames=len(frames),
                  n_keys=n_keys, head_bone=bone if head_channels else "", is_demo=take.is_demo,
                  seconds=time.perf_counter() - started, actions=actions, warnings=warnings, camera=made)


def _reassign(id_data: bpy.types.ID, action: bpy.types.Action | None) -> None:
    """Give the ID its action back (a rollback)."""
    data = id_data.animation_data
    if data is None:
        return
    data.action = action
    if action is not None and getattr(data, "action_slot", False) is None and len(action.slots):
        data.action_slot = action.slots[0]


def drive_with_result(context: bpy.types.Context, obj: bpy.types.Object, source: Source, *, set_scene: bool = True,
                      camera: bool = False) -> Driven:
    """Solve `source`'s result and key it on the character (all or nothing, InputError for bad input)."""
    started = time.perf_counter()
    check_character(obj)
    check_head_bone(*head_bone_of(obj))
    take = take_from_result(source)
    return key_take(context, obj, take, set_scene=set_scene, camera=camera, started=started)


def drive_with_csv(context: bpy.types.Context, obj: bpy.types.Object, path: str | os.PathLike, fps: float | None,
                   frame_start: float) -> Driven:
    """Key a Live Link Face CSV on the character at the scene's rate (all or nothing; `fps` None: the take's)."""
    started = time.perf_counter()
    check_character(obj)
    check_head_bone(*head_bone_of(obj))
    render = context.scene.render
    take = take_from_csv(path, fps, render.fps / render.fps_base, frame_start)
    driven = key_take(context, obj, take, started=started)
    first, last = driven.frames
    driven.n_frames = int(np.floor(last) - np.ceil(first)) + 1  # the scene frames it spans (rows add keys between)
    driven.notes = take.notes
    return driven
