"""The footage camera: a Blender camera whose per-frame lens and shift reproduce SHeaP's crops,
the footage behind it, and the render size.

The camera sits where SHeaP's does, at FLAME (0, 0, 1) looking toward -Z (a child of the rig's
rotated root, no rotation of its own) and never moves. Each frame's crop box is folded into the
intrinsics (core/camera.py): focal length (box_w / 2) / tan(fov / 2) pixels, principal point at
the box centre. The background is the whole footage frame, never cropped, so it stays aligned.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.camera import SENSOR_WIDTH_MM
from ..core.image_sequence import folder_images, is_image, is_pattern, natural_key, pattern_images
from ..core.result.footage_path import resolve_footage

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".mts", ".m2ts", ".wmv",
                    ".flv", ".ogv", ".dv", ".mxf"}
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[^.]+)$")


@dataclass
class FootagePlan:
    """What the background will show, decided before any datablock exists."""

    kind: str | None  # "movie", "sequence", "image" or None (no background)
    path: str = ""  # the movie, the sequence's first shown file, or the image
    offset: int = 0  # movie: first shown frame (0-based); sequence: image_user.frame_offset
    warning: str = ""


def _sequence(files: list[Path], frame_index: np.ndarray, source: str) -> FootagePlan:
    """Blender plays a sequence by file number: it must be consecutively numbered."""
    files = sorted(files, key=natural_key)
    if not files:
        return FootagePlan(None, warning=f"footage {source} holds no images: no background")
    first = int(frame_index[0])
    if len(files) == 1 or first >= len(files):
        return FootagePlan("image", os.fspath(files[min(first, len(files) - 1)]))
    matches = [_NUMBERED.match(f.name) for f in files]
    numbers = [int(m.group(2)) for m in matches] if all(matches) else []
    same_pattern = bool(numbers) and len({(m.group(1), m.group(3)) for m in matches}) == 1
    numbers_sorted = sorted(numbers)
    if not same_pattern or numbers_sorted != list(range(numbers_sorted[0], numbers_sorted[0] + len(files))):
        return FootagePlan("image", os.fspath(files[first]),
                           warning=f"footage {source} is not one consecutively numbered sequence: "
                                   "the background shows a still frame")
    by_number = sorted(zip(numbers, files))
    start_number = by_number[0][0]
    shown = by_number[first][1]
    warning = ""
    if np.any(np.diff(frame_index) != 1):
        warning = "the result skips footage frames: the background runs on without the gaps"
    # image_user: scene frame frame_start shows number frame_offset + 1
    return FootagePlan("sequence", os.fspath(shown), start_number + first - 1, warning)


def plan_footage(footage: str, result_path: str | os.PathLike, frame_index: np.ndarray) -> FootagePlan:
    """Find the footage named in the result (absolute, or relative to the result file or the
    working folder) and decide how to show it; a missing footage is a warning, not an error."""
    if not footage:
        return FootagePlan(None, warning="the result names no footage: no background")
    path = resolve_footage(footage, result_path)
    if path is None:
        return FootagePlan(None, warning=f"footage {footage} not found: the camera has no background")
    if path.is_dir():
        files = folder_images(path)
        return _sequence(files, frame_index, os.fspath(path))
    if is_pattern(path):
        files = [file for _, file in pattern_images(path)]
        return _sequence(files, frame_index, os.fspath(path))
    suffix = path.suffix.lower()
    if is_image(path):
        return FootagePlan("image", os.fspath(path))
    if suffix not in VIDEO_EXTENSIONS:
        return FootagePlan("movie", os.fspath(path), int(frame_index[0]),
                           warning=f"footage {path.name}: unknown extension, trying it as a movie")
    return FootagePlan("movie", os.fspath(path), int(frame_index[0]))


def build_camera(name: str) -> bpy.types.Object:
    """A camera object at SHeaP's camera (local (0, 0, 1), no rotation), horizontal sensor fit."""
    data = bpy.data.cameras.new(name)
    try:
        obj = bpy.data.objects.new(name, data)
    except BaseException:
        bpy.data.cameras.remove(data)
        raise
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.clip_start = 0.01
    data.clip_end = 100.0
    obj.location = (0.0, 0.0, 1.0)
    obj.rotation_mode = "XYZ"
    obj.rotation_euler = (0.0, 0.0, 0.0)
    obj["sheap_role"] = "camera"
    return obj


def load_background(plan: FootagePlan) -> bpy.types.ID | None:
    """Load the footage datablock (a movie clip or an image); None when there is nothing to load.

    Raises RuntimeError when Blender cannot read the file (the caller turns it into a warning).
    """
    if plan.kind is None:
        return None
    if plan.kind == "movie":
        return bpy.data.movieclips.load(plan.path, check_existing=False)
    image = bpy.data.images.load(plan.path, check_existing=False)
    if plan.kind == "sequence":
        image.source = "SEQUENCE"
    return image


def size_warnings(footage: bpy.types.ID, width: int, height: int) -> list[str]:
    """What to tell the user when Blender reads the footage at another size than the backend did."""
    shown = tuple(int(v) for v in footage.size)
    if shown == (0, 0) or shown == (width, height):
        return []
    if shown == (height, width):  # a phone's rotation flag, which Blender before 4.5 ignores
        return [f"this Blender shows the footage on its side ({shown[0]}x{shown[1]}; the video's rotation "
                f"flag makes it {width}x{height}): the background does not line up; Blender 4.5 and newer "
                "read the flag, or convert the clip to upright frames"]
    return [f"Blender reads the footage at {shown[0]}x{shown[1]}, the result was made at {width}x{height}: "
            "the background does not line up"]


def set_background(camera: bpy.types.Camera, footage: bpy.types.ID | None, plan: FootagePlan, frame_start: int,
                   n_frames: int) -> list[bpy.types.ID]:
    """Show `footage` behind the camera from scene frame `frame_start`; returns the images/clips the
    camera showed before (the caller may remove those nobody else uses)."""
    previous = [bg.clip if bg.source == "MOVIE_CLIP" else bg.image for bg in camera.background_images]
    camera.background_images.clear()
    if footage is None:
        camera.show_background_images = False
        return [p for p in previous if p is not None]
    background = camera.background_images.new()
    background.frame_method = "STRETCH"  # render size = footage size: the frame maps one to one
    background.alpha = 1.0
    if isinstance(footage, bpy.types.MovieClip):
        footage.frame_start = frame_start
        footage.frame_offset = plan.offset
        background.source = "MOVIE_CLIP"
        background.use_camera_clip = False
        background.clip = footage
    else:
        background.source = "IMAGE"
        background.image = footage
        user = background.image_user
        if footage.source == "SEQUENCE":
            user.frame_start = frame_start
            user.frame_offset = plan.offset
            user.frame_duration = n_frames
            user.use_auto_refresh = True
    camera.show_background_images = True
    return [p for p in previous if p is not None]


def set_render_size(scene: bpy.types.Scene, width: int, height: int) -> None:
    render = scene.render
    render.resolution_x = width
    render.resolution_y = height
    render.resolution_percentage = 100
    render.pixel_aspect_x = 1.0
    render.pixel_aspect_y = 1.0
