"""A small CPU splatter: Gaussians drawn back into a view, to measure how well they match the footage.

Each surfel that the view's z-buffer does not hide is projected to a 2D Gaussian (its two in-plane
axes pushed through the camera's local linearisation, plus a 0.3 px^2 anti-aliasing blur, as
rasterisers do) and splatted over a square window of pixels; the image is the opacity-and-footprint
weighted mean colour per pixel. Not a full alpha compositor: hidden surfels are removed by the
depth test instead of being sorted. Vectorised over (surfel, window pixel) pairs.
"""

from __future__ import annotations

import numpy as np

from sheap_blender.core.gaussians import GaussianBinding, pose_gaussians

from ..review.raster import visible
from .colours import DEPTH_TOLERANCE
from .views import View

MAX_RADIUS = 12  # pixels: the splat window's half-size cap


def render_view(view: View, binding: GaussianBinding, faces: np.ndarray, colours: np.ndarray | None = None,
                pairs_per_chunk: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """RGB (h, w, 3) and coverage (h, w) of the Gaussians splatted into the view."""
    colours = binding.colour if colours is None else colours
    centres, axes, scales = pose_gaussians(view.vertices.astype(np.float64), faces, binding)
    uv, depth = view.project(centres)
    keep = np.flatnonzero(visible(uv, depth, view.zbuffer, DEPTH_TOLERANCE) & (binding.opacity > 0))
    # 2x2 Jacobian of the projection along the two scaled in-plane axes (finite difference, exact enough)
    step = 1e-4
    columns = []
    for k in range(2):
        moved, _ = view.project(centres[keep] + step * axes[keep, :, k])
        columns.append((moved - uv[keep]) / step * scales[keep, k, None])
    jacobian = np.stack(columns, axis=-1)  # (G, 2, 2)
    cov = jacobian @ np.swapaxes(jacobian, -1, -2) + 0.3 * np.eye(2)
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
    inv = np.stack([cov[:, 1, 1], -cov[:, 0, 1], -cov[:, 0, 1], cov[:, 0, 0]], -1).reshape(-1, 2, 2)
    inv /= det[:, None, None]
    sigma_max = np.sqrt(np.maximum(cov[:, 0, 0], cov[:, 1, 1]))
    radius = int(min(MAX_RADIUS, np.ceil(3 * np.percentile(sigma_max, 95)) if len(keep) else 1))
    offsets = np.stack(np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1)), -1).reshape(-1, 2)
    width, height = view.size
    chunk = max(1, pairs_per_chunk // len(offsets))  # bounds memory: (surfel, pixel) pairs per pass
    numerator = np.zeros((height * width, 3))
    denominator = np.zeros(height * width)
    for begin in range(0, len(keep), chunk):
        part = slice(begin, begin + chunk)
        centre_uv = uv[keep[part]]
        pixel = np.floor(centre_uv)[:, None, :].astype(np.int64) + offsets[None]  # (g, P, 2)
        delta = pixel + 0.5 - centre_uv[:, None, :]
        power = -0.5 * np.einsum("gpi,gij,gpj->gp", delta, inv[part], delta)
        weight = binding.opacity[keep[part], None] * np.exp(power)
        inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
        inside &= power > -4.5
        flat = (pixel[..., 1] * width + pixel[..., 0])[inside]
        w = weight[inside]
        denominator += np.bincount(flat, w, minlength=height * width)
        rgb = np.broadcast_to(colours[keep[part], None, :], weight.shape + (3,))[inside]
        for c in range(3):
            numerator[:, c] += np.bincount(flat, w * rgb[:, c], minlength=height * width)
    image = numerator / np.maximum(denominator, 1e-12)[:, None]
    return image.reshape(height, width, 3), denominator.reshape(height, width)


def colour_error(view: View, rendered: np.ndarray, coverage: np.ndarray,
                 min_coverage: float = 0.3) -> tuple[float, int]:
    """Mean absolute RGB error (0..255) over the head's pixels that the splats cover; and that pixel count."""
    mask = view.head_mask & (coverage >= min_coverage)
    if not mask.any():
        return float("nan"), 0
    return float(np.abs(rendered[mask] - view.image[mask]).mean() * 255), int(mask.sum())


def reprojection_error(views: list[View], binding: GaussianBinding, faces: np.ndarray,
                       colours: np.ndarray | None = None) -> float:
    """Mean absolute RGB error (0..255) over the covered head pixels of all views (pixel-weighted)."""
    total, pixels = 0.0, 0
    for view in views:
        error, count = colour_error(view, *render_view(view, binding, faces, colours))
        if count:
            total += error * count
            pixels += count
    return total / max(pixels, 1)
