"""A head mesh's 68 face landmarks, found on a render of it: the face finder of the footage, lifted onto the surface.

The mesh (face frame: +Y up, the face looking toward +Z) is drawn from the front, orthographic, with the
NumPy z-buffer (review/raster.py), back faces culled, shaded as plain skin under a light from the front
and above (smooth normals, a little ambient): enough for MediaPipe's detector and face mesh, which the
footage's search (search.py, landmarks.py) then run on it as on any frame; from the sides and the back
too, keeping the most frontal face (a head imported facing another way); then, if that face is small in
the picture (a head on a whole body), once more, drawn close around it. Each landmark's pixel is
lifted to the face drawn under it (its barycentric point: exact under an orthographic view), or to the
nearest drawn one for a point just off the mesh, so the landmarks lie on the surface. No face: an
InputError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sheap_blender.core.arkit.mesh_transfer import triangle_normals, vertex_normals
from sheap_blender.core.errors import InputError

from .review.raster import rasterise_faces

SIZE = 768  # render side, pixels
MARGIN = 0.08  # of the drawn extent, on every side
SKIN = np.array([205.0, 160.0, 140.0])  # linear-ish RGB of plain skin
BACKGROUND = 40
SMALL_FACE = 0.25  # of the picture's width: a face found smaller is looked at again, close up ...
CLOSE_UP = 0.45  # ... its share of the close view's width
LIGHT = np.array([0.25, 0.45, 1.0]) / np.linalg.norm([0.25, 0.45, 1.0])  # from the front, above, a little left


@dataclass(frozen=True)
class FrontView:
    """An orthographic front view: pixel = (x - left) * scale, (top - y) * scale."""

    left: float
    top: float
    scale: float  # pixels per unit
    size: int

    def project(self, points: np.ndarray) -> np.ndarray:
        return np.column_stack([(points[:, 0] - self.left) * self.scale, (self.top - points[:, 1]) * self.scale])


def front_view(vertices: np.ndarray, size: int = SIZE) -> FrontView:
    """The view framing the mesh's upper part: the face, not the shoulders of a whole body, fills the picture."""
    low, high = vertices.min(0), vertices.max(0)
    width = high[0] - low[0]
    side = max(width, min(high[1] - low[1], 1.6 * width)) * (1 + 2 * MARGIN)  # a tall mesh: its top square
    centre_x = (low[0] + high[0]) / 2
    top = high[1] + MARGIN * side / (1 + 2 * MARGIN)
    return FrontView(centre_x - side / 2, top, size / side, size)


def outward(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """+1 where the triangles' normals point out of the mesh (away from its centre, area-weighted: the sign of
    a closed mesh's volume), -1 for a mesh wound inside out."""
    corners = vertices[triangles]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length: twice the area
    return 1.0 if np.einsum("ij,ij->", normal, corners.mean(1) - vertices.mean(0)) >= 0 else -1.0


def render(vertices: np.ndarray, triangles: np.ndarray, view: FrontView) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 shaded picture and (S, S) nearest triangle per pixel (-1: background)."""
    uv = view.project(vertices)
    # back faces culled: through a head's eye holes (eyes as separate meshes) the picture would show the
    # inside of the skull, and a landmark there would be lifted onto the back of the head; a face mask
    # seen from behind would show a hollow face, which the finder takes for one.
    facing = outward(vertices, triangles) * triangle_normals(vertices, triangles)[:, 2]
    front = np.flatnonzero(facing > 0)
    _, culled = rasterise_faces(uv, -vertices[:, 2], triangles[front], view.size, view.size, perspective=False)
    face = np.where(culled >= 0, front[np.maximum(culled, 0)], -1)
    normals = vertex_normals(vertices, triangles)
    drawn = face >= 0
    rows, cols = np.nonzero(drawn)
    weights = barycentric(uv, triangles[face[drawn]], np.column_stack([cols + 0.5, rows + 0.5]))
    normal = np.einsum("nk,nkc->nc", weights, normals[triangles[face[drawn]]])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    shade = 0.25 + 0.75 * np.clip(np.abs(normal @ LIGHT), 0, 1)  # two-sided: a mesh wound either way
    picture = np.full((view.size, view.size, 3), BACKGROUND, dtype=np.uint8)
    picture[drawn] = np.clip(SKIN * shade[:, None], 0, 255).astype(np.uint8)
    return picture, face


def barycentric(uv: np.ndarray, corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) weights of 2D `points` in the triangles `corners` (N, 3) of the projected vertices `uv`."""
    a, b, c = uv[corners[:, 0]], uv[corners[:, 1]], uv[corners[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    area = np.where(np.abs(area) > 1e-12, area, 1e-12)
    wb = ((points[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (points[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) / area
    wc = ((b[:, 0] - a[:, 0]) * (points[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (points[:, 0] - a[:, 0])) / area
    return np.column_stack([1 - wb - wc, wb, wc])


def lift(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, view: FrontView,
         face: np.ndarray) -> np.ndarray:
    """(N, 3): each picture point on the surface drawn nearest to it (the silhouette's edge for a point just off it)."""
    rows, cols = np.nonzero(face >= 0)
    centres = np.column_stack([cols + 0.5, rows + 0.5])
    nearest = np.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    on_mesh = face[rows[nearest], cols[nearest]]
    inside = np.where(face[np.clip(points[:, 1].astype(int), 0, view.size - 1),
                           np.clip(points[:, 0].astype(int), 0, view.size - 1)] >= 0, True, False)
    at = np.where(inside[:, None], points, centres[nearest])
    corners = triangles[on_mesh]
    weights = np.clip(barycentric(view.project(vertices), corners, at), 0.0, 1.0)
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("nk,nkc->nc", weights, vertices[corners])


def read_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (T, 3) from a .safetensors mesh file (InputError when it is not one)."""
    from sheap_blender.core.safetensors_file import read_safetensors

    tensors, _ = read_safetensors(path)
    vertices, triangles = tensors.get("vertices"), tensors.get("triangles")
    if vertices is None or triangles is None or vertices.ndim != 2 or vertices.shape[1] != 3 or triangles.ndim != 2 \
            or triangles.shape[1] != 3 or not len(triangles):
        raise InputError(path, "not a mesh: needs vertices (V, 3) and triangles (T, 3)")
    triangles = triangles.astype(np.int64)
    if triangles.min() < 0 or triangles.max() >= len(vertices) or not np.isfinite(vertices).all():
        raise InputError(path, "not a mesh: triangle corners outside the vertices, or vertices not finite")
    return vertices.astype(np.float64), triangles


# The head turned about its up axis, as a camera walking round it sees it (a head imported facing +X or +Y):
# quarter turns. A face in profile is still found, so the most frontal face of the four is kept.
TURNS = (0.0, np.pi / 2, -np.pi / 2, np.pi)


def turned(vertices: np.ndarray, angle: float) -> np.ndarray:
    """The vertices turned by `angle` about +Y (the up axis), as the camera sees the head turned."""
    c, s = np.cos(angle), np.sin(angle)
    return vertices @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]).T


def frontal(landmarks68: np.ndarray) -> float:
    """How squarely a face looks at the camera: its eyes' distance over the eyes-to-mouth distance (about 1
    seen from the front, toward 0 in profile)."""
    eyes = landmarks68[36:42].mean(0), landmarks68[42:48].mean(0)
    mouth = landmarks68[48:68].mean(0)
    return float(np.linalg.norm(eyes[1] - eyes[0]) / max(np.linalg.norm(mouth - (eyes[0] + eyes[1]) / 2), 1e-9))


def find_mesh_landmarks(vertices: np.ndarray, triangles: np.ndarray, name: str = "the mesh"
                        ) -> tuple[np.ndarray, float, np.ndarray]:
    """(68, 3) landmarks on the surface, the face's confidence, and the picture they were found on.

    The head is drawn from the front, the sides and the back (a head imported facing another way); the most
    frontal face found is kept, its landmarks given on the mesh as it is.
    """
    from .faces.landmarks import Landmarker
    from .faces.search import FaceSearch

    landmarker = Landmarker()
    search = FaceSearch(landmarker)
    best = None
    try:
        for angle in TURNS:
            seen = turned(vertices, angle)
            view = front_view(seen)
            picture, face = render(seen, triangles, view)
            for found in search.find(picture)[:1]:
                if best is None or frontal(found.landmarks68) > best[0]:
                    best = (frontal(found.landmarks68), angle, found, seen, view, face, picture)
        if best is None:
            raise InputError(name, "no face found on a render of it from the front, the sides or the back: is it "
                                   "a face, upright (Blender's +Z up)?")
        _, angle, found, seen, view, face, picture = best
        if found.size < SMALL_FACE * view.size:  # again, drawn close around it (a head on a whole body)
            close = face_view(found.landmarks68, view)
            close_picture, close_face = render(seen, triangles, close)
            again = [f for f in search.find(close_picture)[:1] if frontal(f.landmarks68) > 0.5 * best[0]]
            if again:
                found, view, face, picture = again[0], close, close_face, close_picture
    finally:
        search.close()
        landmarker.close()
    points = lift(found.landmarks68, seen, triangles, view, face)
    return turned(points, -angle), found.confidence, picture


def face_view(landmarks68: np.ndarray, view: FrontView, size: int = SIZE) -> FrontView:
    """A view of `size` pixels centred on a face found in `view`, the face about CLOSE_UP of its width."""
    low, high = landmarks68.min(0), landmarks68.max(0)
    side = max(high - low) / view.scale / CLOSE_UP  # in the mesh's units
    centre = (low + high) / 2 / view.scale  # from the view's top-left corner, in the mesh's units
    return FrontView(view.left + centre[0] - side / 2, view.top - centre[1] + side / 2, size / side, size)
