"""SHeaP's camera, and the footage camera that the per-frame crop boxes turn it into.

SHeaP images a 224 x 224 crop with a pinhole at (0, 0, 1) in FLAME space, looking toward -Z with
+Y up (OpenGL), vertical field of view `fov_deg`. A point (x, y, z) lands on crop pixel

    u = 112 + f * x / (1 - z),   v = 112 - f * y / (1 - z),   f = 112 / tan(fov / 2)

and crop pixel (u, v) is footage pixel (x0 + u * (x1 - x0) / 224, y0 + v * (y1 - y0) / 224) for
that frame's crop box (x0, y0, x1, y1). Pixel coordinates are continuous: pixel i spans [i, i+1],
x right, y down.

Composing the two: on the whole footage frame the point is imaged by a pinhole at the same place
with focal length (box_w / 2) / tan(fov / 2) pixels and principal point at the box centre. So the
crop folds exactly into per-frame camera intrinsics (focal length and lens shift), with the camera
itself never moving. Blender's camera: `sensor_fit = 'HORIZONTAL'`, so the focal length in pixels
is `lens / sensor_width * render_width`, and both shifts are in units of the render width.
"""

from __future__ import annotations

import math

import numpy as np

SHEAP_FOV_DEG = 14.2539
CROP_SIZE = 224
CAMERA_POSITION = (0.0, 0.0, 1.0)  # FLAME space; looks toward -Z, +Y up
SENSOR_WIDTH_MM = 36.0


def crop_focal(fov_deg: float = SHEAP_FOV_DEG, crop_size: int = CROP_SIZE) -> float:
    """Focal length of SHeaP's camera in crop pixels."""
    return (crop_size / 2) / math.tan(math.radians(fov_deg) / 2)


def project_to_crop(points: np.ndarray, fov_deg: float = SHEAP_FOV_DEG, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(..., 3) FLAME-space points -> (..., 2) crop pixel coordinates (u right, v down)."""
    p = np.asarray(points, dtype=np.float64)
    f = crop_focal(fov_deg, crop_size)
    depth = CAMERA_POSITION[2] - p[..., 2]
    half = crop_size / 2
    return np.stack([half + f * p[..., 0] / depth, half - f * p[..., 1] / depth], axis=-1)


def crop_to_footage(uv: np.ndarray, boxes: np.ndarray, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(F, ..., 2) crop pixels with (F, 4) boxes x0, y0, x1, y1 -> (F, ..., 2) footage pixels."""
    uv = np.asarray(uv, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    extra = (1,) * (uv.ndim - 2)
    x0, y0, x1, y1 = (boxes[:, i].reshape((-1,) + extra) for i in range(4))
    return np.stack([x0 + uv[..., 0] * (x1 - x0) / crop_size, y0 + uv[..., 1] * (y1 - y0) / crop_size], axis=-1)


def project_to_footage(points: np.ndarray, boxes: np.ndarray, fov_deg: float = SHEAP_FOV_DEG) -> np.ndarray:
    """(F, ..., 3) FLAME-space points of each frame -> (F, ..., 2) footage pixels, through SHeaP's
    camera and that frame's crop box (the reference the Blender camera must reproduce)."""
    return crop_to_footage(project_to_crop(points, fov_deg), boxes)


def footage_intrinsics(boxes: np.ndarray, fov_deg: float = SHEAP_FOV_DEG) -> dict[str, np.ndarray]:
    """Per-frame pinhole of the whole footage frame: fx, fy (pixels), cx, cy (pixels, y down)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    tan_half = math.tan(math.radians(fov_deg) / 2)
    return {
        "fx": (boxes[:, 2] - boxes[:, 0]) / 2 / tan_half,
        "fy": (boxes[:, 3] - boxes[:, 1]) / 2 / tan_half,
        "cx": (boxes[:, 0] + boxes[:, 2]) / 2,
        "cy": (boxes[:, 1] + boxes[:, 3]) / 2,
    }


def non_square_boxes(boxes: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """(F,) bool: boxes whose height differs from their width by more than `tolerance` (relative).

    The crop is resized to a square, so a non-square box stretches the image; a Blender camera
    (square pixels) can follow only one of the two focal lengths. The importer uses the width's.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.abs(w - h) > tolerance * np.maximum(np.abs(w), 1e-9)


def blender_camera(
    boxes: np.ndarray, width: int, height: int, fov_deg: float = SHEAP_FOV_DEG, sensor_width: float = SENSOR_WIDTH_MM
) -> dict[str, np.ndarray]:
    """Per-frame Blender camera settings reproducing the footage pinhole of each crop box.

    With `sensor_fit = 'HORIZONTAL'`, render size width x height and pixel aspect 1:
    lens (mm) = fx * sensor_width / width; shift_x = (width / 2 - cx) / width;
    shift_y = (cy - height / 2) / width. Blender's shift moves the view window (units of the
    fitted dimension, y up), so the image content, and the principal point with it, moves the
    other way: a principal point right of / below the centre is a negative / positive shift.
    """
    k = footage_intrinsics(boxes, fov_deg)
    return {
        "lens": k["fx"] * sensor_width / width,
        "shift_x": (width / 2 - k["cx"]) / width,
        "shift_y": (k["cy"] - height / 2) / width,
    }


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """(F,) bool: boxes with positive, finite size."""
    boxes = np.asarray(boxes, dtype=np.float64)
    finite = np.all(np.isfinite(boxes), axis=-1)
    return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def blender_fps(fps: float) -> tuple[int, float]:
    """Frames per second as Blender's (fps, fps_base): 29.97 -> (30, 1.001), 25 -> (25, 1.0)."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    whole = max(1, round(fps))
    if abs(fps - whole) < 1e-6 * whole:
        return whole, 1.0
    ntsc = round(fps * 1.001)
    if ntsc >= 1 and abs(fps - ntsc / 1.001) < 2e-3:
        return ntsc, 1.001
    return whole, whole / fps
