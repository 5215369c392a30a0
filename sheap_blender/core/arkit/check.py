"""Checks of a built ARKit solve against reference shapes: the round trip and a second source.

- Round trip: faces made of the calibration reference's own shapes with known weights (each alone at
  1, and random sparse mixtures) go through the fit; the weights must come back.
- Cross-source: another ARKit head's named shapes are brought onto FLAME the same way (landmarks,
  warp, closest points), each split into what one FLAME joint does (the jaw's angles, or an eye's,
  whose lids may follow it as the solve allows) and the rest (the face's own shape), whichever
  leaves the least unexplained, and solved; the solve's largest coefficient should be the shape's name.
Used by the tests and by benchmarks/arkit_calibration.py, which prints the figures in docs/arkit.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..flame.model import FlameModel
from ..rotation import axis_angle_to_matrix
from .names import ARKIT_NAMES
from .reference import ArkitReference
from .solve import ArkitSolver, jaw_offsets, transfer_shapes, yaw_pitch_roll

JAW_GRID = np.linspace(-0.4, 0.4, 17)  # radians of jaw pitch and yaw tried when bringing a shape onto FLAME
JOINT_KEPT = 0.5  # a joint is posed only where it leaves at most this share of what the face alone leaves


@dataclass(frozen=True)
class RoundTrip:
    single_error: np.ndarray  # (S,) largest weight error when shape s alone is at 1
    mixed_error: float  # largest weight error over the random mixtures
    mixed_mean_error: float


@dataclass(frozen=True)
class CrossSource:
    names: tuple[str, ...]  # the second source's shapes
    weights: np.ndarray  # (N, 52) the solve's coefficients for each
    joint: np.ndarray  # (N,) the joint pose each was given (0: none; see _joint_candidates)

    @property
    def top(self) -> list[str]:
        return [ARKIT_NAMES[i] for i in self.weights.argmax(1)]

    @property
    def hits(self) -> np.ndarray:
        return np.array([top == name for top, name in zip(self.top, self.names)])


def round_trip(solver: ArkitSolver, mixtures: int = 200, seed: int = 0) -> RoundTrip:
    """Fit faces built from the calibration's own shapes with known weights."""
    basis = solver.calibration.basis
    n = len(basis)
    single = solver.shape_weights(np.einsum("fs,src->frc", np.eye(n), basis))
    rng = np.random.default_rng(seed)
    known = rng.uniform(0.0, 1.0, (mixtures, n)) * (rng.random((mixtures, n)) < 0.12)
    mixed = np.abs(solver.shape_weights(np.einsum("fs,src->frc", known, basis)) - known)
    return RoundTrip(np.abs(single - np.eye(n)).max(1), float(mixed.max()), float(mixed.mean()))


def _joint_candidates(solver: ArkitSolver, model: FlameModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each single joint can do: (K, 52) the coefficients it reads as, (K, R, 3) its motion, (K,) its angle.

    Candidate 0 is no joint at all; then the jaw's pitch and yaw, then each eye's yaw and pitch on grids.
    """
    region = solver.calibration.region
    pitch, yaw = np.meshgrid(JAW_GRID, JAW_GRID, indexing="ij")
    jaw = np.column_stack([pitch.ravel(), yaw.ravel(), np.zeros(pitch.size)])
    jaw_read = solver.jaw_weights(yaw_pitch_roll(axis_angle_to_matrix(jaw)))
    jaw_motion = jaw_offsets(model, region, axis_angle_to_matrix(jaw))
    scale = solver.calibration.gaze_full_scale
    steps = np.linspace(-scale, scale, 9)
    eye_yaw, eye_pitch = (a.ravel() for a in np.meshgrid(steps, steps, indexing="ij"))
    turn = np.column_stack([eye_yaw, eye_pitch, np.zeros(eye_yaw.size)])
    still = np.zeros_like(turn)
    gaze_read = np.concatenate([solver.gaze_weights(turn, still), solver.gaze_weights(still, turn)])
    read = np.concatenate([np.zeros((1, jaw_read.shape[1])), jaw_read, gaze_read])
    motion = np.concatenate([np.zeros((1, len(region), 3)), jaw_motion, np.zeros((len(gaze_read), len(region), 3))])
    turn = np.concatenate([[0.0], np.linalg.norm(jaw, axis=1), np.tile(np.linalg.norm(turn, axis=1), 2)])
    return read, motion, turn


def cross_source(solver: ArkitSolver, model: FlameModel, reference: ArkitReference) -> CrossSource:
    """Solve each of `reference`'s shapes brought onto `model`'s face (see the module's docstring).

    Bringing a shape onto FLAME: of all single joint poses (none, the jaw, either eye), the one that
    leaves the least for the face's own shape to explain, as the solve reads a FLAME frame.
    """
    columns, weight, n_shapes = solver.columns, solver.calibration.vertex_weight, len(solver.calibration.basis)
    transferred = transfer_shapes(model, reference, solver.calibration.region)
    read, motion, turn = _joint_candidates(solver, model)
    rows, joints = [], []
    for start in range(0, len(transferred.offsets), 8):  # a few shapes at a time: bounded memory
        face = transferred.offsets[start:start + 8, None] - motion[None]  # (n, K, R, 3)
        n, k = face.shape[:2]
        fitted = solver.column_weights(face.reshape(n * k, *face.shape[2:]), np.tile(read, (n, 1))).reshape(n, k, -1)
        rest = face - (fitted @ columns.reshape(len(columns), -1)).reshape(face.shape)
        left = ((rest**2).sum(-1) * weight).sum(-1)  # (n, K)
        left += 1e-3 * left[:, :1] * turn / turn.max()  # of poses that explain as much, the smallest turn
        best = np.argmin(left, axis=1)
        best = np.where(left[np.arange(n), best] <= JOINT_KEPT * left[:, 0], best, 0)
        for i, b in enumerate(best):
            rows.append(np.clip(solver.channel_weights(fitted[i, b][None, :n_shapes])[0] + read[b], 0.0, 1.0))
            joints.append(b)
    return CrossSource(transferred.channels, np.array(rows), np.array(joints))
