"""Checks of a built ARKit solve against reference shapes: the round trip and a second source.

- Round trip: faces made of the calibration reference's own shapes with known weights (each alone at
  1, and random sparse mixtures) go through the fit; the weights must come back.
- Cross-source: another ARKit head's named shapes are brought onto FLAME the same way (landmarks,
  warp, closest points), each split into what FLAME's jaw joint does (the jaw angles that best
  explain it, kept when they explain at least half of it) and the rest (the face's own shape), and
  solved; the solve's largest coefficient should be the shape's own name.
Used by the tests and by benchmarks/arkit_calibration.py, which prints the figures in docs/arkit.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arkit_names import ARKIT_NAMES
from .arkit_reference import ArkitReference
from .arkit_solve import ArkitSolver, jaw_offsets, transfer_shapes, yaw_pitch_roll
from .flame_model import FlameModel
from .rotation import axis_angle_to_matrix

JAW_GRID = np.linspace(-0.4, 0.4, 41)  # radians of jaw pitch and yaw tried when bringing a shape onto FLAME
JAW_KEPT = 0.5  # the jaw is used when it leaves at most this share of the shape's energy


@dataclass(frozen=True)
class RoundTrip:
    single_error: np.ndarray  # (S,) largest weight error when shape s alone is at 1
    mixed_error: float  # largest weight error over the random mixtures
    mixed_mean_error: float


@dataclass(frozen=True)
class CrossSource:
    names: tuple[str, ...]  # the second source's shapes
    weights: np.ndarray  # (N, 52) the solve's coefficients for each
    jaw: np.ndarray  # (N, 3) the jaw axis-angle each was given

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


def cross_source(solver: ArkitSolver, model: FlameModel, reference: ArkitReference) -> CrossSource:
    """Solve each of `reference`'s shapes brought onto `model`'s face (see the module's docstring)."""
    region, weight = solver.calibration.region, solver.calibration.vertex_weight
    transferred = transfer_shapes(model, reference, region)
    pitch, yaw = np.meshgrid(JAW_GRID, JAW_GRID, indexing="ij")
    grid = np.column_stack([pitch.ravel(), yaw.ravel(), np.zeros(pitch.size)])
    jaw_moves = jaw_offsets(model, region, axis_angle_to_matrix(grid))  # (K, R, 3)
    rows, jaws = [], []
    for offsets in transferred.offsets:
        energy = ((offsets**2).sum(-1) * weight).sum()
        left = (((offsets[None] - jaw_moves) ** 2).sum(-1) * weight).sum(-1)
        best = int(np.argmin(left))
        jaw = grid[best] if left[best] <= JAW_KEPT * energy else np.zeros(3)
        face = offsets - jaw_moves[best] if jaw.any() else offsets
        coefficients = solver.channel_weights(solver.shape_weights(face[None]))[0]
        coefficients += solver.jaw_weights(yaw_pitch_roll(axis_angle_to_matrix(jaw[None])))[0]
        rows.append(np.clip(coefficients, 0.0, 1.0))
        jaws.append(jaw)
    return CrossSource(transferred.channels, np.array(rows), np.array(jaws))
