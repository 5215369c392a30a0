"""Import a SHeaP result: FLAME rig + baked animation + footage camera, all or nothing.

`import_result(result, flame)` reads and checks both files and computes every channel (NumPy)
before it creates a single datablock; if anything fails after that, everything it created is
removed and the scene settings it changed are put back, so a failed import leaves the scene as
it was. Re-importing onto a rig this extension built (the same result file, or the rig passed in
/ selected) keeps the objects and replaces the animation with new actions.

The checks are in import_checks.py, the F-curve channels in rig_channels.py, finding a rig in
rig_lookup.py, the rollback (`Transaction` and its undo steps) in transaction.py.

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
from pathlib import Path

import bpy
import numpy as np

from ..core.camera import blender_camera
from ..core.errors import InputError
from ..core.flame.model import load_flame
from ..core.gaussians import binding_from_tensors, pose_gaussians
from ..core.result.face_choice import cut_rows, followed_face, other_person_warning
from ..core.result.result_format import read_result
from ..core.result.rig_math import eyelid_key_names, key_scales, rig_animation, slider_range
from ..preview import gaussians as gaussian_preview
from ..preview import render_setup
from ..rig import animation, scene_camera, timeline
from ..rig import build as rig
from ..rig.channels import camera_channels, head_channels, shape_channels
from ..rig.lookup import find_rig_for, rig_parts, rig_root, selected_rig
from ..rig.transaction import Transaction, reassign_action, remember_geometry, remember_properties, restore_background
from .import_checks import check_pair, check_rig, rig_names

RIG_VERSION = 1
ROLE = rig.ROLE
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
    (render_setup.py); a re-animated rig's scene keeps its choice (when on, it follows the new
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
    target = target or ("SELECTED" if onto_selected else "AUTO")
    scene, view_layer = context.scene, context.view_layer
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

    root = None
    if target == "SELECTED":
        root = selected_rig(context, rig_object)
        if root is None:
            raise InputError(None, "no SHeaP rig is selected: select the rig (or any part of it) or import as new")
    elif target == "AUTO":
        root = rig_root(rig_object) if rig_object is not None else find_rig_for(scene, os.fspath(result_path))
    elif target != "NEW":
        raise ValueError(f"unknown target {target!r}")
    parts = rig_parts(root) if root is not None else {}
    if root is not None:
        check_rig(root, parts, model, flame_path)

    # Everything below the checks is computed before any datablock is touched.
    anim = rig_animation(model, result)
    warnings += anim.warnings
    camera_settings = blender_camera(result.params["crop_box"], result.width, result.height, result.fov_deg)
    key_names, key_values = anim.shape_key_values(eyelid_key_names(model))
    scales = key_scales(key_values)
    lows, highs = slider_range(key_values / scales)
    if np.any(scales > 1):
        warnings.append(f"{int(np.sum(scales > 1))} shape keys exceed Blender's +-10 slider range: "
                        "their geometry is scaled to keep every frame exact")
    identity_vertices = model.v_template + model.shapedirs[:, :, :300] @ anim.identity
    rest_centres = pose_gaussians(identity_vertices, model.faces, binding)[0] if binding is not None else None
    plan = scene_camera.plan_footage(result.metadata.get("footage", ""), result_path, result.frame_index)
    if plan.warning:
        warnings.append(plan.warning)
    is_demo = result.is_demo or bool(getattr(model, "is_demo", False))
    stem, collection_name = rig_names(result, result_path, is_demo)
    if person is not None:
        stem = f"{stem} person {int(person)}"
        collection_name = f"SHeaP {stem}" + (" (demo)" if is_demo else "")
    frames = frame_start + np.arange(result.n_frames, dtype=np.float64)

    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    tx = transaction or Transaction(scene, view_layer)
    try:
        if root is None:
            collection = tx.add(bpy.data.collections.new(collection_name))
            scene.collection.children.link(collection)
            root = tx.add(bpy.data.objects.new(f"{stem} root", None))
            root.empty_display_type = "PLAIN_AXES"
            root.empty_display_size = 0.1
            root.rotation_mode = "XYZ"
            root.rotation_euler = (math.pi / 2, 0.0, 0.0)  # FLAME (x, y, z) -> Blender (x, -z, y)
            root[ROLE] = "root"
            root["sheap_rig"] = RIG_VERSION
            collection.objects.link(root)
            arm = tx.adopt(rig.build_armature(f"{stem} rig"), root, collection)
            head = tx.adopt(rig.build_mesh(f"{stem} head", model), arm, collection)
            camera = tx.adopt(scene_camera.build_camera(f"{stem} camera"), root, collection)
            heads = rig.set_rest_joints(arm, anim.rest_joints, view_layer)
            rig.add_vertex_groups(head, model.weights)
            rig.add_armature_modifier(head, arm)
            head.data.materials.append(render_setup.head_material(tx.add))
            if render_over_footage and set_scene:
                render_setup.build_lights(stem, root, collection, tx.add)
                render_setup.ensure_world(scene, tx.add)
            reused = False
        else:
            collection = root.users_collection[0] if root.users_collection else scene.collection
            arm, head, camera = parts["armature"], parts["head"], parts["camera"]
            remember_geometry(tx, arm, head, view_layer)
            heads = rig.set_rest_joints(arm, anim.rest_joints, view_layer)
            reused = True
        rig.write_shape_keys(head, model, identity_vertices, dict(zip(key_names, scales.tolist())),
                             {n: (lo, hi) for n, lo, hi in zip(key_names, lows.tolist(), highs.tolist())})
        # the rig's earlier preview goes once the import has succeeded (a failure keeps it)
        old_previews = gaussian_preview.rig_previews(root) if gaussians else []
        preview = None
        if binding is not None:
            preview = gaussian_preview.build_preview(f"{stem} Gaussians", head, model.faces, binding, rest_centres,
                                                     collection, add=tx.add)

        # footage: a file Blender cannot read is a warning, not a failed import
        try:
            footage = scene_camera.load_background(plan)
        except RuntimeError as exc:
            footage = None
            warnings.append(f"cannot show the footage {plan.path}: {str(exc).strip()}")
        if footage is not None:
            tx.add(footage)
            footage["sheap_footage"] = True
            warnings += scene_camera.size_warnings(footage, result.width, result.height)
        previous = scene_camera.set_background(camera.data, footage, plan, frame_start, result.n_frames)
        tx.undo_steps.append(lambda: restore_background(camera.data, previous))

        actions = {}
        n_keys = 0
        old = {}
        for role, id_data, id_type, channels in (
            ("head", arm, "OBJECT", head_channels(anim, heads)),
            ("shape", head.data.shape_keys, "KEY", shape_channels(key_names, key_values, scales)),
            ("camera", camera.data, "CAMERA", camera_channels(camera_settings)),
        ):
            label = {"head": "head motion", "shape": "expressions", "camera": "camera"}[role]
            target_ = animation.new_action(f"{stem} {label}", id_type, slot_name=f"{stem} {role}")
            tx.add(target_.action)
            target_.action["sheap_action"] = role
            n_keys += animation.write_channels(target_, frames, channels)
            old[role] = id_data.animation_data.action if id_data.animation_data else None
            animation.assign(id_data, target_)
            tx.undo_steps.append(lambda id_data=id_data, action=old[role]: reassign_action(id_data, action))
            actions[role] = target_.action

        if markers:
            timeline.remove_invalid_markers(scene)
            tx.markers += timeline.mark_invalid(scene, result.valid, frame_start)
            timeline.remove_cut_markers(scene)
            tx.markers += timeline.mark_cuts(scene, cuts, frame_start)
        if set_scene:
            timeline.set_timing(scene, result.fps, frame_start, result.n_frames)
            scene_camera.set_render_size(scene, result.width, result.height)
            scene.camera = camera
            was_on = render_setup.is_enabled(scene)
            if was_on or (render_over_footage and not reused):
                # first in the list, so a rollback runs it last: after the camera's background is back
                tx.undo_steps.insert(0, lambda: render_setup.enable(scene) if was_on else render_setup.disable(scene))
                if not render_setup.enable(scene):
                    warnings.append("no footage to render over: the render shows the head alone")

        remember_properties(tx, root, ROOT_PROPERTIES)
        remember_properties(tx, arm, ("sheap_demo",))
        remember_properties(tx, head, ("sheap_demo",))
        root["sheap_result"] = os.fspath(result_path)
        root["sheap_flame"] = os.fspath(Path(flame_path).resolve())
        root["sheap_flame_sha256"] = model.source_sha256
        root["sheap_footage"] = result.metadata.get("footage", "")
        root["sheap_frame_start"] = int(frame_start)
        root["sheap_frames"] = result.n_frames
        if face is not None:
            root["sheap_followed_face"] = result.metadata["followed_face"]  # JSON, as the result says it
        elif "sheap_followed_face" in root:
            del root["sheap_followed_face"]  # an older result onto a rig that had one
        root["sheap_demo"] = is_demo
        if person is not None:
            root["sheap_person"] = int(person)
        elif "sheap_person" in root:
            del root["sheap_person"]  # a one-person result onto a rig that followed a person
        if people_file is not None:
            root["sheap_people"] = os.fspath(Path(people_file).resolve())
        elif "sheap_people" in root:
            del root["sheap_people"]
        arm["sheap_demo"] = is_demo
        head["sheap_demo"] = is_demo
    except BaseException:
        if transaction is None:
            tx.rollback()
        raise

    def clean_up() -> None:
        """Once the import stands: drop what the rig used before and nothing uses any more."""
        for role, action in old.items():
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
            preview.name = preview.data.name = f"{stem} Gaussians"  # takes the replaced preview's name
            for modifier in preview.modifiers:
                if modifier.type == "NODES" and modifier.node_group is not None:
                    modifier.node_group.name = preview.name
            preview["sheap_demo"] = is_demo
            settings = getattr(scene, "sheap", None)
            if settings is not None:
                settings.gaussians = True  # the panel's checkbox: shows the previews
        view_layer.objects.active = arm

    if transaction is None:
        clean_up()
    else:
        transaction.on_commit.append(clean_up)
    if is_demo:
        warnings.insert(0, "demo weights: the stand-in predictor or FLAME was used, not a real reconstruction")
    imported = ImportedRig(collection, root, arm, head, camera, actions, frame_start, result.n_frames, n_keys,
                           is_demo, reused, int((~result.valid).sum()), warnings=warnings, gaussians=preview,
                           cuts=len(cuts), followed_face=face)
    imported.seconds = time.perf_counter() - started
    return imported

