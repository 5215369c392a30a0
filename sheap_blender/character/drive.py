"""Drive a user's character: the ARKit-52 shape keys of every mesh of it, and its neck, head, eye and jaw bones,
keyed from a SHeaP result or a Live Link Face take.

The character (an armature and its meshes, character_rig.py) keeps its settings in the .blend: each mesh its
mapping shape key -> ARKit channel, the rig its bones and an animator's controls (mapping.py).
`drive_with_result` solves the take (core/arkit_solve.take_for_result, the function `python -m backend arkit`
uses); row i goes on scene frame `frame_start + i` when the scene runs at the clip's fps (or is set to it, as
the FLAME rig's importer does), else the take is retimed to the scene's fps at the clip's speed.
`drive_with_csv` keys a Live Link Face CSV by timecode (its rate read from the take, every row at its own time at
the scene's rate). Every mesh takes the same channel values. Keys are written in bulk (rig/animation.py) into a copy
of each Key's (and the armature's) action, replacing only the driven F-curves, and the copy takes the original's
place: the mesh data is never touched, and a failure puts everything back (transaction.Transaction).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import bpy
import numpy as np

from ..core.arkit.names import ARKIT_INDEX, ARKIT_NAMES
from ..core.character.head_rotation import fraction_of_turn, in_rest_frame, rotation_channels, take_turn_in_world
from ..core.character.take_controls import Controls, retime, sample_rows, sample_valid
from ..core.errors import InputError
from ..rig import animation, timeline
from ..rig.lookup import rig_root
from ..rig.transaction import Transaction
from .character_rig import Rig, eye_meshes, facing_axes, resolve, world_rest
from .mapping import MappingReport, automatic_mapping, mapping_report, store_mapping, stored_mapping

KEY_GROUP = "ARKit"
GAZE = frozenset(name for name in ARKIT_NAMES if name.startswith("eyeLook"))  # eye bones turn the eyes instead
JAW = ("jawOpen", "jawLeft", "jawRight")


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
    """What to key: ARKit weights per scene frame, the head's and eyes' yaw/pitch/roll, the channels it has.

    Rotations are in Live Link Face's signs (core/character/head_rotation.py): positive yaw toward the
    performer's right.
    """

    frames: np.ndarray  # (F,) scene frames, increasing
    weights: np.ndarray  # (F, 52) ARKIT_NAMES order
    head: np.ndarray  # (F, 3) yaw, pitch, roll (radians)
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
    left_eye: np.ndarray | None = None  # (F, 3) yaw, pitch, roll relative to the head (None: not in the take)
    right_eye: np.ndarray | None = None
    retimed: bool = False

    def rotations(self) -> np.ndarray:
        """(F, 9) head, left eye, right eye (zeros where the take has none)."""
        zeros = np.zeros((len(self.frames), 3))
        return np.concatenate([self.head, zeros if self.left_eye is None else self.left_eye,
                               zeros if self.right_eye is None else self.right_eye], axis=1)


def cache_dir() -> Path:
    """Where the calibrated ARKit solve is kept: the extension's own per-user folder.

    The build is reproducible (core/arkit/solve.py breaks ties the same way everywhere), so a solve built
    here equals the backend command's for the same FLAME file, whichever NumPy Blender brings.
    """
    from ..settings.preferences import user_dir

    return user_dir() / "arkit-solve"


def take_from_result(source: Source) -> Take:
    """Solve the result's frames into ARKit weights, the head's and eyes' rotations (InputError for unusable files)."""
    from ..core.arkit.solve import lost_blinks, take_for_result
    from ..core.flame.model import load_flame
    from ..core.result.face_choice import cut_rows
    from ..core.result.result_format import read_result

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
                result=result, result_path=source.result, left_eye=take.left_eye,
                right_eye=take.right_eye)


def take_from_csv(path: str | os.PathLike, fps: float | None, scene_fps: float, frame_start: float) -> Take:
    """A Live Link Face CSV (timecodes at `fps`, None: the take's own rate) on scene frames from `frame_start`."""
    from ..core.arkit.live_link_csv import on_scene_frames, read_live_link_csv

    if not (fps is None or fps > 0) or not scene_fps > 0:
        raise InputError(path, f"frame rate {fps if fps is not None else scene_fps} is not usable")
    read = read_live_link_csv(path, fps)
    take = on_scene_frames(read, scene_fps, frame_start)
    warnings = []
    if read.head_rotation_off:
        warnings.append("the take's head rotation is 0 on every row (head rotation off in Live Link Face): "
                        "the head's animation is left as it is")
    return Take(frames=take.frames, weights=take.weights, head=take.head, name=Path(path).stem, present=take.present,
                left_eye=take.left_eye, right_eye=take.right_eye, warnings=warnings,
                head_rotation=not read.head_rotation_off,
                notes=[f"timecode read at {read.fps:.6g} fps, {len(read.frames)} rows over "
                       f"{read.seconds()[-1] - read.seconds()[0]:.2f} s"])


def retimed(take: Take, scene_fps: float) -> Take:
    """A result's take on whole scene frames at `scene_fps`, played at the clip's speed (as is when equal)."""
    if take.fps is None or abs(take.fps - scene_fps) < 1e-6 * scene_fps:
        return take
    offsets, rows = retime(len(take.frames), take.fps, scene_fps)
    rotations = sample_rows(take.rotations(), rows)
    cuts = None if take.cuts is None else np.unique(np.searchsorted(rows, np.asarray(take.cuts), side="left"))
    return replace(take, frames=take.frames[0] + offsets, weights=sample_rows(take.weights, rows),
                   head=rotations[:, 0:3], left_eye=rotations[:, 3:6], right_eye=rotations[:, 6:9],
                   valid=None if take.valid is None else sample_valid(take.valid, rows), cuts=cuts, retimed=True)


# ---------------------------------------------------------------------------------------- controls


def controls_of(settings, frames: np.ndarray) -> tuple[Controls, Controls]:
    """The character's controls for the 52 weights (0..1) and the 9 rotations, on the take's scene frames."""
    weights = Controls.none(len(ARKIT_NAMES), 0.0, 1.0)
    rotations = Controls.none(9)
    for item in settings.channels:
        index = ARKIT_INDEX.get(item.name)
        if index is not None:
            weights.gain[index], weights.offset[index], weights.smoothing[index] = (item.gain, item.offset,
                                                                                    item.smoothing)
    rotations.smoothing[:] = settings.rotation_smoothing
    neutral = None
    if settings.use_neutral:
        first = int(np.searchsorted(frames, settings.neutral_start - 1e-6))
        last = int(np.searchsorted(frames, settings.neutral_end + 1e-6)) - 1
        if last < first:
            raise InputError(None, f"the neutral pose's frames {settings.neutral_start}-{settings.neutral_end} "
                                   f"are outside the take ({frames[0]:g}-{frames[-1]:g})")
        neutral = (first, last)
    for controls in (weights, rotations):
        controls.gap_policy, controls.neutral_rows = settings.gap_policy, neutral
    return weights, rotations


def controlled(take: Take, settings) -> Take:
    """The take with the character's controls applied (neutral, gaps, gain, offset, smoothing)."""
    weights, rotations = controls_of(settings, take.frames)
    try:
        values = weights.apply(take.weights, take.valid)
        turned = rotations.apply(take.rotations(), take.valid)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    return replace(take, weights=values, head=turned[:, 0:3], left_eye=turned[:, 3:6], right_eye=turned[:, 6:9])


# ---------------------------------------------------------------------------------------- keying


@dataclass
class Driven:
    """What driving a character made, for the report."""

    name: str
    reports: dict[str, MappingReport]  # mesh name -> its mapping's report
    frames: tuple[float, float]
    n_frames: int
    n_keys: int
    bones: dict[str, str] = field(default_factory=dict)  # role -> bone keyed
    is_demo: bool = False
    seconds: float = 0.0
    actions: dict[str, bpy.types.Action] = field(default_factory=dict)  # "shape:<mesh>", "bones"
    warnings: list[str] = field(default_factory=list)
    camera: bpy.types.Object | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def head_bone(self) -> str:
        return self.bones.get("head", "")

    def summary(self) -> str:
        first, last = self.frames
        meshes = "; ".join(f"{mesh}: {report.line()}" for mesh, report in self.reports.items())
        text = (f"SHeaP: drove {self.name!r}: {self.n_frames} frames ({first:g}-{last:g}) in {self.seconds:.2f} s, "
                f"{len(self.reports)} mesh{'es' if len(self.reports) != 1 else ''} ({meshes})")
        if self.bones:
            text += "; bones " + ", ".join(f"{role.replace('_', ' ')} {bone!r}" for role, bone in self.bones.items())
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


def bone_turns(rig: Rig, take: Take) -> dict[str, np.ndarray]:
    """Role -> (F, 3, 3) the bone's turn in world axes (neck and head share the head's)."""
    axes = facing_axes(rig)
    settings = rig.owner.sheap_character
    turns = {}
    # a take recorded with head rotation off leaves the head's animation alone (take_from_csv says so)
    if (rig.bone("head") or rig.bone("neck")) and take.head_rotation:
        head = take_turn_in_world(take.head, axes)
        share = settings.neck_share if rig.bone("neck") else 0.0
        if share > 0:
            turns["neck"] = fraction_of_turn(head, share)
        if rig.bone("head"):
            turns["head"] = fraction_of_turn(head, 1.0 - share) if share > 0 else head
    for role, angles in (("left_eye", take.left_eye), ("right_eye", take.right_eye)):
        if rig.bone(role) and angles is not None:
            turns[role] = take_turn_in_world(angles, axes)
    if rig.bone("jaw"):
        w = take.weights
        yaw = (w[:, ARKIT_INDEX["jawRight"]] - w[:, ARKIT_INDEX["jawLeft"]]) * settings.jaw_side_angle
        pitch = w[:, ARKIT_INDEX["jawOpen"]] * settings.jaw_open_angle  # positive pitch: down, the mouth opens
        turns["jaw"] = take_turn_in_world(np.column_stack([yaw, pitch, np.zeros_like(yaw)]), axes)
    return turns


def bone_channels(rig: Rig, turns: dict[str, np.ndarray]) -> list[animation.Channel]:
    """Each bone's rotation channels (in its rotation mode, turned in its rest frame)."""
    channels = []
    for role, turn in turns.items():
        bone = rig.bone(role)
        local = in_rest_frame(turn, world_rest(rig.armature, bone))
        prop, values = rotation_channels(local, rig.armature.pose.bones[bone].rotation_mode)
        path = f'pose.bones["{_escaped(bone)}"].{prop}'
        channels += [animation.Channel(path, i, values[:, i], bone) for i in range(values.shape[1])]
    return channels


@dataclass
class _MeshPlan:
    obj: bpy.types.Object
    mapping: dict[str, str | None]
    matched_now: bool
    report: MappingReport
    keys: list[str]
    channels: list[animation.Channel]


def _mesh_plans(rig: Rig, take: Take, eyes_by_bones: bool) -> tuple[list[_MeshPlan], list[str]]:
    """Per mesh: its mapping (stored, else matched from the names) and the shape key channels to key."""
    plans, warnings = [], []
    eye_mesh_names = {mesh.name for mesh in eye_meshes(rig)} if eyes_by_bones else set()
    for obj in rig.meshes:
        mapping = stored_mapping(obj)
        matched_now = not mapping
        if matched_now:
            mapping = automatic_mapping(obj)
        report = mapping_report(obj, mapping)
        driven = [key for key in report.driven_keys if mapping[key] in take.present
                  and not (obj.name in eye_mesh_names and mapping[key] in GAZE)]
        channels = [animation.Channel(f'key_blocks["{_escaped(key)}"].value', 0,
                                      take.weights[:, ARKIT_INDEX[mapping[key]]], KEY_GROUP) for key in driven]
        plans.append(_MeshPlan(obj, mapping, matched_now, report, driven, channels))
    if eye_mesh_names:
        warnings.append(f"the eye bones turn the eyes: eyeLook keys of {', '.join(sorted(eye_mesh_names))} are "
                        "not keyed")
    if not any(plan.channels for plan in plans):
        raise InputError(None, f"no shape key of {rig.name!r} is mapped to an ARKit channel"
                               + (" the take has" if take.present != ARKIT_NAMES else "")
                               + ": use Match Automatically or set the mapping by hand")
    absent = sorted({plan.mapping[key] for plan in plans for key in plan.report.driven_keys} - set(take.present))
    if absent:
        warnings.append(f"the take has no values for {', '.join(absent)}: those keys are left as they are")
    return plans, warnings


def key_take(context: bpy.types.Context, target, take: Take, *, set_scene: bool = False, camera: bool = False,
             started: float | None = None) -> Driven:
    """Key `take` on the character `target` (armature, mesh or collection: every mesh of it, and its bones).

    All or nothing: checks and every value are computed before the first datablock changes; a failure
    after that puts back the actions, the mappings and the scene as they were. Never touches the mesh data.
    """
    started = time.perf_counter() if started is None else started
    rig = target if isinstance(target, Rig) else resolve(target)
    frames = np.asarray(take.frames, dtype=np.float64)
    if frames.size == 0 or not np.isfinite(frames).all() or np.any(np.diff(frames) <= 0):
        raise InputError(None, "the take's frames are not increasing")
    settings = rig.owner.sheap_character
    render = context.scene.render
    if not set_scene:
        take = retimed(take, render.fps / render.fps_base)
        frames = take.frames
    take = controlled(take, settings)
    warnings = list(take.warnings)
    turns = bone_turns(rig, take) if rig.armature is not None else {}
    plans, mesh_warnings = _mesh_plans(rig, take, bool({"left_eye", "right_eye"} & set(turns)))
    warnings += mesh_warnings
    head_channels = bone_channels(rig, turns)
    camera_plan = None
    if camera:
        if take.result is None:
            raise InputError(None, "the footage camera needs a SHeaP result (a CSV take has no footage)")
        if take.retimed:
            raise InputError(None, "the footage camera needs the scene at the clip's fps: turn on Set Scene Timing")
        from . import camera as character_camera

        face = max(plans, key=lambda plan: len(plan.obj.data.vertices))  # the head, not an eye or the teeth
        camera_plan = character_camera.plan_camera(face.obj, take, face.keys)
        earlier_cameras = character_camera.earlier_cameras(context.scene, face.obj.name)

    scene, view_layer = context.scene, context.view_layer
    tx = Transaction(scene, view_layer)
    swaps, actions, n_keys, made = [], {}, 0, None
    try:
        several = len(plans) > 1
        jobs = [(f"shape:{plan.obj.name}", plan.obj.data.shape_keys, "KEY",
                 f"{take.name} ARKit" + (f" {plan.obj.name}" if several else ""), plan.channels)
                for plan in plans if plan.channels]
        if head_channels:
            jobs.append(("bones", rig.armature, "OBJECT", f"{rig.armature.name} action", head_channels))
        for role, id_data, id_type, name, channels in jobs:
            replaced = {(c.data_path, c.index) for c in channels}
            target_action, old = _take_target(id_data, id_type, name, replaced, tx)
            target_action.action["sheap_character_take"] = role.split(":")[0]
            n_keys += animation.write_channels(target_action, frames, channels)
            animation.assign(id_data, target_action)
            tx.undo_steps.append(lambda id_data=id_data, old=old: _reassign(id_data, old))
            swaps.append((old, target_action.action))
            actions[role] = target_action.action
        for plan in plans:
            if plan.matched_now:
                store_mapping(plan.obj, plan.mapping)
                tx.undo_steps.append(lambda obj=plan.obj: store_mapping(obj, {}))
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
    matched = [plan.obj.name for plan in plans if plan.matched_now]
    if matched:
        warnings.insert(0, f"the mapping of {', '.join(matched)} was empty: matched automatically from the key names")
    if take.retimed:
        warnings.append(f"the clip's {take.fps:g} fps retimed to the scene's {render.fps / render.fps_base:g} fps "
                        "(Set Scene Timing keeps the clip's frames)")
    if take.is_demo:
        warnings.insert(0, "demo weights: the stand-in FLAME or predictor was used, not a real reconstruction")
    return Driven(name=rig.name, reports={plan.obj.name: plan.report for plan in plans},
                  frames=(float(frames[0]), float(frames[-1])), n_frames=len(frames), n_keys=n_keys,
                  bones={role: rig.bone(role) for role in turns}, is_demo=take.is_demo,
                  seconds=time.perf_counter() - started, actions=actions, warnings=warnings, camera=made)


def _reassign(id_data: bpy.types.ID, action: bpy.types.Action | None) -> None:
    """Give the ID its action back (a rollback)."""
    data = id_data.animation_data
    if data is None:
        return
    data.action = action
    if action is not None and getattr(data, "action_slot", False) is None and len(action.slots):
        data.action_slot = action.slots[0]


def drive_with_result(context: bpy.types.Context, target, source: Source, *, set_scene: bool = False,
                      camera: bool = False) -> Driven:
    """Solve `source`'s result and key it on the character (all or nothing, InputError for bad input)."""
    started = time.perf_counter()
    rig = resolve(target)
    take = take_from_result(source)
    return key_take(context, rig, take, set_scene=set_scene, camera=camera, started=started)


def drive_with_csv(context: bpy.types.Context, target, path: str | os.PathLike, fps: float | None,
                   frame_start: float) -> Driven:
    """Key a Live Link Face CSV on the character at the scene's rate (all or nothing; `fps` None: the take's)."""
    started = time.perf_counter()
    rig = resolve(target)
    render = context.scene.render
    take = take_from_csv(path, fps, render.fps / render.fps_base, frame_start)
    driven = key_take(context, rig, take, started=started)
    first, last = driven.frames
    driven.n_frames = int(np.floor(last) - np.ceil(first)) + 1  # the scene frames it spans (rows add keys between)
    driven.notes = take.notes
    return driven
