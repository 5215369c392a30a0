"""Import a SHeaP result: FLAME rig + baked animation + footage camera, all or nothing.

`import_result(result, flame)` reads and checks both files and computes every channel (NumPy)
before it creates a single datablock; if anything fails after that, everything it created is
removed and the scene settings it changed are put back, so a failed import leaves the scene as
it was. Re-importing onto a rig this extension built (the same result file, or the rig passed in
/ selected) keeps the objects and replaces the animation with new actions.

Layout (docs/blender-rig.md):

    <collection "SHeaP <clip>">
      <clip> root      empty, rotated +90 deg about X: its children live in FLAME axes
        <clip> rig     armature; location = cam_trans; bones root, neck, jaw, eye_l, eye_r
          <clip> head  mesh, shape keys, Armature modifier
          <clip> Gaussians  point cloud bound to the head (when the result has Gaussians)
        <clip> camera  SHeaP's camera at FLAME (0, 0, 1); per-frame lens and shift = the crop
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from . import animation, gaussian_preview, render_setup, rig, scene_camera, timeline
from .core.camera import blender_camera, non_square_boxes, valid_boxes
from .core.errors import InputError
from .core.face_choice import cut_rows, followed_face, other_person_warning
from .core.flame_model import JOINT_NAMES, FlameModel, load_flame
from .core.gaussians import binding_from_tensors, pose_gaussians
from .core.result_format import Result, read_result
from .core.rig_math import (
    RigAnimation,
    corrective_key_names,
    eyelid_key_names,
    key_scales,
    rig_animation,
    slider_range,
)

RIG_VERSION = 1
ROLE = rig.ROLE


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


# ---------------------------------------------------------------------------------------- finding rigs


def rig_root(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The root of the SHeaP rig `obj` belongs to (itself, a parent, or None)."""
    while obj is not None:
        if obj.get(ROLE) == "root" and obj.get("sheap_rig"):
            return obj
        obj = obj.parent
    return None


def rig_parts(root: bpy.types.Object) -> dict[str, bpy.types.Object]:
    """role -> object of a rig ("root", "armature", "head", "camera")."""
    parts = {"root": root}
    for child in root.children_recursive:
        role = child.get(ROLE)
        if role in ("armature", "head", "camera") and role not in parts:
            parts[role] = child
    return parts


def _selected_rig(context: bpy.types.Context, rig_object: bpy.types.Object | None) -> bpy.types.Object | None:
    """The rig of `rig_object`, else of the active object, else of a selected object, else the
    scene's only SHeaP rig (a .blend holding one rig, opened by a script)."""
    if rig_object is not None:
        return rig_root(rig_object)
    for obj in [context.active_object, *getattr(context, "selected_objects", ())]:
        root = rig_root(obj)
        if root is not None:
            return root
    roots = [o for o in context.scene.objects if o.get(ROLE) == "root" and o.get("sheap_rig")]
    return roots[0] if len(roots) == 1 else None


def _find_rig_for(scene: bpy.types.Scene, result_path: str) -> bpy.types.Object | None:
    for obj in scene.objects:
        if obj.get(ROLE) == "root" and obj.get("sheap_rig") and obj.get("sheap_result") == result_path:
            return obj
    return None


# ---------------------------------------------------------------------------------------- transaction


class Transaction:
    """Remembers what an import creates and changes, to take it all back on failure."""

    def __init__(self, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer):
        self.scene = scene
        self.view_layer = view_layer
        self.created: list[bpy.types.ID] = []
        self.markers: list = []
        self.undo_steps: list = []
        render = scene.render
        self.settings = {
            "fps": render.fps, "fps_base": render.fps_base, "resolution_x": render.resolution_x,
            "resolution_y": render.resolution_y, "resolution_percentage": render.resolution_percentage,
            "pixel_aspect_x": render.pixel_aspect_x, "pixel_aspect_y": render.pixel_aspect_y,
        }
        self.frames = (scene.frame_start, scene.frame_end, scene.frame_current)
        self.camera = scene.camera
        self.old_markers = [(m.name, m.frame, m.camera) for m in scene.timeline_markers]
        self.active = view_layer.objects.active

    def add(self, datablock):
        self.created.append(datablock)
        return datablock

    def adopt(self, obj: bpy.types.Object, parent: bpy.types.Object, collection: bpy.types.Collection
              ) -> bpy.types.Object:
        """A new object (and its data) taken back on failure, parented and linked into the rig's collection."""
        self.add(obj.data)
        self.add(obj)
        obj.parent = parent
        collection.objects.link(obj)
        return obj

    def rollback(self) -> None:
        for step in reversed(self.undo_steps):
            with contextlib.suppress(Exception):  # best effort: keep undoing the rest
                step()
        scene = self.scene
        for marker in self.markers:
            with contextlib.suppress(ReferenceError, RuntimeError):
                scene.timeline_markers.remove(marker)
        current = {(m.name, m.frame) for m in scene.timeline_markers}
        for name, frame, camera in self.old_markers:  # those an import removed: put them back
            if (name, frame) not in current:
                scene.timeline_markers.new(name, frame=frame).camera = camera
        doomed = []
        for datablock in self.created:
            try:
                if isinstance(datablock, bpy.types.Mesh) and datablock.shape_keys is not None:
                    doomed.append(datablock.shape_keys)
                doomed.append(datablock)
            except ReferenceError:
                pass
        if doomed:
            bpy.data.batch_remove(doomed)
        for name, value in self.settings.items():
            setattr(scene.render, name, value)
        start, end, current = self.frames
        scene.frame_start, scene.frame_end = min(start, scene.frame_end), max(end, scene.frame_start)
        scene.frame_start, scene.frame_end, scene.frame_current = start, end, current
        try:
            scene.camera = self.camera
            self.view_layer.objects.active = self.active
        except ReferenceError:
            pass


# ---------------------------------------------------------------------------------------- checks


def _check(result_path: Path, result: Result, model: FlameModel) -> list[str]:
    """Problems that make the pair unusable raise InputError; the rest become warnings."""
    warnings = []
    boxes = result.params["crop_box"]
    bad = np.flatnonzero(~valid_boxes(boxes))
    if bad.size:
        raise InputError(result_path, f"crop_box of row {int(bad[0])} has no area: {boxes[bad[0]].tolist()}")
    skewed = int(non_square_boxes(boxes).sum())
    if skewed:
        warnings.append(f"{skewed} crop boxes are not square: the camera follows their width, "
                        "the vertical placement can be off on those frames")
    try:
        fov = result.fov_deg
    except ValueError:
        raise InputError(result_path, "malformed fov_deg") from None
    if not 1.0 < fov < 179.0:
        raise InputError(result_path, f"field of view {fov} degrees is not usable")
    expected = result.metadata.get("flame_sha256", "")
    if expected and model.source_sha256 and expected != model.source_sha256:
        warnings.append("this FLAME file is not the one the result was made with (SHA-256 differs): "
                        "the head may not match the footage")
    return warnings


def _names(result: Result, result_path: Path, is_demo: bool) -> tuple[str, str]:
    footage = result.metadata.get("footage", "")
    stem = Path(footage.rstrip("/\\")).stem if footage else ""
    stem = stem.replace("%", "") or result_path.name.split(".")[0] or "clip"
    collection = f"SHeaP {stem}" + (" (demo)" if is_demo else "")
    return stem, collection


# ---------------------------------------------------------------------------------------- channels


def _head_channels(anim: RigAnimation, heads: np.ndarray) -> list[animation.Channel]:
    channels = [animation.Channel("location", i, anim.translation[:, i], "Object Transforms") for i in range(3)]
    locations = anim.locations_for(heads)
    for joint, name in enumerate(JOINT_NAMES):
        bone = f'pose.bones["{name}"]'
        channels += [animation.Channel(f"{bone}.rotation_quaternion", i, anim.bone_quaternions[:, joint, i], name)
                     for i in range(4)]
        channels += [animation.Channel(f"{bone}.location", i, locations[:, joint, i], name) for i in range(3)]
    return channels


def _shape_channels(names: list[str], values: np.ndarray, scales: np.ndarray) -> list[animation.Channel]:
    eyelids = {name for name in names if name.startswith("eyelid_")}
    correctives = set(corrective_key_names())
    channels = []
    for k, name in enumerate(names):
        group = "Eyelids" if name in eyelids else "Pose correctives" if name in correctives else "Expression"
        channels.append(animation.Channel(f'key_blocks["{name}"].value', 0, values[:, k] / scales[k], group))
    return channels


def _camera_channels(settings: dict[str, np.ndarray]) -> list[animation.Channel]:
    return [animation.Channel(name, 0, settings[name], "Camera") for name in ("lens", "shift_x", "shift_y")]


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
    """
    started = time.perf_counter()
    context = context or bpy.context
    target = target or ("SELECTED" if onto_selected else "AUTO")
    scene, view_layer = context.scene, context.view_layer
    result_path = Path(result_path).resolve()
    result = read_result(result_path)
    model = load_flame(flame_path)
    warnings = _check(result_path, result, model)
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
        root = _selected_rig(context, rig_object)
        if root is None:
            raise InputError(None, "no SHeaP rig is selected: select the rig (or any part of it) or import as new")
    elif target == "AUTO":
        root = rig_root(rig_object) if rig_object is not None else _find_rig_for(scene, os.fspath(result_path))
    elif target != "NEW":
        raise ValueError(f"unknown target {target!r}")
    parts = rig_parts(root) if root is not None else {}
    if root is not None:
        missing = [r for r in ("armature", "head", "camera") if r not in parts]
        if missing:
            raise InputError(None, f"the rig {root.name!r} lacks its {', '.join(missing)}: import as a new rig")
        head_mesh = parts["head"].data
        if len(head_mesh.vertices) != model.n_vertices:
            raise InputError(flame_path, f"the rig {root.name!r} has {len(head_mesh.vertices)} vertices, "
                                         f"this FLAME model {model.n_vertices}: import as a new rig")
        if root.get("sheap_flame_sha256", "") != model.source_sha256:
            raise InputError(flame_path, f"the rig {root.name!r} was built with another FLAME model: "
                                         "import as a new rig")

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
    stem, collection_name = _names(result, result_path, is_demo)
    frames = frame_start + np.arange(result.n_frames, dtype=np.float64)

    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    tx = Transaction(scene, view_layer)
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
            _remember_geometry(tx, arm, head, view_layer)
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
        tx.undo_steps.append(lambda: _restore_background(camera.data, previous))

        actions = {}
        n_keys = 0
        old = {}
        for role, id_data, id_type, channels in (
            ("head", arm, "OBJECT", _head_channels(anim, heads)),
            ("shape", head.data.shape_keys, "KEY", _shape_channels(key_names, key_values, scales)),
            ("camera", camera.data, "CAMERA", _camera_channels(camera_settings)),
        ):
            label = {"head": "head motion", "shape": "expressions", "camera": "camera"}[role]
            target_ = animation.new_action(f"{stem} {label}", id_type, slot_name=f"{stem} {role}")
            tx.add(target_.action)
            target_.action["sheap_action"] = role
            n_keys += animation.write_channels(target_, frames, channels)
            old[role] = id_data.animation_data.action if id_data.animation_data else None
            animation.assign(id_data, target_)
            tx.undo_steps.append(lambda id_data=id_data, action=old[role]: _reassign(id_data, action))
            actions[role] = target_.action

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
        arm["sheap_demo"] = is_demo
        head["sheap_demo"] = is_demo
    except BaseException:
        tx.rollback()
        raise

    # the old animation is replaced: drop what nothing uses any more
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
    if is_demo:
        warnings.insert(0, "demo weights: the stand-in predictor or FLAME was used, not a real reconstruction")
    imported = ImportedRig(collection, root, arm, head, camera, actions, frame_start, result.n_frames, n_keys,
                           is_demo, reused, int((~result.valid).sum()), warnings=warnings, gaussians=preview,
                           cuts=len(cuts), followed_face=face)
    imported.seconds = time.perf_counter() - started
    return imported


def _reassign(id_data: bpy.types.ID, action: bpy.types.Action | None) -> None:
    if id_data.animation_data is not None:
        id_data.animation_data.action = action
        if action is not None and getattr(id_data.animation_data, "action_slot", False) is None and action.slots:
            id_data.animation_data.action_slot = action.slots[0]


def _restore_background(camera: bpy.types.Camera, previous: list) -> None:
    camera.background_images.clear()
    for datablock in previous:
        background = camera.background_images.new()
        if isinstance(datablock, bpy.types.MovieClip):
            background.source = "MOVIE_CLIP"
            background.clip = datablock
        else:
            background.image = datablock
    camera.show_background_images = bool(previous)


def _remember_geometry(tx: Transaction, arm: bpy.types.Object, head: bpy.types.Object,
                       view_layer: bpy.types.ViewLayer) -> None:
    """Before re-animating a rig in place: how to put its rest pose and shape keys back."""
    heads = np.array([arm.data.bones[name].head_local[:] for name in JOINT_NAMES if name in arm.data.bones])
    keys = head.data.shape_keys
    saved = {}
    if keys is not None:
        n = len(head.data.vertices)
        for block in keys.key_blocks:
            coords = np.empty(3 * n, dtype=np.float32)
            block.data.foreach_get("co", coords)
            saved[block.name] = (coords, block.slider_min, block.slider_max)

    def restore() -> None:
        if len(heads) == len(JOINT_NAMES):
            rig.set_rest_joints(arm, heads, view_layer)
        if keys is not None:
            for name, (coords, low, high) in saved.items():
                block = keys.key_blocks.get(name)
                if block is not None:
                    block.data.foreach_set("co", coords)
                    block.slider_min, block.slider_max = -10.0, 10.0
                    block.slider_min, block.slider_max = low, high
            head.data.update()

    tx.undo_steps.append(restore)
