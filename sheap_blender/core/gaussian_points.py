"""Per-point data of the Gaussian preview in Blender (pure NumPy): what its geometry nodes read.

Each point stores its triangle's three vertex indices and its binding in the triangle's units, so
the nodes rebuild `pose_gaussians`' centre from the head's current vertices on every frame:
  centre = b0 v0 + b1 v1 + b2 v2 + offset * s * n,   radius = radius_factor * s
with s = sqrt(|(v1 - v0) x (v2 - v0)|) and n the triangle's unit normal (core/gaussians.py).
A point is drawn as a sphere, so one radius stands for the surfel's two in-plane scales: the
radius of the disc with the same area, sqrt(scale_1 * scale_2).
"""

from __future__ import annotations

import numpy as np

from .gaussians import GaussianBinding

# attribute name -> Blender attribute type (all on the POINT domain)
ATTRIBUTES = {
    "sheap_v0": "INT",  # the bound triangle's vertices (indices into the head mesh)
    "sheap_v1": "INT",
    "sheap_v2": "INT",
    "sheap_bary": "FLOAT_VECTOR",  # barycentric weights b0, b1, b2
    "sheap_offset": "FLOAT",  # along the unit normal, in units of s
    "sheap_radius": "FLOAT",  # the point's radius in units of s
    "sheap_scale": "FLOAT2",  # the surfel's two in-plane scales, in units of s
    "sheap_opacity": "FLOAT",  # 0..1
    "sheap_colour": "FLOAT_COLOR",  # linear RGBA (converted from the result's sRGB)
}


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The sRGB transfer function undone (IEC 61966-2-1), values clipped to 0..1."""
    c = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def point_attributes(faces: np.ndarray, binding: GaussianBinding) -> dict[str, np.ndarray]:
    """Attribute name (ATTRIBUTES) -> per-point values, in the shape Blender's foreach_set takes (flattened)."""
    corners = np.asarray(faces)[binding.face].astype(np.int32)  # (G, 3)
    colour = np.ones((binding.count, 4))
    colour[:, :3] = srgb_to_linear(binding.colour)
    scale = np.abs(binding.scale.astype(np.float64))
    values = {
        "sheap_v0": corners[:, 0],
        "sheap_v1": corners[:, 1],
        "sheap_v2": corners[:, 2],
        "sheap_bary": binding.bary,
        "sheap_offset": binding.offset,
        "sheap_radius": np.sqrt(scale[:, 0] * scale[:, 1]),
        "sheap_scale": scale,
        "sheap_opacity": np.clip(binding.opacity, 0.0, 1.0),
        "sheap_colour": colour,
    }
    out = {}
    for name, kind in ATTRIBUTES.items():
        dtype = np.int32 if kind == "INT" else np.float32
        out[name] = np.ascontiguousarray(values[name], dtype=dtype).ravel()
    return out
