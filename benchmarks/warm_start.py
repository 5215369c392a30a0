"""Time to first frame: a cold run (backend spawned, torch and model loaded) vs a warm second run.

    .venv/bin/python benchmarks/warm_start.py [--runs 3] [--device cpu]

Drives the backend exactly as the Blender extension does (sheap_blender.backend_client.reconstruction: the
`serve` subprocess and its JSON-lines protocol; no bpy needed), on the demo stand-ins and the
astronaut clip. "First frame" = the first progress event that reports a frame done. Goal (met /
MISS; the exit code counts it): the warm run's first frame in under 1 s on CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from sheap_blender.backend_client.reconstruction import Reconstruction, Request, drop_backend  # noqa: E402


def timed_run(request: Request) -> tuple[float, float, int]:
    """Seconds to the first finished frame and to the end, and the frame count."""
    started = time.perf_counter()
    first: list[float] = []

    def seen(run: Reconstruction) -> None:
        if run.frame > 0 and not first:
            first.append(time.perf_counter() - started)

    run = Reconstruction(request)
    while not run.finished:  # poll like the modal operator's timer does
        run.poll()
        seen(run)
        time.sleep(0.01)
    if run.state != "done":
        raise SystemExit(f"run failed: {run.error}")
    return first[0] if first else float("nan"), time.perf_counter() - started, run.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="warm runs after the cold one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "backend", "make-demo", str(demo)], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)

        def request(i: int) -> Request:
            return Request(footage=str(demo / "astronaut.mp4"), output=str(Path(tmp) / f"run{i}.safetensors"),
                           flame=str(demo / "flame.safetensors"), weights=str(demo / "demo_sheap_model.pt"),
                           backend_python=sys.executable, device=args.device, batch_size=args.batch_size)

        try:
            cold_first, cold_total, frames = timed_run(request(0))
            warm = [timed_run(request(i + 1)) for i in range(args.runs)]
        finally:
            drop_backend()
    warm_first = sorted(w[0] for w in warm)
    median_first = warm_first[len(warm_first) // 2]
    print(f"clip: astronaut.mp4, {frames} frames, device {args.device}, batch {args.batch_size} [demo weights]; "
          f"{machine_line()}")
    print(f"cold run: first frame {cold_first:6.2f} s, whole clip {cold_total:6.2f} s")
    for i, (first, total, _) in enumerate(warm, 1):
        print(f"warm run {i}: first frame {first:6.2f} s, whole clip {total:6.2f} s")
    print(f"warm first frame (median): {median_first:.2f} s = {median_first / cold_first:.2f} x cold")
    goals = Goals()
    goals.check(median_first < 1.0, f"the warm run's first frame in {median_first:.2f} s (goal < 1 s)")
    sys.exit(goals.exit_code())


if __name__ == "__main__":
    main()
