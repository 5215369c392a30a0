"""The FLAME -> ARKit solve's calibration figures (docs/arkit.md): round trip, cross-source, what FLAME can express.

    .venv/bin/python benchmarks/arkit_calibration.py [--flame FLAME] [--pictures DIR]

Without --flame it makes the demo stand-in (`backend make-demo`) and says so; with your FLAME 2020 file
(`generic_model.pkl` or its converted .safetensors) it measures the solve as it is built for you.

1. Round trip: faces made of the calibration reference's own shapes (ICT-FaceKit) with known weights,
   each alone at 1 and 200 random sparse mixtures; the largest weight error (goal <= 0.05).
2. Cross-source: Apple's ARKit shapes (tests/data, from the SAiD repository) brought onto FLAME the same
   way and solved (core/arkit/check.py); the confusion table (the largest coefficient of each); goal:
   the same-named channel wins for >= 80% of the 51 shapes. For scale, the same comparison with ICT's own
   face as the target (no FLAME in between): how far the two references agree at best.
3. What FLAME's expression space can express: each transferred shape fitted by FLAME's 100 expression
   and 2 eyelid directions (least squares), the share of it left over, per channel.
With --pictures DIR: the round trip and cross-source tables as PNG heat maps (matplotlib).
Prints a met / MISS line per goal; the exit code counts the MISSes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sheap_blender.core.arkit.check import cross_source, round_trip  # noqa: E402
from sheap_blender.core.arkit.mesh_transfer import (  # noqa: E402
    closest_surface_points,
    fit_similarity,
    thin_plate_warp,
    vertex_areas,
)
from sheap_blender.core.arkit.names import ARKIT_INDEX, ARKIT_NAMES  # noqa: E402
from sheap_blender.core.arkit.reference import ArkitReference, load_reference, read_reference  # noqa: E402
from sheap_blender.core.arkit.solve import GAZE_CHANNELS, ArkitSolver, bounded_least_squares  # noqa: E402
from sheap_blender.core.flame.model import N_SHAPE, FlameModel, load_flame  # noqa: E402

APPLE = REPO / "tests" / "data" / "apple_arkit_reference.safetensors"
ROUND_TRIP_GOAL = 0.05
CROSS_SOURCE_GOAL = 0.80


def verdict(met: bool) -> str:
    return "met" if met else "MISS"


def demo_flame() -> FlameModel:
    directory = Path(tempfile.mkdtemp(prefix="arkit-calibration-"))
    subprocess.run([sys.executable, "-m", "backend", "make-demo", str(directory)], cwd=REPO, check=True,
                   capture_output=True)
    return load_flame(directory / "flame.safetensors")


def references_agree(target: ArkitReference, source: ArkitReference) -> np.ndarray:
    """(N, 52): `source`'s shapes brought onto `target`'s own face and fitted by `target`'s shapes (no FLAME)."""
    face = target.neutral[:target.face_vertices]
    similarity = fit_similarity(source.neutral[source.landmarks68], face[target.landmarks68])
    placed = similarity.apply(source.neutral)
    warped = thin_plate_warp(placed[source.landmarks68], face[target.landmarks68], placed)
    surface = closest_surface_points(face, warped, source.face_triangles)
    covered = surface.distance < 0.01
    offsets = surface.sample(source.face_triangles, source.offsets) @ (similarity.scale * similarity.rotation.T)
    fitted = [i for i, c in enumerate(target.channels) if c not in GAZE_CHANNELS]
    basis = target.offsets[fitted][:, :target.face_vertices][:, covered].reshape(len(fitted), -1) * 1000.0
    weight = np.repeat(vertex_areas(target.neutral, target.face_triangles)[:target.face_vertices][covered], 3)
    weight /= weight.sum() / 3
    gram = basis * weight @ basis.T
    energy = np.diag(gram)
    gram = gram + 0.002 * energy.min() * np.eye(len(energy))
    h = offsets[:, covered].reshape(len(offsets), -1) * 1000.0 * weight @ basis.T - 0.005 * np.sqrt(
        energy.min() * energy)
    weights = bounded_least_squares(gram, h)
    out = np.zeros((len(offsets), len(ARKIT_NAMES)))
    counts = np.zeros(len(ARKIT_NAMES))
    for j, i in enumerate(fitted):
        out[:, ARKIT_INDEX[target.channels[i]]] += weights[:, j]
        counts[ARKIT_INDEX[target.channels[i]]] += 1
    return out / np.maximum(counts, 1)


def flame_leftover(solver: ArkitSolver, model: FlameModel) -> dict[str, float]:
    """Per fitted channel: the share of its transferred shape FLAME's expression and eyelids leave unexplained."""
    region, weight = solver.calibration.region, np.repeat(solver.calibration.vertex_weight, 3)
    lids = model.eyelid_dirs if model.eyelid_dirs is not None else np.zeros((model.n_vertices, 3, 2))
    directions = np.concatenate([model.shapedirs[region][:, :, N_SHAPE:], lids[region]], axis=2)
    directions = directions.reshape(3 * len(region), -1) * np.sqrt(weight)[:, None]
    leftover: dict[str, list[float]] = {}
    for channel, shape in zip(solver.calibration.shape_channels, solver.calibration.basis):
        target = shape.reshape(-1) * np.sqrt(weight)
        coefficients = np.linalg.lstsq(directions, target, rcond=None)[0]
        rest = target - directions @ coefficients
        leftover.setdefault(channel, []).append(float(rest @ rest / max(target @ target, 1e-30)))
    return {channel: float(np.mean(values)) for channel, values in leftover.items()}


def print_table(title: str, names: tuple[str, ...], weights: np.ndarray) -> np.ndarray:
    """One line per shape: hit or not, its own coefficient, the three largest."""
    print(f"\n{title}")
    hits = []
    for name, row in zip(names, weights):
        top = np.argsort(-row)[:3]
        hit = ARKIT_NAMES[top[0]] == name
        hits.append(hit)
        largest = ", ".join(f"{ARKIT_NAMES[i]} {row[i]:.2f}" for i in top)
        print(f"  {'ok  ' if hit else 'MISS'} {name:20s} own {row[ARKIT_INDEX[name]]:.2f}   largest: {largest}")
    return np.array(hits)


def heat_map(path: Path, rows: tuple[str, ...], weights: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(14, 0.22 * len(rows) + 2.5))
    axes.imshow(weights, cmap="magma", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(len(ARKIT_NAMES)), ARKIT_NAMES, rotation=90, fontsize=7)
    axes.set_yticks(range(len(rows)), rows, fontsize=7)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flame", type=Path, help="your FLAME 2020 file (default: the demo stand-in)")
    parser.add_argument("--pictures", type=Path, help="write the tables as PNG heat maps into this folder")
    args = parser.parse_args()
    model = load_flame(args.flame) if args.flame else demo_flame()
    solver = ArkitSolver.for_flame(model)
    what = "the demo stand-in FLAME (demo weights: NOT FLAME; its mouth has no lips)" if model.is_demo else "FLAME"
    calibration = solver.calibration
    print(f"ARKit solve on {what}: {len(calibration.region)} face vertices take {len(calibration.basis)} shapes "
          f"of {load_reference().name.split(',')[0]}")
    jaw_open, jaw_left, jaw_right = np.degrees(calibration.jaw_full_scale)
    print(f"jaw full range: jawOpen {jaw_open:.1f} deg of pitch, jawLeft {jaw_left:+.1f} / jawRight {jaw_right:+.1f}"
          f" deg of yaw; gaze full range {np.degrees(calibration.gaze_full_scale):.1f} deg")
    misses = 0

    check = round_trip(solver)
    worst = int(np.argmax(check.single_error))
    print(f"\nround trip, each shape alone at 1: largest error {check.single_error.max():.3f} "
          f"({calibration.shape_channels[worst]}), median {np.median(check.single_error):.3f}")
    print(f"round trip, 200 random mixtures: largest error {check.mixed_error:.3f}, mean {check.mixed_mean_error:.4f}")
    met = max(check.single_error.max(), check.mixed_error) <= ROUND_TRIP_GOAL
    misses += not met
    print(f"goal: round trip within {ROUND_TRIP_GOAL}: {verdict(met)}")

    apple = read_reference(APPLE)
    crossed = cross_source(solver, model, apple)
    hits = print_table(f"cross-source: Apple's ARKit shapes on {what}", crossed.names, crossed.weights)
    gaze = np.array([name.startswith("eyeLook") for name in crossed.names])
    share = hits.mean()
    print(f"same-named channel largest: {hits.sum()} of {len(hits)} ({share:.0%}); without the 8 gaze shapes "
          f"{hits[~gaze].sum()} of {(~gaze).sum()} ({hits[~gaze].mean():.0%})")
    top3 = np.mean([ARKIT_INDEX[n] in np.argsort(-row)[:3] for n, row in zip(crossed.names, crossed.weights)])
    print(f"same-named channel among the three largest: {top3:.0%}")
    met = share >= CROSS_SOURCE_GOAL
    misses += not met
    print(f"goal: the same-named channel largest for >= {CROSS_SOURCE_GOAL:.0%} of Apple's shapes: {verdict(met)}")
    agree = references_agree(load_reference(), apple)
    agree_hits = print_table("for scale: Apple's shapes on ICT-FaceKit's own face (no FLAME)", apple.channels, agree)
    print(f"references agree: {agree_hits.sum()} of {len(agree_hits)} ({agree_hits.mean():.0%})")

    print(f"\nwhat FLAME's expression space leaves of each shape ({what}; 0% = FLAME expresses it fully):")
    leftover = flame_leftover(solver, model)
    for channel in ARKIT_NAMES:
        if channel in leftover:
            joint = "   (and the jaw joint)" if channel in ("jawOpen", "jawLeft", "jawRight") else ""
            print(f"  {channel:20s} {leftover[channel]:6.1%}{joint}")
        elif channel in GAZE_CHANNELS:
            print(f"  {channel:20s}   eye joints (gaze), not a shape")
        else:
            print(f"  {channel:20s}   not in the reference: always 0")

    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
        heat_map(args.pictures / "arkit_cross_source.png", crossed.names, crossed.weights,
                 f"Apple's ARKit shapes (rows) solved on {'the demo stand-in' if model.is_demo else 'FLAME'}")
        single = solver.channel_weights(solver.shape_weights(np.asarray(calibration.basis)))
        heat_map(args.pictures / "arkit_round_trip.png", calibration.shape_channels, single,
                 "ICT-FaceKit's shapes (rows) solved back")
    return misses


if __name__ == "__main__":
    sys.exit(main())
