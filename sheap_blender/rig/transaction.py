"""All or nothing: `Transaction` remembers what an import creates and changes and takes it all back on failure.

The importer and Drive Character run their work inside one; the undo steps below are what an import
registers with it when it re-uses a rig's camera, actions and geometry.
"""

from __future__ import annotations

import contextlib

import bpy
import numpy as np

from ..core.flame.model import JOINT_NAMES
from . import build


class Transaction:
    """Remembers what an import creates and changes, to take it all back on failure."""

    def __init__(self, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer):
        self.scene = scene
        self.view_layer = view_layer
        self.created: list[bpy.types.ID] = []
        self.markers: list = []
        self.undo_steps: list = []
        self.on_commit: list = []  # clean-ups that may run only once everything stands (see commit)
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

    def commit(self) -> None:
        """Everything stands: run the clean-ups the imports left for this moment (removing what they replaced)."""
        steps, self.on_commit = self.on_commit, []
        for step in steps:
            step()

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


# ---------------------------------------------------------------------------------------- undo steps


def reassign_action(id_data: bpy.types.ID, action: bpy.types.Action | None) -> None:
    if id_data.animation_data is not None:
        id_data.animation_data.action = action
        if action is not None and getattr(id_data.animation_data, "action_slot", False) is None and action.slots:
            id_data.animation_data.action_slot = action.slots[0]


def restore_background(camera: bpy.types.Camera, previous: list) -> None:
    camera.background_images.clear()
    for datablock in previous:
        background = camera.background_images.new()
        if isinstance(datablock, bpy.types.MovieClip):
            background.source = "MOVIE_CLIP"
            background.clip = datablock
        else:
            background.image = datablock
    camera.show_background_images = bool(previous)


def remember_properties(tx: Transaction, obj: bpy.types.ID, keys: tuple[str, ...]) -> None:
    """Before an import rewrites an object's custom properties: how to put them back as they were."""
    saved = {key: obj[key] for key in keys if key in obj}

    def restore() -> None:
        for key in keys:
            if key in saved:
                obj[key] = saved[key]
            elif key in obj:
                del obj[key]

    tx.undo_steps.append(restore)


def remember_geometry(tx: Transaction, arm: bpy.types.Object, head: bpy.types.Object,
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
            build.set_rest_joints(arm, heads, view_layer)
        if keys is not None:
            for name, (coords, low, high) in saved.items():
                block = keys.key_blocks.get(name)
                if block is not None:
                    block.data.foreach_set("co", coords)
                    block.slider_min, block.slider_max = -10.0, 10.0
                    block.slider_min, block.slider_max = low, high
            head.data.update()

    tx.undo_steps.append(restore)
