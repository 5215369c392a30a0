"""Scene timing from the clip (fps, frame range); timeline markers at frames without a face and at hard cuts."""

from __future__ import annotations

import re

import bpy
import numpy as np

from ..core.camera import blender_fps

MARKER_NAME = "no face"
CUT_MARKER_NAME = "cut"
_OUR_MARKER = re.compile(r"^no face( \(\d+ frames\))?$")


def set_timing(scene: bpy.types.Scene, fps: float, frame_start: int, n_frames: int) -> None:
    """Scene fps (fps / fps_base: 29.97 = 30 / 1.001) and frame range covering the clip."""
    whole, base = blender_fps(fps)
    scene.render.fps = whole
    scene.render.fps_base = base
    # order matters: Blender keeps frame_end >= frame_start while each is set
    if frame_start > scene.frame_end:
        scene.frame_end = frame_start + n_frames - 1
        scene.frame_start = frame_start
    else:
        scene.frame_start = frame_start
        scene.frame_end = frame_start + n_frames - 1
    scene.frame_current = frame_start


def invalid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """(first row, length) of each run of frames without a face."""
    invalid = ~np.asarray(valid, dtype=bool)
    edges = np.diff(np.concatenate([[0], invalid.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def remove_invalid_markers(scene: bpy.types.Scene) -> None:
    """Remove the markers an earlier import put at frames without a face."""
    for marker in [m for m in scene.timeline_markers if _OUR_MARKER.match(m.name)]:
        scene.timeline_markers.remove(marker)


def mark_invalid(scene: bpy.types.Scene, valid: np.ndarray, frame_start: int) -> list[bpy.types.TimelineMarker]:
    """One marker at the start of each run of frames without a face ("no face (12 frames)")."""
    markers = []
    for row, length in invalid_runs(valid):
        name = MARKER_NAME if length == 1 else f"{MARKER_NAME} ({length} frames)"
        markers.append(scene.timeline_markers.new(name, frame=frame_start + row))
    return markers


def remove_cut_markers(scene: bpy.types.Scene) -> None:
    """Remove the markers an earlier import put at hard cuts."""
    for marker in [m for m in scene.timeline_markers if m.name == CUT_MARKER_NAME]:
        scene.timeline_markers.remove(marker)


def mark_cuts(scene: bpy.types.Scene, rows: np.ndarray, frame_start: int) -> list[bpy.types.TimelineMarker]:
    """One marker "cut" on the scene frame of each result row where a segment starts at a hard cut."""
    return [scene.timeline_markers.new(CUT_MARKER_NAME, frame=frame_start + int(row)) for row in rows]
