"""Gaussian colours from the footage: each surfel takes the colour the views that see it best show.

Per view, a surfel's centre is projected through the result's camera; it counts only where the
z-buffer says it is not occluded, weighted by cos(angle between its normal and the ray to the
camera) to the power SHARPNESS, so a frontal view of a region outweighs a grazing one. The image
is blurred to about the surfels' footprint before sampling, so each colour is the area's mean, not
one pixel's. Surfels no view sees get a neutral grey and a low opacity.
"""

from __future__ import annotations

import cv2
import numpy as np

from sheap_blender.core.camera import CAMERA_POSITION
from sheap_blender.core.gaussians import GaussianBinding, pose_gaussians

from ..review.raster import rasterise_depth, visible
from .views import View

SHARPNESS = 4.0  # cos^SHARPNESS: how strongly the most frontal views win
MIN_COS = 0.15  # a view closer to grazing than this never colours a surfel
DEPTH_TOLERANCE = 0.004  # metres: a surfel this far behind the nearest surface still counts as seen
NEUTRAL_COLOUR = 0.5
SEEN_OPACITY, UNSEEN_OPACITY = 0.95, 0.05


def visible_head_faces(vertices: np.ndarray, faces: np.ndarray, resolution: int = 256,
                       n_directions: int = 40, lowest_elevation_deg: float = -35.0) -> np.ndarray:
    """(T,) bool: triangles with a corner seen in some orthographic view from around and above the head.

    Drops what no camera sees: eyeballs' backs inside the head, a closed mouth's interior, the inside
    of the neck (views from below the neck are left out). `vertices` is one mesh state (V, 3).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    centre = vertices.mean(0)
    radius = np.linalg.norm(vertices - centre, axis=1).max()
    # directions spread on the sphere (golden spiral) above `lowest_elevation_deg`
    k = np.arange(n_directions) + 0.5
    lowest = np.sin(np.radians(lowest_elevation_deg))
    up = 1 - k / n_directions * (1 - lowest)  # the y component, from the top down to `lowest`
    ring = np.sqrt(1 - up**2)
    angle = np.pi * (1 + 5**0.5) * k
    directions = np.stack([ring * np.sin(angle), up, ring * np.cos(angle)], axis=1)  # toward the viewer
    seen = np.zeros(len(vertices), dtype=bool)
    pixel = 2 * radius / resolution
    for d in directions:
        helper = np.array([1.0, 0, 0]) if abs(d[1]) > 0.9 else np.array([0, 1.0, 0])
        right = np.cross(helper, d)
        right /= np.linalg.norm(right)
        up_axis = np.cross(d, right)  # image rows: only visibility is asked, so the flip is harmless
        local = vertices - centre
        uv = np.stack([local @ right, local @ up_axis], axis=1) / pixel + resolution / 2
        depth = radius - local @ d
        zbuffer = rasterise_depth(uv, depth, faces, resolution, resolution, perspective=False)
        seen |= visible(uv, depth, zbuffer, tolerance=1.5 * pixel, neighbourhood=0)
    return seen[faces].any(axis=1)


def _blurred(view: View, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(view.image, (0, 0), sigma) if sigma > 0.3 else view.image


def footprint_sigma(view: View, centres: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(G,) rough projected radius (window pixels) of each surfel: its mean in-plane scale seen head-on."""
    _, depth = view.project(centres)
    focal = view.intrinsics()[0, 0]
    return scales.mean(-1) * focal / np.maximum(depth, 1e-6)


def view_weights(view: View, centres: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (G,) of one view for each surfel (0 where hidden or grazing) and the window pixels (G, 2)."""
    uv, depth = view.project(centres)
    to_camera = np.asarray(CAMERA_POSITION) - centres
    to_camera /= np.linalg.norm(to_camera, axis=-1, keepdims=True)
    cos = np.einsum("gc,gc->g", normals, to_camera)
    seen = visible(uv, depth, view.zbuffer, DEPTH_TOLERANCE) & (cos > MIN_COS)
    return np.where(seen, np.clip(cos, 0, 1) ** SHARPNESS, 0.0), uv


def sample_image(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear RGB (N, 3) at continuous pixel coordinates (pixel i spans [i, i+1])."""
    points = np.asarray(uv, dtype=np.float32).reshape(-1, 2) - 0.5
    n = len(points)
    side = 1024  # remap's maps must stay under 32767 on a side: lay the points out as a (rows, 1024) grid
    maps = np.zeros((-(-n // side) * side, 2), np.float32)
    maps[:n] = points
    maps = maps.reshape(-1, side, 2)
    sampled = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(-1, 3)[:n]


def project_colours(binding: GaussianBinding, faces: np.ndarray, views: list[View]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colours (G, 3) 0..1, opacities (G,) and the best cos-weight (G,) of every surfel from the views."""
    total = np.zeros((binding.count, 3))
    weight_sum = np.zeros(binding.count)
    best = np.zeros(binding.count)
    for view in views:
        centres, axes, scales = pose_gaussians(view.vertices.astype(np.float64), faces, binding)
        weights, uv = view_weights(view, centres, axes[..., :, 2])
        sigma = float(np.median(footprint_sigma(view, centres, scales))) * 0.5
        colours = sample_image(_blurred(view, sigma), uv)
        total += weights[:, None] * colours
        weight_sum += weights
        best = np.maximum(best, weights)
    seen = weight_sum > 0
    colour = np.full((binding.count, 3), NEUTRAL_COLOUR)
    colour[seen] = total[seen] / weight_sum[seen, None]
    opacity = np.where(seen, SEEN_OPACITY, UNSEEN_OPACITY)
    return np.clip(colour, 0, 1).astype(np.float32), opacity.astype(np.float32), best
