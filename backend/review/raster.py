"""Depth rasterisation of a triangle mesh with NumPy: the z-buffer used for visibility tests.

Every triangle is expanded into the pixels of its bounding box at once (np.repeat), tested with
barycentric coordinates at pixel centres (pixel i spans [i, i+1]), and the nearest depth per pixel
is kept with np.minimum.at (`rasterise_faces` also says which face is nearest). Inverse depth is
interpolated (it is affine in screen space under a pinhole); pass `perspective=False` for
orthographic views.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.ndimage import minimum_filter

_CHUNK = 4_000_000  # candidate pixels per pass: bounds memory on big or near triangles


def _fragments(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int,
               perspective: bool) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(flat pixel index, depth, face index) of every covered pixel centre of every triangle, in chunks."""
    tri_uv = np.asarray(uv, dtype=np.float64)[faces]  # (T, 3, 2)
    tri_z = np.asarray(depth, dtype=np.float64)[faces]  # (T, 3)
    keep = np.all(np.isfinite(tri_uv), axis=(1, 2)) & np.all(np.isfinite(tri_z), axis=1)
    if perspective:
        keep &= np.all(tri_z > 1e-9, axis=1)
    face_index = np.flatnonzero(keep)
    tri_uv, tri_z = tri_uv[keep], tri_z[keep]
    # pixel centres c + 0.5 inside each bounding box
    x0 = np.clip(np.ceil(tri_uv[..., 0].min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tri_uv[..., 0].max(1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(tri_uv[..., 1].min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(tri_uv[..., 1].max(1) - 0.5), -1, height - 1).astype(np.int64)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    drawn = (w > 0) & (h > 0) & (np.abs(area) > 1e-12)
    index = np.flatnonzero(drawn)
    value = 1.0 / tri_z if perspective else tri_z
    counts = (w * h)[index]
    ends = np.cumsum(counts)
    begin = 0
    while begin < len(index):  # chunks of triangles holding about _CHUNK candidate pixels
        stop = max(int(np.searchsorted(ends, (ends[begin - 1] if begin else 0) + _CHUNK, side="right")), begin + 1)
        tris = index[begin:stop]
        n = counts[begin:stop]
        tri = np.repeat(tris, n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        px = x0[tri] + local % w[tri]
        py = y0[tri] + local // w[tri]
        cx, cy = px + 0.5, py + 0.5
        ta, tb, tc = a[tri], b[tri], c[tri]
        # barycentric weights of b and c from the edge functions
        wb = ((cx - ta[:, 0]) * (tc[:, 1] - ta[:, 1]) - (cy - ta[:, 1]) * (tc[:, 0] - ta[:, 0])) / area[tri]
        wc = ((tb[:, 0] - ta[:, 0]) * (cy - ta[:, 1]) - (tb[:, 1] - ta[:, 1]) * (cx - ta[:, 0])) / area[tri]
        wa = 1.0 - wb - wc
        inside = (wa >= -1e-9) & (wb >= -1e-9) & (wc >= -1e-9)
        v = value[tri]
        interpolated = wa * v[:, 0] + wb * v[:, 1] + wc * v[:, 2]
        z = 1.0 / interpolated if perspective else interpolated
        yield (py * width + px)[inside], z[inside], face_index[tri[inside]]
        begin = stop


def rasterise_depth(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int,
                    perspective: bool = True) -> np.ndarray:
    """(H, W) float64 depth of the nearest surface per pixel, +inf where nothing is drawn.

    uv: (V, 2) image coordinates of the vertices; depth: (V,) their distance along the view (> 0 drawn).
    """
    zbuffer = np.full(width * height, np.inf)
    for pixel, z, _ in _fragments(uv, depth, faces, width, height, perspective):
        np.minimum.at(zbuffer, pixel, z)
    return zbuffer.reshape(height, width)


def rasterise_faces(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int,
                    perspective: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) depth as `rasterise_depth`, and (H, W) int64 index of the nearest face there (-1: none)."""
    chunks = list(_fragments(uv, depth, faces, width, height, perspective))
    zbuffer = np.full(width * height, np.inf)
    face_id = np.full(width * height, -1, dtype=np.int64)
    if chunks:
        pixel, z, face = (np.concatenate(parts) for parts in zip(*chunks))
        order = np.lexsort((z, pixel))  # by pixel, nearest first
        first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]] if len(order) else order
        zbuffer[pixel[first]] = z[first]
        face_id[pixel[first]] = face[first]
    return zbuffer.reshape(height, width), face_id.reshape(height, width)


def visible(uv: np.ndarray, depth: np.ndarray, zbuffer: np.ndarray, tolerance: float,
            neighbourhood: int = 1) -> np.ndarray:
    """(N,) bool: points in front of or within `tolerance` of the nearest surface around their pixel.

    The z-buffer is first min-filtered over (2 * neighbourhood + 1)^2 pixels, so a point beside an
    occluding edge (a cheek just behind the nose) counts as hidden rather than bleeding colour.
    Points outside the image or over empty pixels are not visible.
    """
    height, width = zbuffer.shape
    nearest = minimum_filter(zbuffer, size=2 * neighbourhood + 1, mode="nearest") if neighbourhood else zbuffer
    uv = np.asarray(uv, dtype=np.float64)
    finite = np.all(np.isfinite(uv), axis=-1)
    col = np.floor(np.where(finite, uv[..., 0], -1)).astype(np.int64)
    row = np.floor(np.where(finite, uv[..., 1], -1)).astype(np.int64)
    inside = finite & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    surface = np.full(col.shape, np.inf)
    surface[inside] = nearest[row[inside], col[inside]]
    return inside & np.isfinite(surface) & (np.asarray(depth) <= surface + tolerance)
