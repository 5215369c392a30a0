"""`backend preview` (the review video: the posed head drawn over every footage frame): frames/s on ONE core.

    .venv/bin/python benchmarks/preview.py [--frames 90] [--repeats 5]

On the demo stand-ins and `make-demo`'s astronaut clip (640x480), reconstructed once through the real
command line; then `review.preview.write_preview` (what `backend preview` runs) is timed in this process,
pinned to one CPU core (torch and OpenCV on one thread), for each style, after a warm-up; median
[min .. max] over the repeats. Baseline in the same repeats: decoding the footage and encoding it again
without drawing (the video's own cost), so the ratio says what drawing the head costs. Printed with
the head's size on the frames (the extent of its projected vertices, median over frames): the drawing's
cost grows with it. No goal: the figures are what the README quotes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import load_average, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)


def backend(*args) -> None:
    completed = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                               text=True)
    if completed.returncode != 0:
        raise SystemExit(f"backend {args[0]} failed:\n{completed.stderr[-2000:]}")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} [{min(values):.1f} .. {max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90, help="frames of the demo clip (it has 90)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())  # before pinning: the machine's cores
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2
    import numpy as np
    import torch

    from backend.footage.reader import open_footage
    from backend.model.flame_eval import vertex_chunks
    from backend.review.preview import FOURCC, write_preview
    from backend.standins.clip import video_codec
    from sheap_blender.core.camera import project_to_footage
    from sheap_blender.core.flame.model import load_flame
    from sheap_blender.core.result.result_format import read_result

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = work / "demo"
        backend("make-demo", demo)
        result_path = work / "astronaut.sheap.safetensors"
        backend("reconstruct", demo / "astronaut.mp4", "-o", result_path, "--flame", demo / "flame.safetensors",
                "--weights", demo / "demo_sheap_model.pt", "--end", args.frames, "--device", "cpu",
                "--progress", "none")
        result = read_result(result_path)
        if not result.valid.all():
            raise SystemExit(f"the reconstruction found the face on {int(result.valid.sum())} of {result.n_frames} "
                             "frames: the preview would not draw a head on every frame")
        model = load_flame(demo / "flame.safetensors")
        extents = []
        for rows, verts in vertex_chunks(model, result, "cpu", 64):
            uv = project_to_footage(verts.astype(np.float64), result.params["crop_box"][rows].astype(np.float64),
                                    result.fov_deg)
            extents.extend(np.ptp(uv, axis=1).max(axis=1))
        footage = open_footage(demo / "astronaut.mp4")
        print(f"one core (CPU {sorted(os.sched_getaffinity(0))[0]}); {result.n_frames} frames of "
              f"{footage.width}x{footage.height} ({video_codec(footage.path)}), the head "
              f"{statistics.median(extents):.0f} px across (median; {min(extents):.0f} .. {max(extents):.0f}); "
              f"output .mp4 ({FOURCC['.mp4']}); median [min .. max] of {args.repeats} runs after a warm-up "
              f"[demo weights]")

        def copy_video() -> float:
            """Decode the footage and encode it again, nothing drawn: frames/s."""
            started = time.perf_counter()
            out = work / "copy.mp4"
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*FOURCC[".mp4"]), footage.fps,
                                     (footage.width, footage.height))
            n = 0
            for _, rgb in footage.frames(0, result.n_frames):
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                n += 1
            writer.release()
            return n / (time.perf_counter() - started)

        def preview(style: str) -> float:
            started = time.perf_counter()
            stats = write_preview(result_path, demo / "flame.safetensors", work / f"{style}.mp4", style=style)
            if stats.frames != result.n_frames:
                raise SystemExit(f"preview wrote {stats.frames} of {result.n_frames} frames")
            return stats.frames / (time.perf_counter() - started)

        runs: dict[str, list[float]] = {"decode + encode, nothing drawn": [], "preview --style shaded": [],
                                        "preview --style wireframe": []}
        copy_video(), preview("shaded"), preview("wireframe")  # warm-up: file cache, FLAME on torch
        for _ in range(args.repeats):  # interleaved, so that a change of the machine's load hits all alike
            runs["decode + encode, nothing drawn"].append(copy_video())
            runs["preview --style shaded"].append(preview("shaded"))
            runs["preview --style wireframe"].append(preview("wireframe"))
    baseline = statistics.median(runs["decode + encode, nothing drawn"])
    print(f"{'':32s} {'frames/s':>26s}   share of the time spent drawing")
    for name, values in runs.items():
        drawing = 1 - statistics.median(values) / baseline
        print(f"{name:32s} {summary(values):>26s}   {'' if name.startswith('decode') else f'{drawing:.0%}'}")
    print(f"({load_average()} at the end)")


if __name__ == "__main__":
    main()
