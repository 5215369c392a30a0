"""2D Gaussians (surfels) bound to FLAME's triangles: the binding, and posing it on any mesh state.

Each Gaussian lives in its parent triangle's local frame, so it follows every deformation:
  e1 = unit(v1 - v0), n = unit((v1 - v0) x (v2 - v0)), e2 = n x e1   (right-handed, columns of R_t)
  s  = sqrt(|(v1 - v0) x (v2 - v0)|)                                   (the triangle's size: sqrt(2 area))
  centre   = b0 v0 + b1 v1 + b2 v2 + offset * s * n
  rotation = R_t @ quaternion_to_matrix(rotation)                       (the surfel's axes; its normal is column 2)
  scales   = scale * s                                                  (two in-plane scales; the surfel is flat)
The result file carries the binding as the tensors in TENSORS (docs/result-format.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .rotation import quaternion_to_matrix

FLAT_SCALE = 0.01  # a surfel as a 3D Gaussian (PLY, rasterisers): its normal scale / its smaller in-plane one

# result tensor name -> (width of a row, or 0 for a (G,) vector; dtype)
TENSORS = {
    "gaussian_face": (0, np.int32),  # parent triangle (index into FLAME's faces)
    "gaussian_bary": (3, np.float32),  # barycentric position, rows sum to 1
    "gaussian_offset": (0, np.float32),  # along the triangle's unit normal, in units of s
    "gaussian_rotation": (4, np.float32),  # unit quaternion (w, x, y, z) in the triangle's frame
    "gaussian_scale": (2, np.float32),  # in-plane scales, in units of s (linear, not log)
    "gaussian_opacity": (0, np.float32),  # 0..1
    "gaussian_colour": (3, np.float32),  # sRGB, 0..1
}


@dataclass
class GaussianBinding:
    face: np.ndarray
    bary: np.ndarray
    offset: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    opacity: np.ndarray
    colour: np.ndarray

    @property
    def count(self) -> int:
        return int(self.face.shape[0])

    def to_tensors(self) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(getattr(self, name.removeprefix("gaussian_")), dtype=dtype)
                for name, (_, dtype) in TENSORS.items()}


def binding_from_tensors(path: str | os.PathLike, tensors: dict[str, np.ndarray],
                         n_faces: int | None = None) -> GaussianBinding | None:
    """The binding held in a result's tensors, None when it has none; InputError when it is malformed."""
    present = [name for name in TENSORS if name in tensors]
    if not present:
        return None
    path = Path(path)
    if len(present) != len(TENSORS):
        missing = ", ".join(name for name in TENSORS if name not in tensors)
        raise InputError(path, f"result has Gaussians but lacks {missing}")
    count = tensors["gaussian_face"].shape[0]
    fields = {}
    for name, (width, dtype) in TENSORS.items():
        expected = (count,) if width == 0 else (count, width)
        array = tensors[name]
        if array.shape != expected:
            raise InputError(path, f"{name} has shape {array.shape}, expected {expected}")
        if not np.all(np.isfinite(array)):
            raise InputError(path, f"{name} holds NaN or infinite values")
        fields[name.removeprefix("gaussian_")] = array.astype(dtype)
    if n_faces is not None and count and (fields["face"].min() < 0 or fields["face"].max() >= n_faces):
        raise InputError(path, f"gaussian_face points outside FLAME's {n_faces} triangles")
    return GaussianBinding(**fields)


def triangle_frames(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle: frame (..., T, 3, 3) with columns e1, e2, n, and size s (..., T)."""
    v0, v1, v2 = (vertices[..., faces[:, k], :] for k in range(3))
    edge1, edge2 = v1 - v0, v2 - v0
    cross = np.cross(edge1, edge2)
    double_area = np.linalg.norm(cross, axis=-1)
    normal = cross / np.maximum(double_area, 1e-20)[..., None]
    e1 = edge1 / np.maximum(np.linalg.norm(edge1, axis=-1), 1e-20)[..., None]
    e2 = np.cross(normal, e1)
    return np.stack([e1, e2, normal], axis=-1), np.sqrt(double_area)


def pose_gaussians(vertices: np.ndarray, faces: np.ndarray, binding: GaussianBinding
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussians on a mesh state (V, 3) or (N, V, 3): centres (..., G, 3), axes (..., G, 3, 3), scales (..., G, 2)."""
    corners = vertices[..., faces[binding.face], :]  # (..., G, 3 corners, 3)
    frames, size = triangle_frames(vertices, faces[binding.face])
    centres = np.einsum("gk,...gkc->...gc", binding.bary, corners)
    centres = centres + (binding.offset * size)[..., None] * frames[..., :, 2]
    axes = frames @ quaternion_to_matrix(binding.rotation)
    scales = binding.scale * size[..., None]
    return centres, axes, scales


def scales_3d(scales: np.ndarray) -> np.ndarray:
    """(..., 2) in-plane scales -> (..., 3) with the surfel's thin third scale along its normal."""
    scales = np.maximum(np.asarray(scales, dtype=np.float64), 1e-12)
    return np.concatenate([scales, FLAT_SCALE * scales.min(-1, keepdims=True)], axis=-1)


def sample_binding(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0,
                   face_mask: np.ndarray | None = None) -> GaussianBinding:
    """`count` Gaussians spread over the surface by triangle area (uniform per unit area), flat on it.

    Each starts as a disc covering about its share of the area, mid-grey and nearly opaque; colours
    and opacities are filled in from the footage later. `face_mask` limits them to some triangles.
    """
    rng = np.random.default_rng(seed)
    _, size = triangle_frames(vertices, faces)
    area = 0.5 * size**2
    if face_mask is not None:
        area = np.where(face_mask, area, 0.0)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    # uniform barycentric sampling (the square-root trick)
    r1, r2 = rng.random(count), rng.random(count)
    root = np.sqrt(r1)
    bary = np.stack([1 - root, root * (1 - r2), root * r2], axis=1)
    angle = rng.uniform(0, np.pi, count)  # random in-plane spin: quaternion about the normal (local z)
    rotation = np.stack([np.cos(angle / 2), np.zeros(count), np.zeros(count), np.sin(angle / 2)], axis=1)
    # a disc of radius r covers pi r^2; give each about its share of the total area, in units of s
    radius = np.sqrt(area.sum() / count / np.pi) / np.maximum(size[face], 1e-12)
    scale = np.repeat(radius[:, None], 2, axis=1)
    return GaussianBinding(
        face=face.astype(np.int32), bary=bary.astype(np.float32), offset=np.zeros(count, np.float32),
        rotation=rotation.astype(np.float32), scale=scale.astype(np.float32),
        opacity=np.full(count, 0.9, np.float32), colour=np.full((count, 3), 0.5, np.float32),
    )
