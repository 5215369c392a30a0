"""Bulk keyframes on one action per animated ID, for Blender 4.2 .. 5.x.

Blender 4.2/4.3 keep F-curves on `Action.fcurves`; from 4.4 actions are slotted (F-curves live in
a channelbag per slot of a keyframe strip), 4.4/4.5 keeping `Action.fcurves` as a proxy of the
first slot, 5.0 removing it. This module hides the difference: `new_action` makes an action (and
on 4.4+ its slot, layer, strip and channelbag), `write_channels` adds whole F-curves with
`keyframe_points.add` + `foreach_set` (well under a microsecond a key, against tens of
microseconds for `keyframe_insert`), `assign` sets `animation_data.action` and, on 4.4+, the slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import bpy
import numpy as np

# Slotted actions exist from 4.4 on; tests may set this to True on 4.4/4.5 to run the legacy path.
USE_LEGACY_API = bpy.app.version < (4, 4, 0)
_LINEAR = 1  # enum value of 'LINEAR' in Keyframe.interpolation


@dataclass
class Channel:
    """One animated property: `data_path[index]`, one value per frame, shown under `group`."""

    data_path: str
    index: int
    values: np.ndarray
    group: str = ""


@dataclass
class ActionTarget:
    """An action ready to receive F-curves for one ID type (slot and channelbag on 4.4+)."""

    action: bpy.types.Action
    slot: object | None = None
    channelbag: object | None = None

    @property
    def fcurves(self):
        return self.action.fcurves if self.channelbag is None else self.channelbag.fcurves


def new_action(name: str, id_type: str, slot_name: str | None = None) -> ActionTarget:
    """A new action for IDs of `id_type` ('OBJECT', 'KEY', 'CAMERA', ...)."""
    action = bpy.data.actions.new(name)
    if USE_LEGACY_API:
        action.id_root = id_type
        return ActionTarget(action)
    slot = action.slots.new(id_type=id_type, name=slot_name or name)
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    return ActionTarget(action, slot, strip.channelbag(slot, ensure=True))


def _new_fcurve(target: ActionTarget, channel: Channel, groups: dict):
    if target.channelbag is None:
        return target.fcurves.new(channel.data_path, index=channel.index, action_group=channel.group or "")
    fcurve = target.fcurves.new(channel.data_path, index=channel.index)
    if channel.group:
        group = groups.get(channel.group)
        if group is None:
            group = groups[channel.group] = target.channelbag.groups.new(channel.group)
        fcurve.group = group
    return fcurve


def write_channels(target: ActionTarget, frames: np.ndarray, channels: Iterable[Channel]) -> int:
    """Add one F-curve per channel with a linear key on every frame; returns the number of keys.

    Frames must be increasing. Linear keys make sub-frame evaluation (motion blur) a plain
    interpolation between the per-frame values.
    """
    frames = np.asarray(frames, dtype=np.float32)
    n = frames.shape[0]
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2] = frames
    interpolation = np.full(n, _LINEAR, dtype=np.int32)
    groups: dict = {}
    total = 0
    for channel in channels:
        values = np.asarray(channel.values)
        if values.shape != (n,):
            raise ValueError(f"{channel.data_path}[{channel.index}]: {values.shape} values for {n} frames")
        fcurve = _new_fcurve(target, channel, groups)
        points = fcurve.keyframe_points
        points.add(n)
        co[1::2] = values
        points.foreach_set("co", co)
        points.foreach_set("interpolation", interpolation)
        fcurve.update()  # auto handles, as if keyed by hand: switching a key to Bezier later looks right
        total += n
    return total


def assign(id_data: bpy.types.ID, target: ActionTarget) -> None:
    """Make `target` the ID's active action (and slot: without a slot nothing plays on 4.4+)."""
    animation_data = id_data.animation_data or id_data.animation_data_create()
    animation_data.action = target.action
    if target.slot is not None and animation_data.action_slot != target.slot:
        animation_data.action_slot = target.slot
    elif target.slot is None and getattr(animation_data, "action_slot", False) is None and target.action.slots:
        animation_data.action_slot = target.action.slots[0]  # legacy F-curves on 4.4/4.5: the first slot


def fcurves_of(id_data: bpy.types.ID) -> list:
    """The F-curves that animate `id_data` (its action's slot on 4.4+), for inspection."""
    animation_data = id_data.animation_data
    if animation_data is None or animation_data.action is None:
        return []
    action = animation_data.action
    slot = getattr(animation_data, "action_slot", None)
    if USE_LEGACY_API or slot is None:
        return list(action.fcurves) if hasattr(action, "fcurves") else []
    curves = []
    for layer in action.layers:
        for strip in layer.strips:
            channelbag = strip.channelbag(slot)
            if channelbag is not None:
                curves.extend(channelbag.fcurves)
    return curves
