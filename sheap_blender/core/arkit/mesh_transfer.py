"""Bring one head mesh's shapes onto another head's topology: landmarks, a warp, closest points.

The method (as in deformation-transfer pipelines that start from sparse correspondences):
1. a similarity transform (Umeyama 1991) takes the source's 68 landmarks onto the target's;
2. a thin-plate warp (3D biharmonic kernel |r| with an affine part) moves the source's landmarks
   exactly onto the target's, and everything else smoothly with them;
3. every target vertex takes the closest point of the warped source surface (a triangle and
   barycentric weights), where that point is near and faces the same way;
4. a shape's vertex offsets are read at those points and turned by the similarity's rotation and scale.
Pure NumPy: it runs inside Blender as well as in the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The least-squares scale, rotation (never a mirror) and translation taking `source` points onto `target`."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(sigma) @ flip) / (s * s).sum())
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)


def thin_plate_warp(source: np.ndarray, target: np.ndarray, points: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """`points` moved by the 3D thin-plate spline that takes `source` landmarks onto `target`.

    With `smoothing` (lambda, in the points' units) the spline passes near the landmarks instead of through
    them: smoother, down to the affine fit as lambda grows. The 3D kernel |r| is conditionally *negative*
    definite (the bending energy's Green's function is -|r|), so the ridge is subtracted: K - lambda I.
    """
    n = len(source)
    kernel = np.linalg.norm(source[:, None] - source[None], axis=-1) - smoothing * np.eye(n)
    affine = np.column_stack([np.ones(n), source])
    system = np.block([[kernel, affine], [affine.T, np.zeros((4, 4))]])
    rhs = np.concatenate([target - source, np.zeros((4, 3))])
    coefficients = np.linalg.lstsq(system, rhs, rcond=None)[0]
    out = np.empty_like(points)
    for start in range(0, len(points), 4096):  # bounded memory for big meshes
        chunk = points[start:start + 4096]
        radial = np.linalg.norm(chunk[:, None] - source[None], axis=-1)
        out[start:start + 4096] = (chunk + radial @ coefficients[:n]
                                   + np.column_stack([np.ones(len(chunk)), chunk]) @ coefficients[n:])
    return out


def triangle_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals of the triangles (right-hand winding)."""
    v = vertices[triangles]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals."""
    v = vertices[triangles]
    face = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    normals = np.zeros_like(vertices)
    np.add.at(normals, triangles.ravel(), np.repeat(face, 3, axis=0))
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def vertex_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """A third of the area of the triangles around each vertex (0 for vertices on none)."""
    v = vertices[triangles]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    out = np.zeros(len(vertices))
    np.add.at(out, triangles.ravel(), np.repeat(area / 3.0, 3))
    return out


def connected_components(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """(V,) the label of each vertex's connected part (the smallest vertex id in it; a lone vertex its own)."""
    label = np.arange(n_vertices)
    a = triangles.ravel()
    b = np.roll(triangles, 1, axis=1).ravel()
    while True:  # min-label propagation along edges, with pointer jumping: a few dozen passes
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, label):
            return label
        label = new


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights (N, 3) of the point of each triangle (a, b, c) closest to p (Ericson, RTCD 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom  # inside the face
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    bary = np.column_stack([1 - v_in - w_in, v_in, w_in])
    regions = [  # (condition, weights) from the last tested to the first: later ones win
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.column_stack([1 - t_ab, t_ab, np.zeros_like(t_ab)])),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.column_stack([1 - t_ac, np.zeros_like(t_ac), t_ac])),
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.column_stack([np.zeros_like(t_bc), 1 - t_bc, t_bc])),
        ((d6 >= 0) & (d5 <= d6), np.tile([0.0, 0.0, 1.0], (len(p), 1))),
        ((d3 >= 0) & (d4 <= d3), np.tile([0.0, 1.0, 0.0], (len(p), 1))),
        ((d1 <= 0) & (d2 <= 0), np.tile([1.0, 0.0, 0.0], (len(p), 1))),
    ]
    for condition, weights in regions:
        bary = np.where(condition[:, None], weights, bary)
    return np.nan_to_num(bary, nan=1.0 / 3.0)


@dataclass(frozen=True)
class SurfacePoints:
    """Points on a triangle mesh: triangle of each, barycentric weights, and their distance from the query."""

    triangle: np.ndarray  # (N,) int
    weights: np.ndarray  # (N, 3)
    distance: np.ndarray  # (N,)

    def sample(self, triangles: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per-vertex `values` (..., V, C) read at the points: (..., N, C)."""
        corners = triangles[self.triangle]  # (N, 3)
        return np.einsum("...nkc,nk->...nc", values[..., corners, :], self.weights)


TIE = 1e-6  # metres: closest points nearer to each other than this are told apart by how they face


def closest_surface_points(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
                           candidates: int = 8, point_normals: np.ndarray | None = None,
                           min_facing: float | None = None) -> SurfacePoints:
    """The closest point of the mesh to each query point, searched on the triangles of its nearest vertices.

    With `point_normals`, of points within TIE of the closest, the one whose surface faces most like the
    query's normal wins: where two surfaces touch (closed lips) the choice is then the same on every
    machine, not whichever the arithmetic's last bit favours. With `min_facing` too, only surface whose
    normal's cosine with the query's is above it counts (none found: distance inf, triangle 0).
    """
    surface_normals = vertex_normals(vertices, triangles) if point_normals is not None else None
    used = np.unique(triangles)
    nearest = np.empty((len(points), candidates), dtype=np.int64)
    # squared distances as |p|^2 - 2 p.v + |v|^2 about the vertices' centre: one matrix product a chunk
    centre = vertices[used].mean(0)
    candidates_at = vertices[used] - centre
    squared = (candidates_at ** 2).sum(1)
    for start in range(0, len(points), 1024):
        chunk = points[start:start + 1024] - centre
        d2 = squared[None, :] - 2.0 * chunk @ candidates_at.T
        nearest[start:start + 1024] = used[np.argpartition(d2, candidates - 1, axis=1)[:, :candidates]]
    # triangles around each vertex, as a CSR list
    order = np.argsort(triangles.ravel(), kind="stable")
    starts = np.searchsorted(triangles.ravel()[order], np.arange(len(vertices) + 1))
    owner = order // 3
    best_d = np.full(len(points), np.inf)
    best_score = np.full(len(points), np.inf)
    best_t = np.zeros(len(points), dtype=np.int64)
    best_w = np.zeros((len(points), 3))
    for k in range(candidates):
        vertex = nearest[:, k]
        count = starts[vertex + 1] - starts[vertex]
        query = np.repeat(np.arange(len(points)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # 0.. within each vertex
        tri = owner[np.repeat(starts[vertex], count) + offset]
        corners = vertices[triangles[tri]]
        weights = _closest_on_triangles(points[query], corners[:, 0], corners[:, 1], corners[:, 2])
        closest = np.einsum("nk,nkc->nc", weights, corners)
        dist = np.linalg.norm(closest - points[query], axis=1)
        score = dist
        if surface_normals is not None:
            normal = np.einsum("nk,nkc->nc", weights, surface_normals[triangles[tri]])
            normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
            facing = np.einsum("nc,nc->n", normal, point_normals[query])
            score = dist - TIE * facing
            if min_facing is not None:
                score = np.where(facing > min_facing, score, np.inf)
        better = np.zeros(len(dist), dtype=bool)
        # per query, the best of this round: sort by (query, score) and take the first of each query
        rank = np.lexsort((score, query))
        first = rank[np.r_[True, query[rank][1:] != query[rank][:-1]]]
        better[first] = score[first] < best_score[query[first]]  # never an inf (refused) one
        q = query[better]
        best_score[q], best_d[q], best_t[q], best_w[q] = score[better], dist[better], tri[better], weights[better]
    return SurfacePoints(best_t, best_w, best_d)
