"""The precision self-check's figures, its cost, where the reduced precision's deviation comes from, and speed.

    .venv/bin/python benchmarks/precision_check.py [--reduced bf16|fp16] [--repeats 3] [--device cpu|cuda]
        [--weights MODEL.pt]

The figures of docs/performance.md's Precision section, on the demo FLAME stand-in:

1. The self-check (`backend/model/precision.py`, as `reconstruct --precision bf16` runs it: its 8
   crops of three real people, framed by the pipeline's crop rule) on the small demo stand-in and on
   the release-sized stand-in (`make-demo --full-size`, or --weights): the vertices' deviation as
   posed, in the head's shape (rigidly aligned) and in the image (crop pixels), mean / max, against
   the limits; what `--precision auto` does on this machine; and what the check costs: loading at the
   reduced precision (with the check) minus loading at float32 (no check), median of --repeats.
2. Where the large network's deviation comes from (mean as posed mm / shape mm / image px): each
   output group alone at the reduced precision, the rest float32; and the whole network in float32
   except one thing: its weights rounded to the reduced precision, or its input crops rounded; and
   `torch.autocast` (float32 between the matrix products) instead of casting.
3. The large network's speed on the check's batch of 8 crops: images/s at float32, bfloat16, float16
   and under autocast, median of --repeats after a warm-up (on a CPU without native bfloat16 the
   reduced precisions are emulated: slow).

No goal: the figures are quoted in the docs; the self-check's limits are judged in every run of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backend  # noqa: E402, F401, I001 - first: it sets the OpenMP wait policy before torch loads, as `python -m backend` does
import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import load_average, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)
from backend.model.flame import Flame  # noqa: E402
from backend.model.precision import (  # noqa: E402
    CHECK_CROPS,
    DTYPES,
    Deviation,
    check_crops,
    limits_text,
    load_predictor,
    native_bf16,
    posed_vertices,
    precision_line,
)
from backend.model.predictor import REQUIRED_OUTPUTS, Predictor  # noqa: E402
from backend.standins.flame import write_demo_flame  # noqa: E402
from backend.standins.predictor import write_demo_predictor, write_full_size_predictor  # noqa: E402
from sheap_blender.core.flame.model import load_flame  # noqa: E402


def timed(function, repeats: int) -> tuple[float, object]:
    """(median seconds over `repeats` calls, the last call's value)."""
    seconds, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), value


def figures(deviation: Deviation) -> str:
    return (f"as posed {deviation.mean_mm:.3f} / {deviation.max_mm:.3f} mm, shape {deviation.shape_mean_mm:.3f} / "
            f"{deviation.shape_max_mm:.3f} mm, image {deviation.image_mean_px:.3f} / {deviation.image_max_px:.3f} px")


def means(deviation: Deviation) -> str:
    return f"{deviation.mean_mm:.3f} mm / {deviation.shape_mean_mm:.3f} mm / {deviation.image_mean_px:.3f} px"


def self_check(name: str, weights: Path, device: torch.device, reduced: str, flame_model, repeats: int) -> Predictor:
    """Part 1 for one network: the check's figures and cost; returns the checked predictor."""
    plain, _ = timed(lambda: load_predictor(weights, device, "fp32", flame_model), repeats)
    checked, predictor = timed(lambda: load_predictor(weights, device, reduced, flame_model), repeats)
    check = predictor.precision_check
    auto = load_predictor(weights, device, "auto", flame_model)
    print(f"\n{name} ({weights.name}, {weights.stat().st_size / 1e6:.0f} MB)")
    if check.deviation is None:
        print(f"  the network fails at {reduced}: {check.failure}")
        return predictor
    print(f"  {reduced} vs float32 on {check.crops} crops, mean / max: {figures(check.deviation)}; "
          f"{'within' if check.deviation.within_limits() else 'BEYOND'} the {limits_text()}")
    print(f"  the check costs {checked - plain:.2f} s (loading at {reduced} {checked:.2f} s, at float32 {plain:.2f} s; "
          f"median of {repeats})")
    print(f"  `--precision auto` here: {precision_line(auto, 'auto')}")
    return predictor


def breakdown(weights: Path, device: torch.device, reduced: str, flame_model, checked: Predictor) -> None:
    """Part 2: where the deviation comes from."""
    crops = check_crops()
    flame = Flame(flame_model).to(device)
    full = Predictor(weights, device)
    reference = full.predict(crops)
    posed = posed_vertices(flame, reference)

    def deviation(outputs: dict[str, np.ndarray]) -> Deviation:
        return Deviation.between(posed, posed_vertices(flame, outputs))

    low = checked.predict(crops)
    print(f"\nwhere the deviation comes from (mean as posed / shape / image), {reduced} vs float32:")
    print(f"  {'the whole network at ' + reduced:44s} {means(deviation(low))}")
    for name, _ in REQUIRED_OUTPUTS.values():
        print(f"  {name + ' alone at ' + reduced:44s} {means(deviation({**reference, name: low[name]}))}")
    rounded = Predictor(weights, device)
    rounded.module.to(DTYPES[reduced]).to(torch.float32)  # weights rounded, everything computed in float32
    print(f"  {'float32, the weights rounded to ' + reduced:44s} {means(deviation(rounded.predict(crops)))}")
    inputs = torch.from_numpy(crops).to(DTYPES[reduced]).float().numpy()
    print(f"  {'float32, the input crops rounded to ' + reduced:44s} {means(deviation(full.predict(inputs)))}")
    with torch.autocast(device.type, dtype=DTYPES[reduced]):
        print(f"  {'torch.autocast to ' + reduced + ' (no cast)':44s} {means(deviation(full.predict(crops)))}")


def speed(weights: Path, device: torch.device, repeats: int) -> None:
    """Part 3: images/s of the network on the check's batch, per precision."""
    crops = check_crops()
    rows = {}
    for precision in ("fp32", "bf16", "fp16"):
        predictor = Predictor(weights, device)
        if precision != "fp32":
            predictor.cast(DTYPES[precision])
        predictor.predict(crops)  # warm-up
        rows[precision] = timed(lambda p=predictor: p.predict(crops), repeats)[0]
    predictor = Predictor(weights, device)

    def autocast() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            predictor.predict(crops)

    autocast()
    rows["autocast bf16"] = timed(autocast, repeats)[0]
    print(f"\nspeed of the network on {len(crops)} crops (images/s, median of {repeats}; {load_average()}):")
    for name, seconds in rows.items():
        print(f"  {name:16s} {len(crops) / seconds:7.2f}   ({rows['fp32'] / seconds:.2f} x float32)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reduced", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--weights", type=Path, help="a SHeaP archive instead of the release-sized stand-in")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"{machine_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads; native bfloat16 on "
          f"{device.type}: {native_bf16(device)}")
    people = sorted({person for person, *_ in CHECK_CROPS})
    print(f"the check's crops: {len(CHECK_CROPS)} of {', '.join(people)}; demo FLAME stand-in")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flame_pkl, _ = write_demo_flame(work)
        flame_model = load_flame(flame_pkl)
        self_check("small demo stand-in", write_demo_predictor(work), device, args.reduced, flame_model, args.repeats)
        large = args.weights or write_full_size_predictor(work)
        label = "the network given" if args.weights else "release-sized stand-in (random weights)"
        checked = self_check(label, large, device, args.reduced, flame_model, args.repeats)
        if checked.precision_check.deviation is not None:
            breakdown(large, device, args.reduced, flame_model, checked)
        speed(large, device, args.repeats)
    print(f"\n({load_average()} at the end)")


if __name__ == "__main__":
    main()
