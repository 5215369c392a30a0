"""Export Head: a SHeaP rig (or a driven character) to glTF, FBX, Alembic or USD, playing back as in Blender.

The file's extension picks the format (core/export/export_format.py). Each of Blender's exporters is run
with what it needs for the head to move as it does here (docs/export.md has the measurements):
animation on, every frame of the scene's range sampled, shape-key weights included, nothing
optimised away, the scene's fps. glTF and USD get a stand-in head for the export: Blender's
importers of those formats clamp shape-key weights to [0, 1] on playback (glTF widens a key's range
to its first keyframe only, USD not at all), so the stand-in carries weights remapped into [0, 1]
with geometry to match (core/export/unit_weights.py): the same vertices on every frame. The user's objects
are never changed; the stand-in is removed and the selection put back whatever happens, and the
file is written in a hidden folder beside the target and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ..core.atomic_file import check_output
from ..core.errors import InputError
from ..core.export.export_format import ExportFormat, format_for
from ..core.export.unit_weights import to_unit, unit_geometry, unit_ranges
from ..rig import animation
from ..rig.lookup import rig_parts, rig_root, selected_rig


@dataclass
class ExportedHead:
    """What an export wrote."""

    path: Path
    format: ExportFormat
    objects: list[str]
    frame_start: int
    frame_end: int
    fps: float
    seconds: float
    remapped_keys: int = 0  # shape keys whose weights the file carries remapped into [0, 1]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = "bones and shape keys" if self.format.keeps_rig else "the deformed mesh baked on every frame"
        text = (f"SHeaP: exported {', '.join(self.objects)} to {self.path.name} ({self.format.label}, {what}), "
                f"frames {self.frame_start}-{self.frame_end} at {self.fps:g} fps in {self.seconds:.2f} s")
        if self.remapped_keys:
            text += f"; {self.remapped_keys} shape keys' weights remapped into 0..1 (geometry to match)"
        return text


def export_objects(context: bpy.types.Context, obj: bpy.types.Object | None) -> tuple[list, list]:
    """The meshes that move and every object to export with them: a SHeaP rig's root, armature and head; or a
    character's mesh, the armatures that deform it or take the head's rotation, the other meshes those armatures
    deform (eyes, teeth, a body), and their parents. InputError when there is nothing to export."""
    root = rig_root(obj) if obj is not None else selected_rig(context, None)
    if root is not None:
        parts = rig_parts(root)
        if "armature" not in parts or "head" not in parts:
            raise InputError(None, f"the SHeaP rig {root.name!r} has lost its armature or head: nothing to export")
        return [parts["head"]], [root, parts["armature"], parts["head"]]
    mesh = obj if obj is not None else context.active_object
    if mesh is None or mesh.type != "MESH":
        raise InputError(None, "no SHeaP rig or character to export: select the rig (or any part of it) or the "
                               "character's mesh")
    armatures = _armatures_of(mesh)
    settings = getattr(mesh, "sheap_character", None)
    if settings is not None and settings.head_armature is not None and settings.head_armature not in armatures:
        armatures.append(settings.head_armature)
    meshes = [mesh] + [o for o in context.scene.objects
                       if o.type == "MESH" and o != mesh and set(_armatures_of(o)) & set(armatures)]
    objects: list = []
    for item in [*meshes, *armatures]:
        chain = []
        while item is not None and item not in objects:
            chain.append(item)
            item = item.parent
        objects[len(objects):] = chain
    by_depth = sorted(objects, key=lambda o: len(list(_ancestors(o))))  # parents before children
    return meshes, by_depth


def _armatures_of(mesh: bpy.types.Object) -> list:
    return [m.object for m in mesh.modifiers if m.type == "ARMATURE" and m.object is not None]


def _ancestors(obj: bpy.types.Object):
    while obj.parent is not None:
        obj = obj.parent
        yield obj


def export_head(context: bpy.types.Context | None, filepath: str | os.PathLike,
                obj: bpy.types.Object | None = None) -> ExportedHead:
    """Write the rig of `obj` (default: the selected rig, or the scene's only one; else the active character mesh)
    to `filepath` in the format its extension picks. InputError (one line) for what cannot be exported as it
    plays; the scene and any file already at `filepath` are left as they were on failure."""
    started = time.perf_counter()
    context = context or bpy.context
    fmt = format_for(filepath)
    path = check_output(filepath)
    meshes, objects = export_objects(context, obj)
    scene = context.scene
    if scene.frame_end < scene.frame_start:
        raise InputError(None, f"the scene's frame range {scene.frame_start}-{scene.frame_end} is empty")
    for mesh in meshes:
        _check_carried(fmt, mesh)
    missing = [o.name for o in objects if o.name not in context.view_layer.objects]
    if missing:
        raise InputError(None, f"{', '.join(missing)} not in the view layer (an excluded collection?): "
                               "include it to export")
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    ranges = {mesh.name: _weight_ranges(mesh) for mesh in meshes} if fmt.unit_weights else {}
    frame = scene.frame_current
    folder = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.export")
    folder.mkdir()
    try:
        with ExitStack() as stack:
            exported = {mesh: stack.enter_context(_stand_in(mesh, ranges.get(mesh.name, {}))) for mesh in meshes}
            stack.enter_context(_selected(context.view_layer, [exported.get(o, o) for o in objects]))
            _run_exporter(fmt, folder / path.name, scene, list(exported.values()), name=objects[0].name)
        written = sorted(folder.iterdir(), key=lambda p: p.name == path.name)  # the named file last
        if not written or written[-1].name != path.name:
            raise InputError(path, f"Blender's {fmt.label} exporter wrote no file")
        for item in written:
            os.replace(item, path.with_name(item.name))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        scene.frame_set(frame)
    fps = scene.render.fps / scene.render.fps_base
    warnings = []
    if fmt.name == "FBX" and scene.render.fps_base != 1.0:
        # import_fbx.py converts key times with render.fps alone (not / fps_base)
        warnings.append(f"the file's key times are frame / {fps:g} s, but Blender's own FBX importer reads them at "
                        f"{scene.render.fps} fps: imported back into Blender the motion drifts "
                        f"{scene.render.fps_base - 1:.1%} a frame")
    return ExportedHead(path, fmt, [o.name for o in objects], scene.frame_start, scene.frame_end, fps,
                        time.perf_counter() - started, remapped_keys=sum(len(r) for r in ranges.values()),
                        warnings=warnings)


# ------------------------------------------------------------------------------------------ checks


def _check_carried(fmt: ExportFormat, head: bpy.types.Object) -> None:
    """What the format cannot carry as it plays here is refused, never dropped."""
    if not fmt.keeps_rig:
        return  # a vertex cache carries whatever the mesh does
    for modifier in head.modifiers:
        if modifier.type != "ARMATURE" and (modifier.show_viewport or modifier.show_render):
            raise InputError(None, f"{head.name}: its {modifier.type.lower()} modifier {modifier.name!r} cannot go "
                                   f"into {fmt.label} with the rig: turn it off, apply it, or export Alembic (.abc)")
    key = head.data.shape_keys
    if key is None or not fmt.unit_weights:
        return
    driven = [d.data_path for d in (key.animation_data.drivers if key.animation_data else ())]
    if driven:
        raise InputError(None, f"{head.name}: {len(driven)} shape keys are driven by drivers ({driven[0]}...): "
                               f"{fmt.label} carries keyed weights only; key them, or export FBX or Alembic")
    if not key.use_relative:
        raise InputError(None, f"{head.name}: absolute shape keys cannot go into {fmt.label}: export Alembic (.abc)")


def _key_curves(key: bpy.types.Key) -> dict[str, object]:
    """Shape-key name -> the F-curve animating its value (in the Key's assigned action)."""
    by_path = {block.path_from_id("value"): block.name for block in key.key_blocks}
    return {by_path[c.data_path]: c for c in animation.fcurves_of(key) if c.data_path in by_path}


def _curve_points(curve) -> np.ndarray:
    """Every value a Bezier or linear F-curve can take lies within its keys' and handles' values."""
    n = len(curve.keyframe_points)
    values = []
    for name in ("co", "handle_left", "handle_right"):
        co = np.empty(2 * n, dtype=np.float64)
        curve.keyframe_points.foreach_get(name, co)
        values.append(co[1::2])
    return np.concatenate(values)


def _weight_ranges(head: bpy.types.Object) -> dict[str, tuple[float, float]]:
    """Shape keys whose weights leave [0, 1] -> (a, b) to remap them by (core/export/unit_weights.py)."""
    key = head.data.shape_keys
    if key is None:
        return {}
    curves = _key_curves(key)
    ranges = {}
    for block in key.key_blocks[1:]:
        curve = curves.get(block.name)
        values = _curve_points(curve) if curve is not None and len(curve.keyframe_points) else np.array([block.value])
        if curve is not None and len(curve.modifiers):
            raise InputError(None, f"{head.name}: the shape key {block.name!r} has F-curve modifiers: key its "
                                   "values to export it")
        a, b = unit_ranges(values.min(), values.max())
        if a != 0.0 or b != 1.0:
            if block.relative_key != key.key_blocks[0] or block.vertex_group:
                raise InputError(None, f"{head.name}: the shape key {block.name!r} (relative to another key or "
                                       "limited to a vertex group) has weights outside 0..1, which this format's "
                                       "importers clamp: export FBX or Alembic")
            ranges[block.name] = (float(a), float(b))
    return ranges


# ------------------------------------------------------------------------------------------ stand-in


@contextmanager
def _stand_in(head: bpy.types.Object, ranges: dict[str, tuple[float, float]]) -> Iterator[bpy.types.Object]:
    """A copy of `head` under its name whose shape keys' weights are remapped into [0, 1] (same vertices on
    every frame), removed afterwards; `head` itself when nothing needs remapping."""
    if not ranges:
        yield head
        return
    name, data_name = head.name, head.data.name
    copy = head.copy()
    copy.data = head.data.copy()
    made = {"object": copy, "mesh": copy.data, "action": None}
    try:
        for collection in head.users_collection:
            collection.objects.link(copy)
        key = copy.data.shape_keys
        made["action"] = _remapped_action(key, ranges)
        _remap_geometry(copy, ranges)
        head.name, head.data.name = f"{name} (exporting)", f"{data_name} (exporting)"
        copy.name, copy.data.name = name, data_name
        made["shown"] = head.hide_viewport
        head.hide_viewport = True  # not evaluated on every frame the exporter samples
        yield copy
    finally:
        if "shown" in made:
            head.hide_viewport = made["shown"]
        bpy.data.objects.remove(made["object"])
        bpy.data.meshes.remove(made["mesh"])  # its shape keys go with it
        if made["action"] is not None:
            bpy.data.actions.remove(made["action"])
        head.name, head.data.name = name, data_name


def _remapped_action(key: bpy.types.Key, ranges: dict[str, tuple[float, float]]) -> bpy.types.Action | None:
    """A copy of the Key's action, assigned to it (the same slot), with the keys in `ranges` mapped to [0, 1]."""
    data = key.animation_data
    if data is None or data.action is None:
        return None
    slot = getattr(data, "action_slot", None)
    identifier = slot.identifier if slot is not None else None
    action = data.action.copy()
    data.action = action
    if identifier is not None:
        data.action_slot = next(s for s in action.slots if s.identifier == identifier)
    for name, curve in _key_curves(key).items():
        if name not in ranges:
            continue
        a, b = ranges[name]
        n = len(curve.keyframe_points)
        for attribute in ("co", "handle_left", "handle_right"):
            co = np.empty(2 * n, dtype=np.float64)
            curve.keyframe_points.foreach_get(attribute, co)
            co[1::2] = to_unit(co[1::2], a, b)
            curve.keyframe_points.foreach_set(attribute, co)
        curve.update()
    return action


def _block_coords(block) -> np.ndarray:
    co = np.empty(len(block.data) * 3, dtype=np.float64)
    block.data.foreach_get("co", co)
    return co.reshape(-1, 3)


def _remap_geometry(obj: bpy.types.Object, ranges: dict[str, tuple[float, float]]) -> None:
    """Move the basis by a_k D_k, scale the remapped keys' offsets by (b_k - a_k), keep the others' offsets."""
    blocks = obj.data.shape_keys.key_blocks
    basis = _block_coords(blocks[0])
    names = list(ranges)
    offsets = np.stack([_block_coords(blocks[n]) - basis for n in names])
    a = np.array([ranges[n][0] for n in names])
    b = np.array([ranges[n][1] for n in names])
    moved, scaled = unit_geometry(basis, offsets, a, b)
    shift = moved - basis
    keyed = _key_curves(obj.data.shape_keys)
    for block in blocks[1:]:
        if block.name in ranges:
            coords = moved + scaled[names.index(block.name)]
            block.slider_min, block.slider_max = -10.0, 10.0  # widen first: min must stay below max
            block.slider_min, block.slider_max = 0.0, 1.0
            if block.name not in keyed:
                block.value = float(to_unit(block.value, *ranges[block.name]))
        else:
            coords = _block_coords(block) + shift
        block.data.foreach_set("co", coords.astype(np.float32).ravel())
    blocks[0].data.foreach_set("co", moved.astype(np.float32).ravel())
    obj.data.vertices.foreach_set("co", moved.astype(np.float32).ravel())
    obj.data.update()


@contextmanager
def _selected(view_layer: bpy.types.ViewLayer, chosen: list) -> Iterator[None]:
    """Only the `chosen` objects selected and visible, as before afterwards."""
    before = {o.name: (o.select_get(), o.hide_get()) for o in view_layer.objects}
    active = view_layer.objects.active
    try:
        for obj in view_layer.objects:
            obj.select_set(False)
        for obj in chosen:
            obj.hide_set(False)
            obj.select_set(True)
        view_layer.objects.active = chosen[-1]
        yield
    finally:
        for obj in view_layer.objects:
            if obj.name in before:
                selected, hidden = before[obj.name]
                obj.hide_set(hidden)
                obj.select_set(selected)
        view_layer.objects.active = active


# ------------------------------------------------------------------------------------------ exporters


def _run_exporter(fmt: ExportFormat, path: Path, scene: bpy.types.Scene, meshes: list, name: str) -> None:
    """Blender's exporter for `fmt` with every setting the meshes' playback depends on."""
    try:
        if fmt.name == "GLTF":
            most = max((len(v.groups) for mesh in meshes for v in mesh.data.vertices), default=0)
            _call(bpy.ops.export_scene.gltf,
                filepath=str(path), export_format="GLB" if path.suffix.lower() == ".glb" else "GLTF_SEPARATE",
                use_selection=True, export_animations=True, export_animation_mode="ACTIVE_ACTIONS",
                export_nla_strips_merged_animation_name=name, export_frame_range=True, export_force_sampling=True,
                # not "all actions bound to a single armature": on 4.2 that is another person's rig's motion too
                export_frame_step=1, export_optimize_animation_size=False, export_anim_single_armature=False,
                export_morph=True,
                export_morph_animation=True, export_skins=True, export_all_influences=most > 4, export_cameras=False,
                export_lights=False, export_apply=False, export_yup=True)
        elif fmt.name == "FBX":
            _call(bpy.ops.export_scene.fbx,
                # one take of the scene's range, key times frame / fps: "all actions" would add a take for every
                # action whose paths resolve on the armature (another person's rig's motion among them)
                filepath=str(path), use_selection=True, object_types={"EMPTY", "ARMATURE", "MESH"}, bake_anim=True,
                bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False, bake_anim_step=1.0,
                bake_anim_simplify_factor=0.0,
                bake_anim_force_startend_keying=True, add_leaf_bones=False, use_armature_deform_only=False)
        elif fmt.name == "ALEMBIC":
            _call(bpy.ops.wm.alembic_export,
                filepath=str(path), selected=True, start=scene.frame_start,
                end=scene.frame_end, xsamples=1, gsamples=1, flatten=False, export_hair=False,
                export_particles=False, evaluation_mode="RENDER")
        else:
            _call(bpy.ops.wm.usd_export,
                filepath=str(path), selected_objects_only=True, export_animation=True,
                export_armatures=True, export_shapekeys=True, only_deform_bones=False,
                convert_world_material=False)  # the scene's world is not the head's (it would add a dome light)
    except RuntimeError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise InputError(path.name, f"Blender's {fmt.label} exporter failed: {lines[-1] if lines else exc}") from None


def _call(operator, **settings) -> None:
    """Run an exporter with the settings this Blender version has (e.g. Alembic's visible_objects_only went in
    5.x; what is left out is then that version's only behaviour, which the round-trip tests check)."""
    known = set(operator.get_rna_type().properties.keys())
    operator(**{name: value for name, value in settings.items() if name in known})
