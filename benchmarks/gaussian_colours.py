"""How well the Gaussians' colours reproduce the footage: mean absolute RGB error (0..255) over the head.

    .venv/bin/python benchmarks/gaussian_colours.py [--frames 90] [--count 60000]

On the astronaut demo clip (demo stand-ins), `reconstruct --gaussians` through the real command line,
then the Gaussians are drawn back into the footage (CPU splatter of `backend.gaussians.splat_render`: projected
centres with their footprints, hidden ones removed by the z-buffer) and compared with it over the
head's pixels, on the 8 frames the colours came from and on held-out frames. Rows:
  projected colours   what `reconstruct --gaussians` writes on CPU
  flat mean colour    baseline: every Gaussian the mean footage colour of the head
  shuffled colours    baseline: the projected colours given to random Gaussians
On a CUDA machine with gsplat, the refined colours too (gsplat renders, refinement on the 8 frames).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.footage.reader import open_footage  # noqa: E402
from backend.gaussians.head import N_VIEWS  # noqa: E402
from backend.gaussians.splat_render import reprojection_error  # noqa: E402
from backend.gaussians.views import choose_rows, load_views  # noqa: E402
from sheap_blender.core.flame.model import load_flame  # noqa: E402
from sheap_blender.core.gaussians import binding_from_tensors  # noqa: E402
from sheap_blender.core.result.result_format import read_result  # noqa: E402


def backend(*args) -> None:
    subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90, help="frames of the demo clip to reconstruct")
    parser.add_argument("--count", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend("make-demo", work / "demo")
        out = work / "astronaut.sheap.safetensors"
        started = time.perf_counter()
        demo = work / "demo"
        backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "generic_model.pkl",
                "--weights", demo / "demo_sheap_model.pt", "--device", "cpu", "--end", args.frames,
                "--gaussians", "--gaussian-count", args.count)
        seconds = time.perf_counter() - started
        model = load_flame(work / "demo" / "generic_model.pkl")
        result = read_result(out)
        binding = binding_from_tensors(out, result.extra, len(model.faces))
        footage = open_footage(result.metadata["footage"])
        chosen = choose_rows(result, N_VIEWS)
        held_out = np.setdiff1d(np.arange(result.n_frames), chosen)[::7]
        groups = {"colouring frames": load_views(model, result, footage, chosen),
                  "held-out frames": load_views(model, result, footage, held_out)}
        head_mean = np.concatenate([v.image[v.head_mask] for v in groups["colouring frames"]]).mean(0)
        candidates = {
            "projected colours": binding.colour,
            "flat mean colour": np.tile(head_mean, (binding.count, 1)),
            "shuffled colours": binding.colour[np.random.default_rng(0).permutation(binding.count)],
        }
        print(f"astronaut demo, {result.n_frames} frames, {binding.count} Gaussians "
              f"({(binding.opacity > 0.5).mean():.0%} seen), reconstruct --gaussians took {seconds:.1f} s (CPU)")
        print(f"{'mean |RGB error| (0..255), CPU splat':40s}" + "".join(f"{name:>20s}" for name in groups))
        for label, colours in candidates.items():
            figures = [reprojection_error(views, binding, model.faces, colours) for views in groups.values()]
            print(f"{label:40s}" + "".join(f"{f:20.2f}" for f in figures))
        refine_on_gpu(model, binding, groups)


def refine_on_gpu(model, binding, groups) -> None:
    from backend.gaussians.refine import gsplat_available

    if not gsplat_available():
        print("(no CUDA + gsplat here: refinement not measured)")
        return
    import torch

    from backend.gaussians.refine import refine, render_views

    device = torch.device("cuda")

    def gsplat_error(b, views) -> float:
        renders = render_views(b, model.faces, views, device)
        pixels = [np.abs(r - v.image)[v.head_mask] for r, v in zip(renders, views)]
        return float(np.concatenate(pixels).mean() * 255)

    started = time.perf_counter()
    refined = refine(binding, model.faces, groups["colouring frames"], device)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(f"{'gsplat render, projected colours':40s}" + "".join(f"{gsplat_error(binding, v):20.2f}"
                                                             for v in groups.values()))
    print(f"{'gsplat render, refined':40s}" + "".join(f"{gsplat_error(refined, v):20.2f}" for v in groups.values()))
    print(f"{'CPU splat, refined':40s}" + "".join(
        f"{reprojection_error(v, refined, model.faces):20.2f}" for v in groups.values()))
    print(f"refinement: {seconds:.1f} s on {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
