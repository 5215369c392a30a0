"""torch's OpenMP threads sleeping (OMP_WAIT_POLICY=PASSIVE, the backend's default) or spinning (ACTIVE)
between operations: CPU time and speed of a whole `reconstruct`, alone and beside a busy process.

    .venv/bin/python benchmarks/wait_policy.py [--frames 64] [--runs 2] [--precision auto] [--contenders 1]

The backend sets OMP_WAIT_POLICY=PASSIVE before torch loads (`backend/__init__.py`; one already in the
environment wins), so that torch's threads leave the cores to the decoder and the face tracker between
operations. Each run is a fresh process with the policy in its environment (OpenMP reads it once),
which loads the release-sized stand-in (`make-demo --full-size`) at --precision, warms up on 16
frames and then times `reconstruct` on --frames frames of the astronaut clip at 1080p: the CPU time of
the whole process (all threads) per frame, and end-to-end frames/s; every frame must have the face.
The policies alternate run by run (a drift of the machine's load hits both alike); then the same
again beside --contenders processes that spin on a core each (other work on the machine). Medians
and every run's figure. No goal: the figures are what docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import json
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

POLICIES = ("PASSIVE", "ACTIVE")


def child(args: argparse.Namespace) -> None:
    """One run in this process (OMP_WAIT_POLICY already in the environment): one JSON line on stdout."""
    import threading

    import torch

    import backend  # noqa: F401 - the policy is already in the environment (set by the parent), as users may set it
    from backend.footage.reader import open_footage
    from backend.model.precision import load_predictor
    from backend.pipeline import ReconstructJob, reconstruct
    from sheap_blender.core.flame.model import load_flame

    flame = load_flame(args.flame)
    predictor = load_predictor(args.weights, torch.device("cpu"), args.precision, flame)
    footage = open_footage(args.clip)
    reconstruct(ReconstructJob(footage, predictor, flame, 0, 16, 16), stop=threading.Event())  # warm-up
    job = ReconstructJob(footage, predictor, flame, 0, args.frames, 16)
    wall, cpu = time.perf_counter(), time.process_time()
    result = reconstruct(job, stop=threading.Event())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "precision": predictor.precision,
                      "frames": result.n_frames, "valid": int(result.valid.sum()),
                      "cpu_ms_per_frame": 1000 * cpu / result.n_frames, "fps": result.n_frames / wall}))


def run(policy: str, work: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", "--clip", str(work / "astronaut.mp4"), "--flame",
               str(work / "generic_model.pkl"), "--weights", str(work / "demo_sheap_vit_b16.pt"), "--frames",
               str(args.frames), "--precision", args.precision]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                               env={**os.environ, "OMP_WAIT_POLICY": policy})
    if completed.returncode != 0:
        raise SystemExit(f"the {policy} run failed:\n{completed.stderr[-2000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    if figures["policy"] != policy or figures["valid"] != args.frames or figures["frames"] != args.frames:
        raise SystemExit(f"the {policy} run: {figures}: the face was not found on every frame, or the policy was lost")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2, help="runs per policy and condition")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--contenders", type=int, default=1, help="busy processes beside the second set of runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from backend.standins.clip import H264_WHERE_POSSIBLE, video_codec, write_demo_clip
    from backend.standins.flame import write_demo_flame
    from backend.standins.predictor import write_full_size_predictor

    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_demo_flame(work)
        write_full_size_predictor(work)
        clip, _ = write_demo_clip(work, n_frames=args.frames, fps=30, size=(1920, 1080), fourccs=H264_WHERE_POSSIBLE)
        print(f"release-sized stand-in, --precision {args.precision}, {args.frames} frames of 1080p "
              f"({video_codec(clip)}), batch 16; {args.runs} runs per policy and condition, alternating")
        conditions = {"alone": 0, f"beside {args.contenders} busy process(es)": args.contenders}
        for condition, contenders in conditions.items():
            spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(contenders)]
            try:
                runs: dict[str, list[dict]] = {policy: [] for policy in POLICIES}
                for i in range(args.runs):
                    for policy in POLICIES if i % 2 == 0 else reversed(POLICIES):
                        runs[policy].append(run(policy, work, args))
            finally:
                for process in spinning:
                    process.kill()
                    process.wait()
            precision = runs["PASSIVE"][0]["precision"]
            print(f"\n{condition} (network at {precision}; {load_average()}):")
            print(f"  {'OMP_WAIT_POLICY':16s} {'CPU ms a frame (all threads)':>36s} {'end to end frames/s':>30s}")
            for policy, figures in runs.items():
                cpu = [f["cpu_ms_per_frame"] for f in figures]
                fps = [f["fps"] for f in figures]
                print(f"  {policy:16s} {statistics.median(cpu):10.1f} ({', '.join(f'{v:.1f}' for v in cpu)}){'':8s}"
                      f"{statistics.median(fps):10.2f} ({', '.join(f'{v:.2f}' for v in fps)})")
            passive = statistics.median(f["fps"] for f in runs["PASSIVE"])
            active = statistics.median(f["fps"] for f in runs["ACTIVE"])
            print(f"  end to end PASSIVE / ACTIVE = {passive / active:.2f}")


if __name__ == "__main__":
    main()
