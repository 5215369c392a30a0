"""The demo FLAME stand-in: a made-up head with FLAME 2020's sizes and pickle structure. NOT FLAME.

FLAME's licence keeps the real `generic_model.pkl` out of the project, so tests and demos use this:
5023 vertices / 9976 triangles (a closed head with a neck hole, 73 rings x 60 columns + a top pole,
and two eyeballs of 11 rings x 29 columns + 2 poles), smooth localised blendshapes, FLAME's joints
and skinning layout. It is pickled the way the real file is (protocol 2, Python 2 strings, chumpy
`Ch` objects, the regressor as `scipy.sparse.csc.csc_matrix`) without chumpy or scipy, and carries
the marker entry `sheap_demo_standin` = "true" so everything downstream can say it is a stand-in.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import struct
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.arkit.mesh_transfer import vertex_normals
from sheap_blender.core.atomic_file import replacing
from sheap_blender.core.flame.model import N_EXPR, N_FACES, N_POSE_FEATURES, N_SHAPE, N_VERTICES

PICKLE_NAME = "generic_model.pkl"
EYELIDS_NAME = "eyelids.pt"
SEED = 20250418
HEAD_RINGS, HEAD_COLUMNS = 73, 60
EYE_RINGS, EYE_COLUMNS = 11, 29
EYE_RADIUS = 0.012
EYE_XY = np.array([[0.032, 0.03], [-0.032, 0.03]])  # left eye (subject's left, +X) first, as FLAME's joints 3, 4
ROOT_SENTINEL = 4294967295  # the root's "parent" in FLAME's kintree_table

# Shape features pushed along the normal: centre (x, y, z), amplitude (m), sigma (x, y, z).
_FEATURES = np.array([
    # x      y      z     amp      sx     sy     sz
    [0.0, 0.0, 0.10, 0.018, 0.009, 0.025, 0.03],  # nose ridge
    [0.0, -0.015, 0.10, 0.012, 0.011, 0.010, 0.03],  # nose tip
    [0.032, 0.03, 0.10, -0.011, 0.016, 0.012, 0.03],  # eye sockets
    [-0.032, 0.03, 0.10, -0.011, 0.016, 0.012, 0.03],
    [0.03, 0.052, 0.10, 0.005, 0.02, 0.008, 0.03],  # brows
    [-0.03, 0.052, 0.10, 0.005, 0.02, 0.008, 0.03],
    [0.05, 0.0, 0.08, 0.006, 0.015, 0.015, 0.03],  # cheekbones
    [-0.05, 0.0, 0.08, 0.006, 0.015, 0.015, 0.03],
    [0.0, -0.038, 0.10, 0.004, 0.018, 0.006, 0.03],  # upper lip
    [0.0, -0.045, 0.10, -0.004, 0.02, 0.003, 0.03],  # mouth line
    [0.0, -0.052, 0.10, 0.003, 0.016, 0.006, 0.03],  # lower lip
    [0.0, -0.085, 0.08, 0.012, 0.018, 0.012, 0.03],  # chin
    [0.08, 0.01, -0.015, 0.008, 0.012, 0.02, 0.012],  # ears
    [-0.08, 0.01, -0.015, 0.008, 0.012, 0.02, 0.012],
])
# Expression regions (x, y, z) and their sigma: mouth corners, lips, jaw/chin, brows, cheeks, nose, forehead.
_EXPRESSION_REGIONS = np.array([
    [0.026, -0.045, 0.09, 0.012], [-0.026, -0.045, 0.09, 0.012], [0.0, -0.036, 0.1, 0.012],
    [0.0, -0.054, 0.1, 0.012], [0.0, -0.08, 0.08, 0.02], [0.03, 0.055, 0.09, 0.014],
    [-0.03, 0.055, 0.09, 0.014], [0.0, 0.05, 0.09, 0.012], [0.045, -0.015, 0.08, 0.016],
    [-0.045, -0.015, 0.08, 0.016], [0.0, 0.005, 0.1, 0.01], [0.0, 0.075, 0.07, 0.02],
])


def _ring_faces(first: int, rings: int, columns: int) -> np.ndarray:
    """Two triangles per quad between consecutive rings (ring r, column c at first + r*columns + c)."""
    r, c = np.meshgrid(np.arange(rings - 1), np.arange(columns), indexing="ij")
    a = first + r * columns + c
    b = first + r * columns + (c + 1) % columns
    below_a, below_b = a + columns, b + columns
    return np.concatenate([np.stack([a, below_a, b], -1), np.stack([b, below_a, below_b], -1)], 0).reshape(-1, 3)


def _fan(pole: int, ring: np.ndarray) -> np.ndarray:
    """Triangles from a pole to each edge of a ring."""
    return np.stack([np.full_like(ring, pole), ring, np.roll(ring, -1)], -1)


def _head() -> tuple[np.ndarray, np.ndarray]:
    """The undeformed head surface: rings from the crown to the neck hole, then the top pole."""
    theta = np.linspace(0.06, 2.9, HEAD_RINGS)[:, None]  # polar angle from the crown
    phi = np.arange(HEAD_COLUMNS)[None, :] * (2 * np.pi / HEAD_COLUMNS)  # 0 faces +Z, pi/2 is +X
    cos_t = np.cos(theta)
    y = 0.015 + np.where(cos_t > 0, 0.095, 0.135) * cos_t
    below = np.clip(-cos_t / 0.3, 0, 1)
    neck = 0.58 * below * below * (3 - 2 * below)  # the neck keeps the lower head from closing up
    h = (np.sin(theta) ** 6 + neck**6) ** (1 / 6)
    depth = np.where(np.cos(phi) > 0, 0.10, 0.105)
    x = 0.078 * h * np.sin(phi)
    z = -0.01 + depth * h * np.cos(phi)
    rings = np.stack(np.broadcast_arrays(x, y, z), -1).reshape(-1, 3)
    top = np.array([[0.0, 0.015 + 0.095, -0.01]])
    vertices = np.concatenate([rings, top])
    pole = len(rings)
    faces = np.concatenate([_fan(pole, np.arange(HEAD_COLUMNS)), _ring_faces(0, HEAD_RINGS, HEAD_COLUMNS)])
    return vertices, faces


def _eyeball(centre: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere facing +Z: front pole, rings, back pole; faces numbered from vertex `first`."""
    alpha = np.arange(1, EYE_RINGS + 1)[:, None] * (np.pi / (EYE_RINGS + 1))
    beta = np.arange(EYE_COLUMNS)[None, :] * (2 * np.pi / EYE_COLUMNS)
    ring = np.stack(np.broadcast_arrays(np.sin(alpha) * np.cos(beta), np.sin(alpha) * np.sin(beta),
                                        np.cos(alpha)), -1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    back = first + 1 + EYE_RINGS * EYE_COLUMNS
    rings = first + 1 + np.arange(EYE_RINGS * EYE_COLUMNS).reshape(EYE_RINGS, EYE_COLUMNS)
    faces = np.concatenate([_fan(first, rings[0]), _ring_faces(first + 1, EYE_RINGS, EYE_COLUMNS),
                            _fan(back, rings[-1][::-1])])
    return centre + EYE_RADIUS * unit, faces


def _outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces, flipped if they wind inward (signed volume about the centroid is negative)."""
    v = vertices[faces] - vertices[np.unique(faces)].mean(0)
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum()
    return faces if volume > 0 else faces[:, ::-1].copy()


def _gaussians(points: np.ndarray, centres: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(P, K) anisotropic gaussian falloff of each point from each centre; sigmas (K, 3) or (K, 1)."""
    scaled = (points[:, None, :] - centres[None, :, :]) / sigmas[None, :, :]
    return np.exp(-0.5 * np.einsum("pkd,pkd->pk", scaled, scaled))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _unit_columns(field: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
    """Scale each direction (V, 3, K) so its largest vertex displacement is `magnitudes[k]` metres."""
    peak = np.linalg.norm(field, axis=1).max(0)
    return field * (magnitudes / np.maximum(peak, 1e-12))


def build_demo_flame() -> dict[str, np.ndarray]:
    """The stand-in's arrays (float64, dense regressor, eyelid directions under 'eyelids')."""
    rng = np.random.default_rng(SEED)
    head, head_faces = _head()
    n_head = len(head)
    head_faces = _outward(head, head_faces)
    normals = vertex_normals(head, head_faces)
    bumps = _gaussians(head, _FEATURES[:, :3], _FEATURES[:, 4:7]) @ _FEATURES[:, 3]
    head = head + normals * bumps[:, None]
    normals = vertex_normals(head, head_faces)

    front = np.flatnonzero(head[:, 2] > 0)
    socket = front[np.argmin(((head[front, None, :2] - EYE_XY[None]) ** 2).sum(-1), axis=0)]  # (2,) vertices
    eye_centres = np.column_stack([EYE_XY, head[socket, 2] - 0.004])
    n_eye = 2 + EYE_RINGS * EYE_COLUMNS
    eyes = [_eyeball(eye_centres[e], n_head + e * n_eye) for e in range(2)]
    eye_faces = [_outward(np.concatenate([head, eyes[0][0], eyes[1][0]]), f) for _, f in eyes]
    vertices = np.concatenate([head, eyes[0][0], eyes[1][0]])
    faces = np.concatenate([head_faces, *eye_faces]).astype(np.uint32)
    eye_index = [np.arange(n_head + e * n_eye, n_head + (e + 1) * n_eye) for e in range(2)]
    assert vertices.shape == (N_VERTICES, 3) and faces.shape == (N_FACES, 3)

    # Identity: 3 random bumps per direction along the normal, 3 mm falling to 1 mm; eyeballs ride along rigidly.
    centres = head[rng.integers(0, n_head, size=3 * N_SHAPE)]
    sigmas = rng.uniform(0.02, 0.05, size=(3 * N_SHAPE, 1))
    field = (_gaussians(head, centres, sigmas) * rng.normal(size=3 * N_SHAPE)).reshape(n_head, N_SHAPE, 3).sum(-1)
    identity = _unit_columns(normals[:, :, None] * field[:, None, :], np.linspace(0.003, 0.001, N_SHAPE))
    # Expression: 1-3 face regions per direction, along the normal plus some vertical motion; eyeballs still.
    weights = rng.normal(size=(N_EXPR, len(_EXPRESSION_REGIONS))) * (rng.random((N_EXPR, len(_EXPRESSION_REGIONS)))
                                                                      < 2 / len(_EXPRESSION_REGIONS))
    weights[np.arange(N_EXPR), rng.integers(0, len(_EXPRESSION_REGIONS), N_EXPR)] += rng.choice([-1.0, 1.0], N_EXPR)
    regions = _gaussians(head, _EXPRESSION_REGIONS[:, :3], _EXPRESSION_REGIONS[:, 3:]) @ weights.T  # (V, 100)
    mix = rng.normal(size=(N_EXPR, 2)) * [1.0, 0.6]
    direction = normals[:, :, None] * mix[:, 0] + np.array([0.0, 1.0, 0.0])[None, :, None] * mix[:, 1]
    expression = _unit_columns(direction * regions[:, None, :], np.linspace(0.003, 0.001, N_EXPR))
    shapedirs = np.zeros((N_VERTICES, 3, N_SHAPE + N_EXPR))
    shapedirs[:n_head, :, :N_SHAPE] = identity
    shapedirs[:n_head, :, N_SHAPE:] = expression
    for e in range(2):
        shapedirs[eye_index[e], :, :N_SHAPE] = identity[socket[e]]

    # Pose correctives: a smooth region per joint (neck, jaw, eyelid skin), a fixed direction per feature, <= 2 mm.
    pose_regions = _gaussians(head, np.array([[0.0, -0.08, -0.01], [0.0, -0.07, 0.05],
                                              [*EYE_XY[0], 0.08], [*EYE_XY[1], 0.08]]),
                              np.array([[0.05, 0.025, 0.06], [0.035, 0.025, 0.03], [0.015] * 3, [0.015] * 3]))
    pose_dirs = rng.normal(size=(N_POSE_FEATURES, 3))
    pose_dirs /= np.linalg.norm(pose_dirs, axis=1, keepdims=True)
    posedirs = np.zeros((N_VERTICES, 3, N_POSE_FEATURES))
    posedirs[:n_head] = (pose_regions[:, None, np.arange(N_POSE_FEATURES) // 9] * pose_dirs.T[None]
                         * rng.uniform(0.0005, 0.002, N_POSE_FEATURES))

    # Eyelids: the skin above each eye slides down over the eyeball, 8 mm at full weight. Channel 0 is the
    # subject's RIGHT eyelid (-X), as in SHeaP's released eyelids.pt: the reverse of EYE_XY's order.
    lid_centres = np.column_stack([EYE_XY + [0.0, 0.008], head[socket, 2]])[::-1]
    lids = _gaussians(head, lid_centres, np.array([[0.013, 0.006, 0.012]] * 2))  # (V, 2)
    eyelids = np.zeros((N_VERTICES, 3, 2))
    eyelids[:n_head] = np.array([0.0, -1.0, 0.25])[None, :, None] * (0.008 * lids[:, None, :])

    # Skinning: root at the neck hole blending into the neck, jaw on the lower front face, eyeballs rigid.
    skin = np.zeros((N_VERTICES, 5))
    y, z = head[:, 1], head[:, 2]
    root = _smoothstep((-0.085 - y) / 0.03)
    jaw = (1 - root) / (1 + np.exp((y + 0.035) / 0.008)) / (1 + np.exp(-(z - 0.01) / 0.012))
    skin[:n_head, 0], skin[:n_head, 2] = root, jaw
    skin[:n_head, 1] = 1 - root - jaw
    for e in range(2):
        skin[eye_index[e], 3 + e] = 1.0

    # Joint regressor: root = neck-hole ring, neck = a ring at the throat, jaw = both sides under the ears, eyes =
    # eyeball centres (the mean of a UV sphere's vertices is its centre).
    ring_y = head[np.arange(HEAD_RINGS) * HEAD_COLUMNS + HEAD_COLUMNS // 2, 1]  # the back column: no features
    ring = np.arange(HEAD_COLUMNS)
    regressor = np.zeros((5, N_VERTICES))
    regressor[0, (HEAD_RINGS - 1) * HEAD_COLUMNS + ring] = 1 / HEAD_COLUMNS
    regressor[1, np.argmin(np.abs(ring_y + 0.07)) * HEAD_COLUMNS + ring] = 1 / HEAD_COLUMNS
    sides = np.array([14, 15, 16, 44, 45, 46])
    regressor[2, np.argmin(np.abs(ring_y + 0.02)) * HEAD_COLUMNS + sides] = 1 / len(sides)
    for e in range(2):
        regressor[3 + e, eye_index[e]] = 1 / n_eye

    return {
        "v_template": vertices, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": regressor,
        "weights": skin, "f": faces, "J": regressor @ vertices, "eyelids": eyelids,
        "kintree_table": np.array([[ROOT_SENTINEL, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
    }


class _Ch:
    """Pickles as `chumpy.ch.Ch` through `copy_reg._reconstructor`, state as chumpy's `__getstate__`."""

    def __init__(self, x: np.ndarray):
        self.state = {"x": x, "_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {},
                      "_make_dense": False, "_make_sparse": False}

    def __reduce__(self) -> tuple:
        return copyreg._reconstructor, (type(self), object, None), self.state


class _CscMatrix:
    """Pickles as old scipy's `scipy.sparse.csc.csc_matrix` (protocol 2 NEWOBJ, its `__dict__` as state)."""

    def __init__(self, dense: np.ndarray):
        columns, rows = np.nonzero(dense.T)  # column-major order
        self.data = dense[rows, columns].astype(np.float64)
        self.indices = rows.astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(columns, minlength=dense.shape[1]))]).astype(np.int32)
        self._shape = dense.shape
        self.maxprint = 50


_CLASS_PATHS = {_Ch: ("chumpy.ch", "Ch"), _CscMatrix: ("scipy.sparse.csc", "csc_matrix")}


@contextmanager
def _legacy_names() -> Iterator[None]:
    """Make the stand-in classes findable under chumpy's and old scipy's names while pickling; undo after."""
    saved = {}
    originals = {cls: (cls.__module__, cls.__qualname__) for cls in _CLASS_PATHS}
    try:
        for cls, (module_name, name) in _CLASS_PATHS.items():
            parts = module_name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in sys.modules and depth < len(parts):
                    continue  # a real parent package is fine: the pickler only needs the leaf in sys.modules
                saved.setdefault(prefix, sys.modules.get(prefix))
                sys.modules[prefix] = types.ModuleType(prefix)
            setattr(sys.modules[module_name], name, cls)
            cls.__module__, cls.__qualname__ = module_name, name
        yield
    finally:
        for cls, (module, qualname) in originals.items():
            cls.__module__, cls.__qualname__ = module, qualname
        for prefix, module in saved.items():
            if module is None:
                sys.modules.pop(prefix, None)
            else:
                sys.modules[prefix] = module


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 written as Python 2 would: bytes and ASCII text as Python 2 `str` (BINSTRING)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj if isinstance(obj, bytes) else obj.encode("ascii")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def _save_text(self, obj: str) -> None:
        if obj.isascii():
            self._save_py2_str(obj)
        else:
            pickle._Pickler.save_str(self, obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_text


def _write_atomic(path: Path, write: Callable[[object], None]) -> None:
    with replacing(path) as tmp, open(tmp, "xb") as out:
        write(out)


def write_demo_flame(directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write the stand-in `generic_model.pkl` and `eyelids.pt` into `directory`; return their paths."""
    directory = Path(directory)
    arrays = build_demo_flame()
    model = {
        "f": arrays["f"],
        "J_regressor": _CscMatrix(arrays["J_regressor"]),
        "kintree_table": arrays["kintree_table"],
        "J": arrays["J"],
        "weights": _Ch(arrays["weights"]),
        "posedirs": _Ch(arrays["posedirs"]),
        "v_template": _Ch(arrays["v_template"]),
        "shapedirs": _Ch(arrays["shapedirs"]),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "sheap_demo_standin": "true",
    }
    pkl, eyelids = directory / PICKLE_NAME, directory / EYELIDS_NAME
    with _legacy_names():
        _write_atomic(pkl, lambda out: _Python2Pickler(out, protocol=2).dump(model))
    _write_atomic(eyelids, lambda out: torch.save(torch.from_numpy(arrays["eyelids"].astype(np.float32)), out))
    return pkl, eyelids


def demo_landmarks68(vertices: np.ndarray) -> np.ndarray:
    """The stand-in's own 68 face-landmark vertices (Multi-PIE layout), as FLAME's published ids are for FLAME.

    The reference head's 68 landmarks (ICT-FaceKit) are placed on the stand-in by the similarity that takes
    the reference's eye centres, nose tip, mouth corners and chin onto the stand-in's own features, then each
    is snapped to the nearest vertex of the stand-in's face.
    """
    from sheap_blender.core.arkit.mesh_transfer import fit_similarity
    from sheap_blender.core.arkit.reference import load_reference

    reference = load_reference()
    marks = reference.neutral[reference.landmarks68]
    source = np.stack([marks[36:42].mean(0), marks[42:48].mean(0), marks[30], marks[48], marks[54], marks[8]])
    head = vertices[:HEAD_RINGS * HEAD_COLUMNS + 1]
    front = np.flatnonzero(head[:, 2] > 0)
    anchors_xy = np.array([EYE_XY[1], EYE_XY[0], _FEATURES[1, :2], [-0.026, -0.045], [0.026, -0.045], [0.0, -0.085]])
    nearest = front[np.argmin(((head[front, None, :2] - anchors_xy[None]) ** 2).sum(-1), axis=0)]
    target = np.column_stack([anchors_xy, head[nearest, 2]])
    placed = fit_similarity(source, target).apply(marks)
    return front[np.argmin(((head[front, None, :] - placed[None]) ** 2).sum(-1), axis=0)]
