"""`export-ply`: a result's Gaussians posed at one footage frame, as a standard 3D Gaussian splatting PLY.

Binary little-endian, one `vertex` element with float properties, in this order (the reference
3DGS layout that splat viewers read):
    x y z                 centre (metres, FLAME axes)
    nx ny nz              the surfel's normal
    f_dc_0 f_dc_1 f_dc_2  (rgb - 0.5) / C0, C0 = 0.28209479177387814 (degree-0 spherical harmonic)
    opacity               logit(opacity)
    scale_0 scale_1 scale_2  log of the two in-plane scales and of a flat third (1% of the smaller)
    rot_0..rot_3          unit quaternion (w, x, y, z) of the surfel's axes
gsplat's `export_splats` writes the same properties but without nx ny nz, so this writer is used
everywhere (it needs neither gsplat nor CUDA). The file is written under a temporary name and renamed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import logit

from sheap_blender.core.atomic_file import replacing
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.gaussians import GaussianBinding, binding_from_tensors, pose_gaussians, scales_3d
from sheap_blender.core.result.result_format import read_result
from sheap_blender.core.rotation import matrix_to_quaternion

SH_C0 = 0.28209479177387814
PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def splat_rows(centres: np.ndarray, axes: np.ndarray, scales: np.ndarray, colour: np.ndarray,
               opacity: np.ndarray) -> np.ndarray:
    """(G, 17) float32 rows in PROPERTIES order, activations inverted as viewers expect."""
    opacity_logit = logit(np.clip(np.asarray(opacity, dtype=np.float64), 1e-6, 1 - 1e-6))
    columns = [centres, axes[..., :, 2], (np.asarray(colour, dtype=np.float64) - 0.5) / SH_C0,
               opacity_logit[:, None], np.log(scales_3d(scales)), matrix_to_quaternion(axes)]
    return np.concatenate([np.asarray(c, dtype=np.float64) for c in columns], axis=1).astype(np.float32)


def write_splat_ply(path: Path, rows: np.ndarray) -> None:
    """Write (G, 17) rows as a binary little-endian PLY, atomically."""
    header = "".join(["ply\n", "format binary_little_endian 1.0\n", f"element vertex {len(rows)}\n",
                      *(f"property float {name}\n" for name in PROPERTIES), "end_header\n"]).encode("ascii")
    with replacing(path) as tmp, open(tmp, "xb") as out:
        out.write(header)
        out.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())


def posed_binding(result_path: Path, flame_path: Path, frame: int, device: str = "cpu"
                  ) -> tuple[GaussianBinding, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The result's binding and its Gaussians posed at footage frame `frame` (centres, axes, scales)."""
    from ..model.predictor import resolve_device
    from .views import evaluate_rows

    result = read_result(result_path)
    model = load_flame(flame_path)
    binding = binding_from_tensors(result_path, result.extra, n_faces=len(model.faces))
    if binding is None or binding.count == 0:
        raise InputError(result_path, "result holds no Gaussians (reconstruct it with --gaussians)")
    rows = np.flatnonzero(result.frame_index == frame)
    if len(rows) == 0:
        first, last = int(result.frame_index.min()), int(result.frame_index.max())
        raise InputError(result_path, f"frame {frame} is not in the result (footage frames {first}..{last})")
    vertices = evaluate_rows(model, result, rows[:1], resolve_device(device))[0]
    return binding, pose_gaussians(vertices, np.asarray(model.faces), binding)


def export_ply(result_path: Path, flame_path: Path, frame: int, output: Path, device: str = "cpu") -> int:
    """Write the PLY of footage frame `frame`; returns the number of Gaussians written."""
    if not output.parent.is_dir():
        raise InputError(output, f"output folder {output.parent} does not exist")
    binding, (centres, axes, scales) = posed_binding(result_path, flame_path, frame, device)
    write_splat_ply(output, splat_rows(centres, axes, scales, binding.colour, binding.opacity))
    return binding.count
