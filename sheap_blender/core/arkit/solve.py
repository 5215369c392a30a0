"""FLAME parameters -> ARKit's 52 coefficients, head and eye rotations: a solve calibrated on a reference head.

Built on the user's machine from the user's own FLAME file (nothing derived from FLAME ships) and
cached; the demo stand-in goes through the same procedure with its own landmarks.

Build (`calibrate`): the reference's ARKit shapes (ICT-FaceKit) are brought onto FLAME's mean head
(mesh_transfer.py: 68 landmarks, a similarity, a thin-plate warp, closest points), giving each
shape as offsets of FLAME's face vertices. The eyes' full range is read from the reference too: the
angle its upper lid turns about the eye's centre in eyeLookDown.

Solve, per frame:
- The face's own shape: FLAME's face vertices with the frame's expression and eyelids, before any
  joint turns them, minus the neutral template. These offsets are explained by the transferred
  shapes in bounded least squares (weights in 0..1, area-weighted vertices, a small L1 pull to zero
  so a shape must really be there to show), solved by projected coordinate descent on the shapes'
  Gram matrix for all frames at once. The offsets are linear in the parameters, so the fit's
  right-hand side is one small matrix product per frame.
- Where FLAME has a joint, the channel is the joint's angle over a full range calibrated on the
  reference: jawOpen is the jaw's pitch, jawLeft/jawRight its yaw, each divided by the angle whose
  FLAME jaw (skinning and pose correctives) best reproduces the reference's transferred shape;
  the expression's own share of those channels (lips parted without the jaw) is added.
  eyeLookIn/Out/Up/Down are each eye's yaw and pitch over the eye's full range, read from the
  reference: the angle its upper lid turns about the eye's centre in eyeLookDown. The lids follow
  the eye up and down (in the reference's gaze shapes, as in people): the fit may explain the lids
  by that motion, up to the frame's own eyeLookUp/Down, so lids lowered by a downward look read as
  eyeLookDown, not as a blink (ARKit's own gaze shapes carry it on the character), while lids that
  do not follow are no blink either.
- The head's rotation relative to the camera is FLAME's root and neck together.
Rotations are returned as yaw, pitch, roll in radians with Live Link Face's signs (docs/arkit.md):
positive yaw = toward the performer's right, positive pitch = down, positive roll = the top of the head
toward the performer's left. About ARKit's face axes (+X the face's left, +Y up, +Z out of the face),
right-handed: R = Ry(-yaw) Rx(pitch) Rz(-roll) (`yaw_pitch_roll` is the right-handed decomposition).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..flame.landmarks import landmarks68
from ..flame.model import N_SHAPE, FlameModel, file_sha256
from ..flame.params import FlameParams
from ..result.result_format import Result
from ..rotation import axis_angle_to_matrix
from .live_link_csv import LiveLinkTake
from .mesh_transfer import closest_surface_points, fit_similarity, thin_plate_warp, vertex_areas, vertex_normals
from .names import ARKIT_INDEX, N_ARKIT
from .reference import ICT_FACEKIT, ArkitReference, load_reference

SOLVE_VERSION = "arkit-solve-2"  # raise whenever what `calibrate` builds changes: caches are keyed by it
GAZE_CHANNELS = tuple(f"eyeLook{d}{s}" for s in ("Left", "Right") for d in ("Down", "In", "Out", "Up"))
JAW_CHANNELS = ("jawOpen", "jawLeft", "jawRight")  # the jaw joint's pitch, yaw, yaw
JAW_SEARCH = np.linspace(-0.8, 0.8, 321)  # radians tried for each jaw channel's full range
MAX_DISTANCE = 0.01  # metres: a FLAME vertex farther than this from the warped reference face takes no shape
MIN_FACING = 0.5  # cosine: ... or whose normal turns away from the reference surface's by more than 60 degrees
# Regularisation, in weight units of the faintest shape (the smallest mean squared offset): its weight is
# lowered by about L1_PULL (a shape must show above noise to count; larger shapes less, as 1/sqrt(energy)),
# and a ridge of RIDGE times its energy, the same for every shape, keeps near-duplicates from trading off.
L1_PULL = 0.005
RIDGE = 0.002
SWEEPS = 60  # coordinate-descent sweeps; the solve's tests check convergence against many more
# right-handed yaw, pitch, roll about ARKit's face axes -> Live Link Face's: the app's yaw and roll turn the other way
LIVE_LINK_SIGNS = np.array([-1.0, 1.0, -1.0])


@dataclass(frozen=True)
class ArkitFrames:
    """One row per frame."""

    weights: np.ndarray  # (F, 52) in ARKIT_NAMES order, 0..1
    head: np.ndarray  # (F, 3) yaw, pitch, roll of the head relative to the camera, radians, Live Link Face's signs
    left_eye: np.ndarray  # (F, 3) the face's left eye relative to the head, the same signs
    right_eye: np.ndarray  # (F, 3)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` derives from a FLAME model and a reference (cached)."""

    region: np.ndarray  # (R,) FLAME vertices that take the reference's shapes
    vertex_weight: np.ndarray  # (R,) their share of the face's area, summing to 1
    basis: np.ndarray  # (S, R, 3) metres: the fitted shapes on those vertices
    shape_channels: tuple[str, ...]  # (S,) the ARKit channel of each fitted shape
    gaze_basis: np.ndarray  # (8, R, 3) metres: the lid motion of each GAZE_CHANNELS shape at 1
    gaze_full_scale: float  # radians of eye turn for eyeLook* = 1
    jaw_full_scale: np.ndarray  # (3,) signed radians of jaw pitch for jawOpen = 1, of yaw for jawLeft, jawRight

    def to_tensors(self) -> dict[str, np.ndarray]:
        return {"region": self.region.astype(np.int64), "vertex_weight": self.vertex_weight.astype(np.float64),
                "basis": self.basis.astype(np.float32), "gaze_basis": self.gaze_basis.astype(np.float32),
                "gaze_full_scale": np.array([self.gaze_full_scale]),
                "jaw_full_scale": self.jaw_full_scale.astype(np.float64)}


def yaw_pitch_roll(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3): R = Ry(yaw) Rx(pitch) Rz(roll)."""
    pitch = np.arcsin(np.clip(-rotation[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(rotation[..., 0, 2], rotation[..., 2, 2])
    roll = np.arctan2(rotation[..., 1, 0], rotation[..., 1, 1])
    return np.stack([yaw, pitch, roll], axis=-1)


def live_link_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) a rotation in ARKit's face axes -> (..., 3) yaw, pitch, roll as Live Link Face writes them."""
    return yaw_pitch_roll(rotation) * LIVE_LINK_SIGNS


def lost_blinks(result: Result, model: FlameModel) -> str:
    """A warning when the result has eyelid weights the FLAME file has no shapes for; '' otherwise."""
    if model.eyelid_dirs is not None or not np.any(result.flame_params().eyelids):
        return ""
    return ("the FLAME file has no eyelid shapes but the result has eyelid weights: blinks cannot be carried "
            "(eyeBlink stays 0); convert it with `python -m backend convert-flame generic_model.pkl --eyelids "
            "eyelids.pt -o flame.safetensors` and use that file")


def gaze_full_scale(reference: ArkitReference) -> float:
    """The angle the reference's upper lid turns about the eye's centre in eyeLookDown (both eyes' mean).

    The upper lid follows the eye down (lid-globe coupling), so this is the eye turn the reference
    calls eyeLookDown = 1; ARKit gives each eye one range, taken for all four directions.
    """
    if reference.eye_centres is None:
        raise ValueError(f"{reference.name}: no eye centres to calibrate gaze")
    angles = []
    for side, centre in zip(("Left", "Right"), reference.eye_centres):
        index = reference.channels.index(f"eyeLookDown{side}")
        offsets = reference.offsets[index, :reference.face_vertices]
        moved = np.linalg.norm(offsets, axis=1)
        lid = moved > 0.3 * moved.max()
        p = reference.neutral[:reference.face_vertices][lid] - centre
        q = p + offsets[lid]
        u, _, vt = np.linalg.svd((moved[lid, None] * q).T @ p)
        rotation = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
        angles.append(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)))
    return float(np.mean(angles))


def jaw_offsets(model: FlameModel, region: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(K, 3, 3) jaw rotations of the mean face -> (K, R, 3) metres the region moves (skinning and correctives)."""
    turn = rotations - np.eye(3)
    template = model.v_template[region]
    correctives = model.posedirs[region][:, :, 9:18]  # the jaw's 9 pose features
    posed = template + np.einsum("rck,nk->nrc", correctives, turn.reshape(-1, 9))
    joint = model.j_regressor[2] @ model.v_template
    swung = np.einsum("nij,nrj->nri", turn, posed - joint)
    return posed + model.weights[region, 2][:, None] * swung - template


def jaw_full_scale(model: FlameModel, region: np.ndarray, vertex_weight: np.ndarray,
                   shapes: dict[str, np.ndarray]) -> np.ndarray:
    """For jawOpen (pitch), jawLeft and jawRight (yaw): the signed jaw angle that best reproduces the shape."""
    scales = []
    for channel, axis in zip(JAW_CHANNELS, (0, 1, 1)):
        axis_angles = np.zeros((len(JAW_SEARCH), 3))
        axis_angles[:, axis] = JAW_SEARCH
        moved = jaw_offsets(model, region, axis_angle_to_matrix(axis_angles))
        error = (((moved - shapes[channel]) ** 2).sum(-1) * vertex_weight).sum(-1)
        best = int(np.clip(np.argmin(error), 1, len(JAW_SEARCH) - 2))
        # the parabola through the best grid angle and its neighbours: a continuous minimum, so that last-bit
        # differences between machines move it by as little, not by a whole grid step
        before, at, after = error[best - 1:best + 2]
        curvature = before - 2 * at + after
        step = 0.5 * (before - after) / curvature if curvature > 0 else 0.0
        scales.append(JAW_SEARCH[best] + np.clip(step, -1.0, 1.0) * (JAW_SEARCH[1] - JAW_SEARCH[0]))
    return np.array(scales)


@dataclass(frozen=True)
class TransferredShapes:
    """A reference's shapes on FLAME's mean face: which vertices the reference covers, and the offsets there."""

    vertices: np.ndarray  # (N,) FLAME vertex ids asked for
    covered: np.ndarray  # (N,) bool: near the warped reference face and facing the same way
    offsets: np.ndarray  # (S, N, 3) metres, zero where not covered
    channels: tuple[str, ...]  # (S,) the ARKit channel of each shape


def transfer_shapes(model: FlameModel, reference: ArkitReference,
                    vertices: np.ndarray | None = None) -> TransferredShapes:
    """The reference's shapes read on FLAME's mean face (mesh_transfer.py); every non-eyeball vertex by default."""
    template = model.v_template
    flame_marks = template[landmarks68(model)]
    ref_marks = reference.neutral[reference.landmarks68]
    similarity = fit_similarity(ref_marks, flame_marks)
    placed = similarity.apply(reference.neutral)
    warped = thin_plate_warp(placed[reference.landmarks68], flame_marks, placed)
    if vertices is None:
        vertices = np.flatnonzero(model.weights[:, 3:5].sum(1) <= 0.5)  # not the eyeballs
    face_triangles = reference.face_triangles
    flame_normals = vertex_normals(template, model.faces)[vertices]
    surface = closest_surface_points(template[vertices], warped, face_triangles, point_normals=flame_normals)
    ref_normals = surface.sample(face_triangles, vertex_normals(warped, face_triangles))
    ref_normals /= np.maximum(np.linalg.norm(ref_normals, axis=1, keepdims=True), 1e-12)
    covered = (surface.distance < MAX_DISTANCE) & (np.einsum("ij,ij->i", flame_normals, ref_normals) > MIN_FACING)
    offsets = surface.sample(face_triangles, reference.offsets[:, :reference.face_vertices])
    offsets = offsets @ (similarity.scale * similarity.rotation.T) * covered[None, :, None]
    return TransferredShapes(vertices, covered, offsets, reference.channels)


def calibrate(model: FlameModel, reference: ArkitReference) -> Calibration:
    """Bring the reference's shapes onto `model`'s mean face (see the module's docstring)."""
    transferred = transfer_shapes(model, reference)
    region = transferred.vertices[transferred.covered]
    if len(region) < 100:
        raise InputError(None, f"the FLAME model's face does not line up with the ARKit reference "
                               f"({len(region)} vertices within {MAX_DISTANCE * 1000:.0f} mm)")
    fitted = [i for i, channel in enumerate(reference.channels) if channel not in GAZE_CHANNELS]
    # float32 as the cache stores them: a solve built now equals one loaded from the cache later
    basis = transferred.offsets[fitted][:, transferred.covered].astype(np.float32).astype(np.float64)
    gaze = [reference.channels.index(channel) for channel in GAZE_CHANNELS]
    gaze_basis = transferred.offsets[gaze][:, transferred.covered].astype(np.float32).astype(np.float64)
    area = vertex_areas(model.v_template, model.faces)[region]
    channels = tuple(reference.channels[i] for i in fitted)
    vertex_weight = area / area.sum()
    jaw = jaw_full_scale(model, region, vertex_weight, {c: basis[channels.index(c)] for c in JAW_CHANNELS})
    return Calibration(region=region, vertex_weight=vertex_weight, basis=basis, shape_channels=channels,
                       gaze_basis=gaze_basis, gaze_full_scale=gaze_full_scale(reference), jaw_full_scale=jaw)


def bounded_least_squares(gram: np.ndarray, h: np.ndarray, upper: np.ndarray | float = 1.0) -> np.ndarray:
    """Each row's min 1/2 w'Gw - h'w over 0 <= w <= upper: (S, S), (F, S) -> (F, S).

    Projected coordinate descent (Gauss-Seidel with clipping) for all rows at once, from the clipped
    unconstrained solution; it converges for any positive definite G, near-duplicate columns included.
    """
    upper = np.broadcast_to(upper, h.shape)
    diagonal = np.maximum(np.diag(gram), 1e-12)
    weights = np.clip(np.linalg.solve(gram, h.T).T, 0.0, upper)
    for _ in range(SWEEPS):
        for k in range(gram.shape[0]):
            step = (h[:, k] - weights @ gram[:, k]) / diagonal[k]
            weights[:, k] = np.clip(weights[:, k] + step, 0.0, upper[:, k])
    return weights


def _cache_name(model: FlameModel, reference_path: Path) -> str:
    flame = model.source_sha256 or hashlib.sha256(model.v_template.tobytes()).hexdigest()
    return f"{SOLVE_VERSION}-{flame[:16]}-{file_sha256(reference_path)[:12]}.safetensors"


class ArkitSolver:
    """The calibrated solve for one FLAME model (`for_flame` builds it or loads it from the cache)."""

    def __init__(self, model: FlameModel, calibration: Calibration):
        self.is_demo = model.is_demo
        self.calibration = calibration
        region = calibration.region
        n_region = len(region)
        expression = model.shapedirs[region][:, :, N_SHAPE:].reshape(3 * n_region, -1).T  # (100, 3R)
        lids = model.eyelid_dirs if model.eyelid_dirs is not None else np.zeros((model.n_vertices, 3, 2))
        self._offset_dirs = np.concatenate([expression, lids[region].reshape(3 * n_region, 2).T])  # (102, 3R)
        # Least squares in millimetres over the face's area: G = B^T W B, h = B^T W d. The columns are the
        # fitted shapes, then the lid motion of looking up and down, which a frame may use up to its own gaze.
        self._lid_channels = tuple(c for c in GAZE_CHANNELS if "Up" in c or "Down" in c)
        lid_basis = calibration.gaze_basis[[GAZE_CHANNELS.index(c) for c in self._lid_channels]]
        self.columns = np.concatenate([calibration.basis, lid_basis])  # (S + 4, R, 3) metres
        basis_mm = self.columns.reshape(len(self.columns), -1) * 1000.0
        weight = np.repeat(calibration.vertex_weight, 3)
        self._project = (basis_mm * weight).T  # (3R, S + 4): d (mm) -> h
        self._params_to_h = self._offset_dirs * 1000.0 @ self._project  # (102, S + 4): offsets are linear in params
        self._lid_index = np.array([ARKIT_INDEX[c] for c in self._lid_channels])
        gram = basis_mm * weight @ basis_mm.T
        energy = np.diag(gram).copy()
        faintest = max(energy.min(), 1e-12)
        self._gram = gram + RIDGE * faintest * np.eye(len(energy))
        self._pull = L1_PULL * np.sqrt(faintest * energy)
        self._channel_of_shape = np.array([ARKIT_INDEX[c] for c in calibration.shape_channels])
        self._shapes_per_channel = np.bincount(self._channel_of_shape, minlength=N_ARKIT)

    @classmethod
    def for_flame(cls, model: FlameModel, cache_dir: str | os.PathLike | None = None,
                  reference_path: str | os.PathLike = ICT_FACEKIT) -> ArkitSolver:
        """Load the calibration for `model` from `cache_dir`, or build it (a few seconds) and store it there."""
        from ..safetensors_file import read_safetensors, write_safetensors

        reference_path = Path(reference_path)
        cache = Path(cache_dir) / _cache_name(model, reference_path) if cache_dir is not None else None
        if cache is not None and cache.is_file():
            try:
                tensors, metadata = read_safetensors(cache)
                calibration = Calibration(
                    region=tensors["region"], vertex_weight=tensors["vertex_weight"],
                    basis=tensors["basis"].astype(np.float64),
                    gaze_basis=tensors["gaze_basis"].astype(np.float64),
                    shape_channels=tuple(metadata["shape_channels"].split(",")),
                    gaze_full_scale=float(tensors["gaze_full_scale"][0]),
                    jaw_full_scale=tensors["jaw_full_scale"])
                return cls(model, calibration)
            except (InputError, KeyError, ValueError):
                pass  # a damaged or foreign cache file is rebuilt below
        reference = load_reference() if reference_path == ICT_FACEKIT else _read(reference_path)
        calibration = calibrate(model, reference)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_safetensors(cache, calibration.to_tensors(),
                              {"format": SOLVE_VERSION, "shape_channels": ",".join(calibration.shape_channels),
                               "demo": "true" if model.is_demo else "false"})
        return cls(model, calibration)

    def face_offsets(self, params: FlameParams) -> np.ndarray:
        """(F, R, 3) metres: the region's shape from expression and eyelids, before the joints turn it."""
        coefficients = np.concatenate([params.expr, params.eyelids], axis=1).astype(np.float64)
        return (coefficients @ self._offset_dirs).reshape(len(coefficients), -1, 3)

    def shape_weights(self, offsets: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
        """(F, R, 3) metres of face shape -> (F, S) weights of the fitted shapes in 0..1.

        `joints` (F, 52): coefficients read from the joints; their eyeLookUp/Down let the lids follow the gaze.
        """
        return self.column_weights(offsets, joints)[:, :len(self.calibration.basis)]

    def column_weights(self, offsets: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
        """(F, R, 3) -> (F, S + 4): the fitted shapes' weights, then the gaze-following lids' (see `columns`)."""
        return self._fit(offsets.reshape(len(offsets), -1) * 1000.0 @ self._project, joints)

    def _fit(self, h: np.ndarray, joints: np.ndarray | None) -> np.ndarray:
        """Bounded least squares for every frame: min 1/2 w'Gw - h'w + pull'w over 0 <= w <= upper.

        The upper bound is 1 for the shapes, and the frame's own eyeLookUp/Down for the lids following them.
        """
        upper = np.ones_like(h)
        upper[:, len(self.calibration.basis):] = 0.0 if joints is None else joints[:, self._lid_index]
        return bounded_least_squares(self._gram, h - self._pull, upper)

    def channel_weights(self, shape_weights: np.ndarray) -> np.ndarray:
        """(F, S) -> (F, 52): split halves (browInnerUp_L/_R) averaged into their channel."""
        out = np.zeros((len(shape_weights), N_ARKIT))
        np.add.at(out.T, self._channel_of_shape, shape_weights.T)
        return out / np.maximum(self._shapes_per_channel, 1)

    def gaze_weights(self, left_eye: np.ndarray, right_eye: np.ndarray) -> np.ndarray:
        """(F, 3) yaw/pitch/roll of each eye (Live Link Face's signs) -> (F, 52) with only the eyeLook channels set."""
        out = np.zeros((len(left_eye), N_ARKIT))
        scale = self.calibration.gaze_full_scale
        # positive yaw turns toward the performer's right: "out" for the right eye, "in" for the left
        for side, angles, outward in (("Left", left_eye, -1.0), ("Right", right_eye, 1.0)):
            yaw, pitch = angles[:, 0] * outward, angles[:, 1]
            for channel, value in (("Out", yaw), ("In", -yaw), ("Down", pitch), ("Up", -pitch)):
                out[:, ARKIT_INDEX[f"eyeLook{channel}{side}"]] = np.clip(value / scale, 0.0, 1.0)
        return out

    def jaw_weights(self, jaw: np.ndarray) -> np.ndarray:
        """(F, 3) yaw/pitch/roll of the jaw -> (F, 52) with jawOpen, jawLeft, jawRight set."""
        out = np.zeros((len(jaw), N_ARKIT))
        for channel, angle, scale in zip(JAW_CHANNELS, (jaw[:, 1], jaw[:, 0], jaw[:, 0]),
                                         self.calibration.jaw_full_scale):
            out[:, ARKIT_INDEX[channel]] = np.clip(angle / scale, 0.0, 1.0) if scale else 0.0
        return out

    def solve(self, params: FlameParams) -> ArkitFrames:
        rotations = axis_angle_to_matrix(params.poses().astype(np.float64))  # (F, 5, 3, 3)
        head = live_link_angles(rotations[:, 0] @ rotations[:, 1])
        left_eye, right_eye = live_link_angles(rotations[:, 3]), live_link_angles(rotations[:, 4])
        coefficients = np.concatenate([params.expr, params.eyelids], axis=1).astype(np.float64)
        joints = self.gaze_weights(left_eye, right_eye) + self.jaw_weights(yaw_pitch_roll(rotations[:, 2]))
        fitted = self._fit(coefficients @ self._params_to_h, joints)[:, :len(self.calibration.basis)]
        weights = self.channel_weights(fitted) + joints
        return ArkitFrames(weights=np.clip(weights, 0.0, 1.0), head=head, left_eye=left_eye, right_eye=right_eye)


def _read(path: Path) -> ArkitReference:
    from .reference import read_reference

    return read_reference(path)


def take_for_result(result: Result, model: FlameModel, cache_dir: str | os.PathLike | None = None) -> LiveLinkTake:
    """A result's every frame as a Live Link Face take (row i is footage frame `result.frame_index[i]`)."""
    frames = ArkitSolver.for_flame(model, cache_dir).solve(result.flame_params())
    return LiveLinkTake(frames=result.frame_index.astype(np.float64), weights=frames.weights, head=frames.head,
                        left_eye=frames.left_eye, right_eye=frames.right_eye, fps=result.fps)
