"""Import a SHeaP result: FLAME rig + baked animation + footage camera, all or nothing.

`import_result(result, flame)` reads and checks both files and computes every channel (NumPy)
before it creates a single datablock; if anything fails after that, everything it created is
removed and the scene settings it changed are put back, so a failed import leaves the scene as
it was. Re-importing onto a rig this extension built (the same result file, or the rig passed in
/ selected) keeps the objects and replaces the animation with new actions.

`import_result` reads as the import does: read, check, plan (all the arithmetic), build the rig,
shape keys and preview, the footage camera, key, set up the scene, label the rig; then clean up what
the rig used before. The checks are in import_checks.py, the F-curve channels in rig/channels.py,
finding a rig in rig/lookup.py, the rollback (`Transaction` and its undo steps) in rig/transaction.py.

Layout (docs/blender-rig.md):

    <collection "SHeaP <clip>">
      <clip> root      empty, rotated +90 deg about X: its children live in FLAME axes
        <clip> rig     armature; location = cam_trans; bones root, neck, jaw, eye_l, eye_r
          <clip> head  mesh, shape keys, Armature modifier
          <clip> Gaussians  point cloud bound to the head (when the result has Gaussians)
        <clip> camera  SHeaP's camera at FLAME (0, 0, 1); per-frame lens and shift = the crop
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bpy
import numpy as np

from ..core.camera import blender_camera
from ..core.errors import InputError
from ..core.flame.model import FlameModel, load_flame
from ..core.gaussians import GaussianBinding, binding_from_tensors, pose_gaussians
from ..core.result.face_choice import cut_rows, followed_face, other_person_warning
from ..core.result.result_format import Result, read_result
from ..core.result.rig_math import RigAnimation, eyelid_key_names, key_scales, rig_animation, slider_range
from ..preview import gaussians as gaussian_preview
from ..preview import render_setup
from ..rig import animation, build, scene_camera, timeline
from ..rig.channels import camera_channels, head_channels, shape_channels
from ..rig.lookup import find_rig_for, rig_parts, rig_root, selected_rig
from ..rig.scene_camera import FootagePlan
from ..rig.transaction import Transaction, reassign_action, remember_geometry, remember_properties, restore_background
from .import_checks import check_pair, check_rig, rig_names

RIG_VERSION = 1
ROLE = build.ROLE
ROOT_PROPERTIES = ("sheap_result", "sheap_flame", "sheap_flame_sha256", "sheap_footage", "sheap_frame_start",
                   "sheap_frames", "sheap_followed_face", "sheap_demo", "sheap_person", "sheap_people")


@dataclass
class ImportedRig:
    """What an import made or reused, and what the user should be told."""

    collection: bpy.types.Collection
    root: bpy.types.Object
    armature: bpy.types.Object
    head: bpy.types.Object
    camera: bpy.types.Object
    actions: dict[str, bpy.types.Action]  # "head", "shape", "camera"
    frame_start: int
    n_frames: int
    n_keys: int
    is_demo: bool
    reused: bool
    invalid_frames: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    gaussians: bpy.types.Object | None = None  # the Gaussian preview, when the result has Gaussians
    cuts: int = 0  # hard cuts in the footage (a marker "cut" on each)
    followed_face: dict | None = None  # the result's `followed_face` (rule, point, frame, box), when it says

    def summary(self) -> str:
        what = "re-animated" if self.reused else "imported"
        text = (f"SHeaP: {what} {self.n_frames} frames ({self.frame_start}-{self.frame_start + self.n_frames - 1}) "
                f"in {self.seconds:.2f} s")
        if self.invalid_frames:
            text += f", {self.invalid_frames} without a face (markers 'no face')"
        if self.cuts:
            text += f", {self.cuts} hard cuts (markers 'cut')"
        if self.gaussians is not None:
            text += f", {self.gaussians.get('sheap_gaussian_count', 0)} Gaussians"
        if self.is_demo:
            text += "; demo weights: not a real reconstruction"
        return text


# ---------------------------------------------------------------------------------------- import


def import_result(
    context: bpy.types.Context | None,
    result_path: str | os.PathLike,
    flame_path: str | os.PathLike,
    *,
    onto_selected: bool = False,
    target: str | None = None,
    rig_object: bpy.types.Object | None = None,
    frame_start: int = 1,
    set_scene: bool = True,
    gaussians: bool = True,
    render_over_footage: bool = True,
    transaction: Transaction | None = None,
    person: int | None = None,
    people_file: str | os.PathLike | None = None,
    markers: bool = True,
) -> ImportedRig:
    """Build (or re-animate) the FLAME rig for a result file in the context's scene.

    target: "AUTO" (default) re-animates the rig already made from this result file, else builds a
    new one; "NEW" always builds one; "SELECTED" (or onto_selected=True) re-animates the rig of
    `rig_object` or of the active object. set_scene: also set the scene camera, render size, fps
    and frame range from the clip. gaussians: build the Gaussian preview when the result has
    Gaussians (replacing the rig's earlier one; it also ticks the scene's "Gaussian preview"
    checkbox, which shows every preview); off: the result's Gaussians are not read and the rig's
    preview, if any, is left as it is. Timeline markers "no face" and "cut" (the result's `cuts`) are
    re-made. render_over_footage (with set_scene): a new rig renders as it looks: the footage
    composited behind the render, key/fill/rim lights, a world when the scene has none
    (preview/render_setup.py); a re-animated rig's scene keeps its choice (when on, it follows the new
    footage). A new head always gets the neutral material "SHeaP head". Raises InputError (one
    line, the scene unchanged) for unusable input, malformed `cuts` included. `context` None means
    bpy.context.

    transaction: the caller's (people_import.py: several rigs, all or nothing): what this import makes
    and changes is recorded there, a failure is left to the caller's rollback, and the clean-up of what
    the rig used before (old actions, footage, previews) waits for its `commit()`. person (and
    people_file): the rig follows that person of a people file: named "<clip> person N", the number
    kept in the root's `sheap_person`. markers off: the "no face" / "cut" markers are left to the caller.
    """
    started = time.perf_counter()
    context = context or bpy.context
    source = _read(result_path, flame_path, gaussians)
    root, parts = _rig_to_reanimate(context, target or ("SELECTED" if onto_selected else "AUTO"), rig_object, source)
    plan = _plan(source, frame_start, person)  # everything computed before any datablock is touched

    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    tx = transaction or Transaction(context.scene, context.view_layer)
    try:
        rig = (_reuse_rig(tx, context, root, parts, plan) if root is not None
               else _build_rig(tx, context, source.model, plan, lights=render_over_footage and set_scene))
        preview, old_previews = _shape_keys_and_preview(tx, rig, source, plan, gaussians)
        footage, previous = _footage_camera(tx, rig, source, plan, frame_start)
        actions, old_actions, n_keys = _key(tx, rig, plan)
        _set_up_scene(tx, context.scene, rig, source, frame_start, markers=markers, set_scene=set_scene,
                      render_over_footage=render_over_footage)
        _label_rig(tx, rig, source, plan, frame_start, person, people_file)
    except BaseException:
        if transaction is None:
            tx.rollback()
        raise

    clean_up = partial(_clean_up, context.scene, context.view_layer, rig, plan, actions, old_actions, footage,
                       previous, preview, old_previews)
    if transaction is None:
        clean_up()
    else:
        transaction.on_commit.append(clean_up)
    warnings = source.warnings
    if plan.is_demo:
        warnings.insert(0, "demo weights: the stand-in predictor or FLAME was used, not a real reconstruction")
    result = source.result
    imported = ImportedRig(rig.collection, rig.root, rig.arm, rig.head, rig.camera, actions, frame_start,
                           result.n_frames, n_keys, plan.is_demo, rig.reused, int((~result.valid).sum()),
                           warnings=warnings, gaussians=preview, cuts=len(source.cuts), followed_face=source.face)
    imported.seconds = time.perf_counter() - started
    return imported


# ------------------------------------------------------------------------------ read and check


@dataclass
class _Source:
    """The result and FLAME as read and checked, and the warnings the import will report."""

    path: Path  # the result file, resolved
    flame_path: str | os.PathLike
    result: Result
    model: FlameModel
    warnings: list[str]
    cuts: np.ndarray
    face: dict | None
    binding: GaussianBinding | None  # when Gaussians are imported and the result has them


def _read(result_path: str | os.PathLike, flame_path: str | os.PathLike, gaussians: bool) -> _Source:
    """Read the result and FLAME and check them together (InputError, the scene untouched)."""
    result_path = Path(result_path).resolve()
    result = read_result(result_path)
    model = load_flame(flame_path)
    warnings = check_pair(result_path, result, model)
    cuts = cut_rows(result_path, result.metadata, result.frame_index)
    face = followed_face(result.metadata)
    if face is None and "followed_face" in result.metadata:
        warnings.append("the result's followed_face is not a JSON object: not kept")
    other_person = other_person_warning(result.extra, result.valid, result.frame_index)
    if other_person:
        warnings.append(other_person)
    binding = binding_from_tensors(result_path, result.extra, len(model.faces)) if gaussians else None
    return _Source(result_path, flame_path, result, model, warnings, cuts, face, binding)


def _rig_to_reanimate(context: bpy.types.Context, target: str, rig_object: bpy.types.Object | None,
                      source: _Source) -> tuple[bpy.types.Object | None, dict]:
    """The rig the import re-animates and its parts (checked against the FLAME model), or (None, {}) for a new one."""
    root = None
    if target == "SELECTED":
        root = selected_rig(context, rig_object)
        if root is None:
            raise InputError(None, "no SHeaP rig is selected: select the rig (or any part of it) or import as new")
    elif target == "AUTO":
        root = rig_root(rig_object) if rig_object is not None else find_rig_for(context.scene, os.fspath(source.path))
    elif target != "NEW":
        raise ValueError(f"unknown target {target!r}")
    parts = rig_parts(root) if root is not None else {}
    if root is not None:
        check_rig(root, parts, source.model, source.flame_path)
    return root, parts


# ------------------------------------------------------------------------------------ plan


@dataclass
class _Plan:
    """Every number the import writes, computed before the scene is touched."""

    anim: RigAnimation
    camera_settings: dict[str, np.ndarray]
    key_names: list[str]
    key_values: np.ndarray
    key_scales: np.ndarray
    slider_lows: np.ndarray
    slider_highs: np.ndarray
    identity_vertices: np.ndarray
    rest_centres: np.ndarray | None
    footage: FootagePlan
    is_demo: bool
    stem: str
    collection_name: str
    frames: np.ndarray  # scene frame of every result row


def _plan(source: _Source, frame_start: int, person: int | None) -> _Plan:
    """The rig's animation, camera, shape-key ranges, footage and names; warnings go to the source's."""
    result, model = source.result, source.model
    anim = rig_animation(model, result)
    source.warnings.extend(anim.warnings)
    camera_settings = blender_camera(result.params["crop_box"], result.width, result.height, result.fov_deg)
    key_names, key_values = anim.shape_key_values(eyelid_key_names(model))
    scales = key_scales(key_values)
    lows, highs = slider_range(key_values / scales)
    if np.any(scales > 1):
        source.warnings.append(f"{int(np.sum(scales > 1))} shape keys exceed Blender's +-10 slider range: "
                               "their geometry is scaled to keep every frame exact")
    identity_vertices = model.v_template + model.shapedirs[:, :, :300] @ anim.identity
    binding = source.binding
    rest_centres = pose_gaussians(identity_vertices, model.faces, binding)[0] if binding is not None else None
    footage = scene_camera.plan_footage(result.metadata.get("footage", ""), source.path, result.frame_index)
    if footage.warning:
        source.warnings.append(footage.warning)
    is_demo = result.is_demo or bool(getattr(model, "is_demo", False))
    stem, collection_name = rig_names(result, source.path, is_demo)
    if person is not None:
        stem = f"{stem} person {int(person)}"
        collection_name = f"SHeaP {stem}" + (" (demo)" if is_demo else "")
    frames = frame_start + np.arange(result.n_frames, dtype=np.float64)
    return _Plan(anim, camera_settings, key_names, key_values, scales, lows, highs, identity_vertices, rest_centres,
                 footage, is_demo, stem, collection_name, frames)


# ---------------------------------------------------------------------------------- build


@dataclass
class _Rig:
    """The rig's objects, new or re-animated."""

    collection: bpy.types.Collection
    root: bpy.types.Object
    arm: bpy.types.Object
    head: bpy.types.Object
    camera: bpy.types.Object
    joint_heads: np.ndarray  # rest joints as set on the armature
    reused: bool


def _build_rig(tx: Transaction, context: bpy.types.Context, model: FlameModel, plan: _Plan, *,
               lights: bool) -> _Rig:
    """A new rig: collection, root, armature, head mesh (skinned, neutral material), camera; lights when asked."""
    scene, stem = context.scene, plan.stem
    collection = tx.add(bpy.data.collections.new(plan.collection_name))
    scene.collection.children.link(collection)
    root = tx.add(bpy.data.objects.new(f"{stem} root", None))
    root.empty_display_type = "PLAIN_AXES"
    root.empty_display_size = 0.1
    root.rotation_mode = "XYZ"
    root.rotation_euler = (math.pi / 2, 0.0, 0.0)  # FLAME (x, y, z) -> Blender (x, -z, y)
    root[ROLE] = "root"
    root["sheap_rig"] = RIG_VERSION
    collection.objects.link(root)
    arm = tx.adopt(build.build_armature(f"{stem} rig"), root, collection)
    head = tx.adopt(build.build_mesh(f"{stem} head", model), arm, collection)
    camera = tx.adopt(scene_camera.build_camera(f"{stem} camera"), root, collection)
    joint_heads = build.set_rest_joints(arm, plan.anim.rest_joints, context.view_layer)
    build.add_vertex_groups(head, model.weights)
    build.add_armature_modifier(head, arm)
    head.data.materials.append(render_setup.head_material(tx.add))
    if lights:
        render_setup.build_lights(stem, root, collection, tx.add)
        render_setup.ensure_world(scene, tx.add)
    return _Rig(collection, root, arm, head, camera, joint_heads, reused=False)


def _reuse_rig(tx: Transaction, context: bpy.types.Context, root: bpy.types.Object, parts: dict,
               plan: _Plan) -> _Rig:
    """The rig made earlier, its rest pose set anew (and put back on failure)."""
    view_layer = context.view_layer
    collection = root.users_collection[0] if root.users_collection else context.scene.collection
    arm, head, camera = parts["armature"], parts["head"], parts["camera"]
    remember_geometry(tx, arm, head, view_layer)
    joint_heads = build.set_rest_joints(arm, plan.anim.rest_joints, view_layer)
    return _Rig(collection, root, arm, head, camera, joint_heads, reused=True)


def _shape_keys_and_preview(tx: Transaction, rig: _Rig, source: _Source, plan: _Plan,
                            gaussians: bool) -> tuple[bpy.types.Object | None, list[bpy.types.Object]]:
    """The head's shape keys; the Gaussian preview when the result has one. Returns it and the rig's earlier ones."""
    model = source.model
    build.write_shape_keys(rig.head, model, plan.identity_vertices,
                           dict(zip(plan.key_names, plan.key_scales.tolist())),
                           {n: (lo, hi) for n, lo, hi in zip(plan.key_names, plan.slider_lows.tolist(),
                                                            plan.slider_highs.tolist())})
    # the rig's earlier preview goes once the import has succeeded (a failure keeps it)
    old_previews = gaussian_preview.rig_previews(rig.root) if gaussians else []
    preview = None
    if source.binding is not None:
        preview = gaussian_preview.build_preview(f"{plan.stem} Gaussians", rig.head, model.faces, source.binding,
                                                 plan.rest_centres, rig.collection, add=tx.add)
    return preview, old_previews


# ---------------------------------------------------------------------------- camera and keys


def _footage_camera(tx: Transaction, rig: _Rig, source: _Source, plan: _Plan,
                    frame_start: int) -> tuple[bpy.types.ID | None, list]:
    """The footage behind the camera (a file Blender cannot read is a warning, not a failed import).

    Returns the footage datablock (or None) and the camera's earlier backgrounds."""
    result = source.result
    try:
        footage = scene_camera.load_background(plan.footage)
    except RuntimeError as exc:
        footage = None
        source.warnings.append(f"cannot show the footage {plan.footage.path}: {str(exc).strip()}")
    if footage is not None:
        tx.add(footage)
        footage["sheap_footage"] = True
        source.warnings.extend(scene_camera.size_warnings(footage, result.width, result.height))
    camera_data = rig.camera.data
    previous = scene_camera.set_background(camera_data, footage, plan.footage, frame_start, result.n_frames)
    tx.undo_steps.append(lambda: restore_background(camera_data, previous))
    return footage, previous


def _key(tx: Transaction, rig: _Rig, plan: _Plan) -> tuple[dict, dict, int]:
    """A new action each for head motion, expressions and the camera, keyed on every frame.

    Returns the actions by role, the actions they replaced, and the number of keys written."""
    actions, old_actions, n_keys = {}, {}, 0
    for role, id_data, id_type, channels in (
        ("head", rig.arm, "OBJECT", head_channels(plan.anim, rig.joint_heads)),
        ("shape", rig.head.data.shape_keys, "KEY", shape_channels(plan.key_names, plan.key_values, plan.key_scales)),
        ("camera", rig.camera.data, "CAMERA", camera_channels(plan.camera_settings)),
    ):
        label = {"head": "head motion", "shape": "expressions", "camera": "camera"}[role]
        target = animation.new_action(f"{plan.stem} {label}", id_type, slot_name=f"{plan.stem} {role}")
        tx.add(target.action)
        target.action["sheap_action"] = role
        n_keys += animation.write_channels(target, plan.frames, channels)
        old_actions[role] = id_data.animation_data.action if id_data.animation_data else None
        animation.assign(id_data, target)
        tx.undo_steps.append(lambda id_data=id_data, action=old_actions[role]: reassign_action(id_data, action))
        actions[role] = target.action
    return actions, old_actions, n_keys


# ------------------------------------------------------------------------- scene and labels


def _set_up_scene(tx: Transaction, scene: bpy.types.Scene, rig: _Rig, source: _Source, frame_start: int, *,
                  markers: bool, set_scene: bool, render_over_footage: bool) -> None:
    """Timeline markers; with set_scene, the clip's timing and size, the scene camera and rendering over footage."""
    result = source.result
    if markers:
        timeline.remove_invalid_markers(scene)
        tx.markers += timeline.mark_invalid(scene, result.valid, frame_start)
        timeline.remove_cut_markers(scene)
        tx.markers += timeline.mark_cuts(scene, source.cuts, frame_start)
    if not set_scene:
        return
    timeline.set_timing(scene, result.fps, frame_start, result.n_frames)
    scene_camera.set_render_size(scene, result.width, result.height)
    scene.camera = rig.camera
    was_on = render_setup.is_enabled(scene)
    if was_on or (render_over_footage and not rig.reused):
        # first in the list, so a rollback runs it last: after the camera's background is back
        tx.undo_steps.insert(0, lambda: render_setup.enable(scene) if was_on else render_setup.disable(scene))
        if not render_setup.enable(scene):
            source.warnings.append("no footage to render over: the render shows the head alone")


def _label_rig(tx: Transaction, rig: _Rig, source: _Source, plan: _Plan, frame_start: int, person: int | None,
               people_file: str | os.PathLike | None) -> None:
    """What the rig was made from, on its root (how re-imports and Drive Character find it again)."""
    root, result = rig.root, source.result
    remember_properties(tx, root, ROOT_PROPERTIES)
    remember_properties(tx, rig.arm, ("sheap_demo",))
    remember_properties(tx, rig.head, ("sheap_demo",))
    root["sheap_result"] = os.fspath(source.path)
    root["sheap_flame"] = os.fspath(Path(source.flame_path).resolve())
    root["sheap_flame_sha256"] = source.model.source_sha256
    root["sheap_footage"] = result.metadata.get("footage", "")
    root["sheap_frame_start"] = int(frame_start)
    root["sheap_frames"] = result.n_frames
    if source.face is not None:
        root["sheap_followed_face"] = result.metadata["followed_face"]  # JSON, as the result says it
    elif "sheap_followed_face" in root:
        del root["sheap_followed_face"]  # an older result onto a rig that had one
    root["sheap_demo"] = plan.is_demo
    if person is not None:
        root["sheap_person"] = int(person)
    elif "sheap_person" in root:
        del root["sheap_person"]  # a one-person result onto a rig that followed a person
    if people_file is not None:
        root["sheap_people"] = os.fspath(Path(people_file).resolve())
    elif "sheap_people" in root:
        del root["sheap_people"]
    rig.arm["sheap_demo"] = plan.is_demo
    rig.head["sheap_demo"] = plan.is_demo


# ------------------------------------------------------------------------------------ clean up


def _clean_up(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, rig: _Rig, plan: _Plan, actions: dict,
              old_actions: dict, footage: bpy.types.ID | None, previous: list, preview: bpy.types.Object | None,
              old_previews: list[bpy.types.Object]) -> None:
    """Once the import stands: drop what the rig used before and nothing uses any more."""
    for role, action in old_actions.items():
        if action is not None and action.users == 0 and action.get("sheap_action"):
            name = action.name
            bpy.data.actions.remove(action)
            actions[role].name = name  # the new action takes the old one's name
    # footage an earlier import loaded and nothing uses any more (background images do not count
    # users reliably, so ask the user map)
    ours = [d for d in previous if d.get("sheap_footage") and d is not footage]
    if ours:
        unused = [d for d, users in bpy.data.user_map(subset=ours).items() if not users]
        if unused:
            bpy.data.batch_remove(unused)
    gaussian_preview.remove_previews([obj for obj in old_previews if obj != preview])
    if preview is not None:
        preview.name = preview.data.name = f"{plan.stem} Gaussians"  # takes the replaced preview's name
        for modifier in preview.modifiers:
            if modifier.type == "NODES" and modifier.node_group is not None:
                modifier.node_group.name = preview.name
        preview["sheap_demo"] = plan.is_demo
        settings = getattr(scene, "sheap", None)
        if settings is not None:
            settings.gaussians = True  # the panel's checkbox: shows the previews
    view_layer.objects.active = rig.arm
