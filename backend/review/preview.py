"""`preview`: a review video of a result without Blender: the posed head drawn over every footage frame.

Each result row's FLAME vertices (cam_trans included) go through SHeaP's camera and that row's crop
box (`sheap_blender.core.camera`: the projection the Blender camera reproduces) onto the footage
frame; `raster.rasterise_faces` gives the nearest face per pixel in a window around the head,
which is drawn flat-shaded (a clay colour lit from the upper left, blended over the footage) or as
the edges of the visible triangles. Every frame carries its footage frame number; frames without
a face (`valid` = 0) get a red border and "no face". Frames are read one at a time and FLAME runs
in chunks, so memory does not grow with the clip; the video is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sheap_blender.core.atomic_file import replacing
from sheap_blender.core.camera import CAMERA_POSITION, project_to_footage
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.footage_path import resolve_footage
from sheap_blender.core.result.result_format import Result, read_result

from ..footage.reader import Footage, open_footage
from ..model.flame_eval import vertex_chunks
from .raster import rasterise_faces

STYLES = ("shaded", "wireframe")
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
CLAY = np.array([205.0, 198.0, 190.0])  # RGB
WIRE = (120, 255, 140)  # RGB
NO_FACE = (255, 40, 40)  # RGB
LIGHT = np.array([-0.45, 0.55, 1.0]) / np.linalg.norm([-0.45, 0.55, 1.0])  # towards the key light (FLAME axes)
CHUNK = 64  # result rows per FLAME evaluation


@dataclass
class PreviewStats:
    frames: int
    invalid: int


def footage_of(result_path: Path, result: Result) -> Footage:
    """The result's footage, found as Blender finds it; moved or changed footage is one line naming it."""
    named = result.metadata.get("footage", "")
    if not named:
        raise InputError(result_path, "the result names no footage")
    path = resolve_footage(named, result_path)
    if path is None:
        raise InputError(named, f"footage of {result_path.name} not found (moved? looked beside the result and "
                                "in the working folder)")
    footage = open_footage(path, result.fps)
    if (footage.width, footage.height) != (result.width, result.height):
        raise InputError(path, f"is {footage.width}x{footage.height}, but {result_path.name} was made from "
                               f"{result.width}x{result.height} footage")
    return footage


def _window(uv: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (exclusive) of the frame around the projected head, or None when it is off-frame."""
    finite = uv[np.all(np.isfinite(uv), axis=1)]
    if not len(finite):
        return None
    x0, y0 = np.maximum(np.floor(finite.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(finite.max(0)).astype(int) + 2, (width, height))
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def face_shading(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(T,) brightness of each face: ambient + key light + a little from the camera, two-sided."""
    tri = verts[faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-20)
    to_camera = np.asarray(CAMERA_POSITION) - tri.mean(axis=1)
    to_camera /= np.maximum(np.linalg.norm(to_camera, axis=1, keepdims=True), 1e-20)
    facing = np.sum(normal * to_camera, axis=1)
    normal *= np.where(facing < 0, -1.0, 1.0)[:, None]  # the side the camera sees
    return 0.22 + 0.58 * np.clip(normal @ LIGHT, 0, None) + 0.25 * np.abs(facing)


def draw_head(image: np.ndarray, verts: np.ndarray, faces: np.ndarray, box: np.ndarray, fov_deg: float,
              style: str, opacity: float) -> None:
    """Draw the head posed as `verts` (FLAME axes) onto the RGB `image` in place."""
    height, width = image.shape[:2]
    uv = project_to_footage(verts[None].astype(np.float64), box[None], fov_deg)[0]
    window = _window(uv, width, height)
    if window is None:
        return
    x0, y0, x1, y1 = window
    depth = CAMERA_POSITION[2] - verts[:, 2].astype(np.float64)
    _, face_id = rasterise_faces(uv - (x0, y0), depth, faces, x1 - x0, y1 - y0)
    covered = face_id >= 0
    if style == "shaded":
        part = image[y0:y1, x0:x1]
        colour = np.clip(face_shading(verts, faces)[face_id[covered]][:, None] * CLAY, 0, 255)
        part[covered] = np.round(part[covered] * (1.0 - opacity) + colour * opacity).astype(np.uint8)
        return
    visible = np.unique(face_id[covered])
    if len(visible):
        shift = 4  # sub-pixel vertex positions (1/16 px)
        polygons = np.round(uv[faces[visible]] * (1 << shift)).astype(np.int32)
        overlay = image.copy()
        cv2.polylines(overlay, list(polygons), True, WIRE, 1, cv2.LINE_AA, shift)
        cv2.addWeighted(overlay, opacity, image, 1.0 - opacity, 0.0, dst=image)


def draw_labels(image: np.ndarray, frame: int, valid: bool) -> None:
    """The footage frame number (top left) and, on a frame without a face, a red border and "no face"."""
    height, width = image.shape[:2]
    scale = max(0.35, height / 720 * 0.8)
    thickness = max(1, round(scale * 2))
    origin = (round(8 * scale) + 2, round(28 * scale) + 2)
    for colour, extra in (((0, 0, 0), 2), ((255, 255, 255), 0)):
        cv2.putText(image, f"frame {frame}", origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness + extra,
                    cv2.LINE_AA)
    if not valid:
        border = max(3, height // 80)
        cv2.rectangle(image, (0, 0), (width - 1, height - 1), NO_FACE, 2 * border)
        cv2.putText(image, "no face", (origin[0], origin[1] + round(32 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    NO_FACE, thickness, cv2.LINE_AA)


def _writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()]), fps,
                             (width, height))
    if not writer.isOpened():
        raise InputError(path, "OpenCV cannot write this video")
    return writer


def _next_frame(frames: Iterator[tuple[int, np.ndarray]], wanted: int, footage: Path, result_path: Path) -> np.ndarray:
    """Footage frame `wanted` from the stream (frames before it, a gap in the result, are skipped)."""
    for number, rgb in frames:
        if number == wanted:
            return rgb
    raise InputError(footage, f"ends before frame {wanted}, which {result_path.name} needs (cannot be decoded)")


def write_preview(result_path: Path, flame_path: Path, output: Path, style: str = "shaded", opacity: float = 0.75,
                  device: str = "cpu", on_progress: Callable[[int, int], None] | None = None) -> PreviewStats:
    """Draw the result's head over every one of its footage frames into the video `output`."""
    if output.suffix.lower() not in FOURCC:
        raise InputError(output, f"unknown video type: use {', '.join(sorted(FOURCC))}")
    if style not in STYLES:
        raise InputError(None, f"style {style!r}: use {' or '.join(STYLES)}")
    if not 0.0 < opacity <= 1.0:
        raise InputError(None, f"opacity {opacity}: use a value above 0, up to 1")
    result = read_result(result_path)
    model = load_flame(flame_path)
    footage = footage_of(result_path, result)
    index = result.frame_index
    if index.min() < 0 or index.max() >= footage.frame_count:
        raise InputError(footage.path, f"holds {footage.frame_count} frames, {result_path.name} runs to frame "
                                       f"{int(index.max())}")
    if np.any(np.diff(index) <= 0):
        raise InputError(result_path, "frame_index is not increasing")
    boxes = result.params["crop_box"].astype(np.float64)
    frames = footage.frames(int(index[0]), int(index[-1]) + 1)
    done = 0
    with replacing(output) as tmp:
        video = tmp.with_name(tmp.name + output.suffix)  # the writer picks the container by the name's end
        try:
            writer = _writer(video, result.fps, footage.width, footage.height)
            try:
                for rows, verts in vertex_chunks(model, result, device, CHUNK):
                    for row in range(rows.start, rows.stop):
                        wanted = int(index[row])
                        rgb = _next_frame(frames, wanted, footage.path, result_path)
                        draw_head(rgb, verts[row - rows.start], model.faces, boxes[row], result.fov_deg, style,
                                  opacity)
                        draw_labels(rgb, wanted, bool(result.valid[row]))
                        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                        done += 1
                        if on_progress is not None:
                            on_progress(done, result.n_frames)
            finally:
                writer.release()
            os.replace(video, tmp)
        finally:
            video.unlink(missing_ok=True)
    return PreviewStats(done, int((~result.valid).sum()))
