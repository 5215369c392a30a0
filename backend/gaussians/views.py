"""Views of the head for colouring Gaussians: chosen frames, their footage, posed mesh and z-buffer.

A view is one result row: the footage frame cut to a window around the projected head (scaled so
its longer side is at most `max_size` pixels), FLAME evaluated for that row (cam_trans included)
and the mesh's depth rasterised through the result's camera (`sheap_blender.core.camera`:
SHeaP's pinhole and the row's crop box). Window pixel = (footage pixel - origin) * scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sheap_blender.core.camera import CAMERA_POSITION, footage_intrinsics, project_to_footage
from sheap_blender.core.flame.model import FlameModel
from sheap_blender.core.result.result_format import Result
from sheap_blender.core.rotation import axis_angle_to_matrix

from ..footage.reader import Footage
from ..model.flame import Flame
from ..review.raster import rasterise_depth

WINDOW_MARGIN = 0.08  # of the projected head's size, around it


@dataclass
class View:
    row: int  # result row
    frame: int  # footage frame
    image: np.ndarray  # (h, w, 3) float32 RGB 0..1, the window of the footage
    origin: np.ndarray  # (2,) footage pixel of the window's corner
    scale: float  # window pixels per footage pixel
    box: np.ndarray  # (4,) the row's crop box
    fov_deg: float
    vertices: np.ndarray  # (V, 3) float32 posed FLAME vertices, cam_trans included
    zbuffer: np.ndarray  # (h, w) depth (metres along the view axis) of the nearest surface, inf off the head

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    @property
    def head_mask(self) -> np.ndarray:
        return np.isfinite(self.zbuffer)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) FLAME-space points -> window pixels (..., 2) and depth along the view (...)."""
        points = np.asarray(points, dtype=np.float64)
        footage = project_to_footage(points[None], self.box[None], self.fov_deg)[0]
        return (footage - self.origin) * self.scale, CAMERA_POSITION[2] - points[..., 2]

    def intrinsics(self) -> np.ndarray:
        """(3, 3) pinhole matrix of the window in OpenCV axes (x right, y down, z forward = -Z of FLAME)."""
        k = footage_intrinsics(self.box[None], self.fov_deg)
        s = self.scale
        return np.array([[k["fx"][0] * s, 0, (k["cx"][0] - self.origin[0]) * s],
                         [0, k["fy"][0] * s, (k["cy"][0] - self.origin[1]) * s], [0, 0, 1]])


def head_yaw(result: Result) -> np.ndarray:
    """(F,) yaw of the head (radians, about FLAME's +Y) from the torso and neck rotations."""
    rotation = axis_angle_to_matrix(result.params["torso_pose"]) @ axis_angle_to_matrix(result.params["neck_pose"])
    return np.arctan2(rotation[:, 0, 2], rotation[:, 2, 2])


def choose_rows(result: Result, count: int) -> np.ndarray:
    """Up to `count` rows spread over the clip and over head yaw (farthest-point in time x yaw).

    Starts from the most frontal frame with a face; frames without a face or flagged as outliers
    are not chosen while there are others.
    """
    # frames with a face whose prediction was kept: an outlier's parameters were replaced by its
    # neighbours', so its mesh does not match its image
    outlier = np.asarray(result.extra.get("outlier", np.zeros(result.n_frames)), dtype=bool).reshape(-1)
    candidates = np.flatnonzero(result.valid & ~outlier)
    if len(candidates) == 0:
        candidates = np.flatnonzero(result.valid) if result.valid.any() else np.arange(result.n_frames)
    yaw = head_yaw(result)[candidates]
    time = candidates / max(result.n_frames - 1, 1)
    spread = max(float(np.ptp(yaw)), np.radians(10.0))  # a still head: time decides
    features = np.stack([time, (yaw - yaw.min()) / spread], axis=1)
    chosen = [int(np.argmin(np.abs(yaw)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    for _ in range(min(count, len(candidates)) - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(features - features[chosen[-1]], axis=1))
    return candidates[np.array(chosen)]


def evaluate_rows(model: FlameModel, result: Result, rows: np.ndarray, device: torch.device | str = "cpu"
                  ) -> np.ndarray:
    """(len(rows), V, 3) float32 posed FLAME vertices of those result rows."""
    flame = Flame(model).to(device)
    with torch.inference_mode():
        return flame.vertices(result.flame_params().rows(rows)).cpu().numpy()


def load_views(model: FlameModel, result: Result, footage: Footage, rows: np.ndarray,
               device: torch.device | str = "cpu", max_size: int = 512) -> list[View]:
    """The views of those result rows (footage read in one pass)."""
    rows = np.asarray(rows, dtype=np.int64)
    vertices = evaluate_rows(model, result, rows, device)
    frames = footage.read_frames(result.frame_index[rows])
    fov = result.fov_deg
    views = []
    for row, verts in zip(rows, vertices):
        box = result.params["crop_box"][row].astype(np.float64)
        frame = int(result.frame_index[row])
        rgb = frames[frame]
        pixels = project_to_footage(verts[None].astype(np.float64), box[None], fov)[0]
        low, high = pixels.min(0), pixels.max(0)
        margin = WINDOW_MARGIN * (high - low).max()
        size = np.array([rgb.shape[1], rgb.shape[0]])
        origin = np.clip(np.floor(low - margin), 0, size - 1)
        corner = np.clip(np.ceil(high + margin), origin + 1, size)
        extent = corner - origin
        scale = min(1.0, max_size / extent.max())
        out_w, out_h = (max(1, int(round(e * scale))) for e in extent)
        crop = rgb[int(origin[1]):int(corner[1]), int(origin[0]):int(corner[0])]
        # exact scale per axis after rounding: use the horizontal one (they differ by under a pixel)
        scale = out_w / extent[0]
        image = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
        view = View(int(row), frame, image.astype(np.float32) / 255.0, origin.astype(np.float64), float(scale),
                    box, fov, verts, np.empty((0, 0)))
        uv, depth = view.project(verts)
        view.zbuffer = rasterise_depth(uv, depth, model.faces, out_w, out_h)
        views.append(view)
    return views
