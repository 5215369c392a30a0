"""Backend throughput at float32 and at a reduced precision on the release-sized stand-in; peak memory.

    .venv/bin/python benchmarks/backend_throughput.py [--frames 96] [--repeats 5] [--reduced bf16]
        [--device cpu|cuda|both] [--weights MODEL.pt] [--skip-memory | --quick]

The network is the release-sized stand-in (`make-demo --full-size`: ViT-B/16 at 224, ~87 M
parameters, random weights, SHeaP's input/output contract) unless --weights names a real archive.
The footage is the astronaut clip at 1080p. For each precision, after warming every stage, each
repeat runs (a) the pipeline's stages one after another in one thread, each timed (decode,
detect/landmarks, crop, network, write: the figures of each stage alone, and the whole no-overlap
run), (b) the real `reconstruct` (the stages overlapped) plus writing the result: end to end, and
(c) the control: (b) with the overlap lost.
Median and spread over the repeats; ratios against baselines measured in the same run.

Goals (MISS lines and exit code 1 when one is not met):
  network at the reduced precision >= 3 x float32;  end to end >= 2.5 x float32 (CPU only)
  end to end >= 0.85 x the slowest stage alone, at each precision (printed with what the cores allow: the
  "CPU bound", the stages' CPU time (all threads, measured in the no-overlap run) shared over every core;
  with few cores the network's own threads already fill them)
  the overlap is real: in end to end, the network waits for crops at most half as long as in the control,
  the same `reconstruct` with its overlap lost (every crop made before the network starts); "network
  busy" is the share of the run the network computes. A pipeline that lost its overlap scores the control.
Peak memory (RSS of the real `reconstruct` command, small demo predictor) for a 1-minute and a
5-minute 720p clip: goal, they differ by less than 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backend  # noqa: E402, F401, I001 - first: it sets the OpenMP wait policy before torch loads, as `python -m backend` does
import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import cpu_name  # noqa: E402  (benchmarks/machine.py, beside this script)
from backend.faces.crop import BoxSmoother, box_from_landmarks, crop_image  # noqa: E402
from backend.faces.footage import open_footage  # noqa: E402
from backend.faces.tracker import FaceTracker  # noqa: E402
from backend.model.precision import load_predictor, native_bf16, precision_line  # noqa: E402
from backend.model.predictor import Predictor  # noqa: E402
from backend import pipeline  # noqa: E402
from backend.pipeline import ReconstructJob, reconstruct  # noqa: E402
from backend.standins.clip import write_demo_clip  # noqa: E402
from backend.standins.flame import write_demo_flame  # noqa: E402
from backend.standins.predictor import write_demo_predictor, write_full_size_predictor  # noqa: E402
from sheap_blender.core.flame_model import load_flame  # noqa: E402
from sheap_blender.core.result_format import PER_FRAME, Result, write_result  # noqa: E402

STAGES = ("decode", "detect/landmarks", "crop", "network", "write")
pipeline.iterate_crops_overlapped = pipeline.iterate_crops  # the real one; the control swaps it out per run
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_without_overlap(footage, predictor: Predictor, n_frames: int, batch_size: int, out: Path) -> dict[str, float]:
    """The pipeline's stages one after another in this thread (what `reconstruct` overlaps), each timed:
    seconds per stage, `total` (the wall time of the whole run: the no-overlap figure) and `cpu` (CPU seconds
    of the whole process, all threads, over the stages: what the cores must do, overlapped or not)."""
    seconds = dict.fromkeys(STAGES, 0.0)
    began = time.perf_counter()
    clock = [began]
    cpu = [0.0, time.process_time()]

    def lap(stage: str) -> None:
        now, now_cpu = time.perf_counter(), time.process_time()
        seconds[stage] += now - clock[0]
        cpu[0] += now_cpu - cpu[1]
        clock[0], cpu[1] = now, now_cpu

    untracked, waiting, batch, outputs = deque(), deque(), [], []

    def network() -> None:
        outputs.append(predictor.predict(np.stack(batch)))
        batch.clear()
        lap("network")

    def release(boxes) -> None:
        for box in boxes:
            rgb = waiting.popleft()
            if box is not None:
                batch.append(crop_image(rgb, box, 224))
            if len(batch) == batch_size:
                lap("crop")
                network()
        lap("crop")

    def smooth(results) -> None:
        for tracked in results:
            waiting.append(untracked.popleft())
            box = None if tracked.detection is None else box_from_landmarks(tracked.detection.landmarks68)
            release(smoother.push(box, tracked.segment))

    smoother = BoxSmoother()
    frames = footage.frames(0, n_frames)
    with FaceTracker(footage.fps) as tracker:
        clock[0], cpu[1] = time.perf_counter(), time.process_time()
        for _, rgb in frames:
            lap("decode")
            untracked.append(rgb)
            results = tracker.track(rgb)
            lap("detect/landmarks")
            smooth(results)
            clock[0], cpu[1] = time.perf_counter(), time.process_time()
        results = tracker.flush()
        lap("detect/landmarks")
        smooth(results)
        release(smoother.flush())
    if batch:
        clock[0], cpu[1] = time.perf_counter(), time.process_time()
        network()
    params = {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}
    n = len(params["shape"])
    result = Result(np.arange(n), np.ones(n, bool), {**{k: params[k] for k in PER_FRAME if k != "crop_box"},
                                                     "crop_box": np.zeros((n, 4), np.float32)}, {}, {})
    clock[0], cpu[1] = time.perf_counter(), time.process_time()
    write_result(out, result)
    lap("write")
    seconds["total"] = time.perf_counter() - began
    seconds["cpu"] = cpu[0]
    return seconds


class _NetworkClock:
    """Seconds the predictor's network ran during a `reconstruct` (its `checked_predict` timed in place)."""

    def __init__(self, predictor: Predictor):
        self.predictor, self.seconds = predictor, 0.0

    def __enter__(self) -> _NetworkClock:
        original = self.predictor.checked_predict

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        self.predictor.checked_predict = timed  # an instance attribute shadows the method
        return self

    def __exit__(self, *exc) -> None:
        del self.predictor.checked_predict


def _crops_before_network(*args, **kwargs):
    """`pipeline.iterate_crops` with its overlap lost: every crop is made before the network sees the first."""
    return iter(list(pipeline.iterate_crops_overlapped(*args, **kwargs)))


def run_pipeline(footage, predictor: Predictor, flame, n_frames: int, batch_size: int, out: Path,
                 lose_overlap: bool = False) -> tuple[float, float]:
    """The real thing: `reconstruct` (decode, detect+crop and the network overlapped) and writing the result.

    (wall seconds, seconds the network ran). `lose_overlap`: the control, the same code with the
    crops all made before the network starts (a pipeline whose overlap broke).
    """
    job = ReconstructJob(footage, predictor, flame, 0, n_frames, batch_size)
    pipeline.iterate_crops = _crops_before_network if lose_overlap else pipeline.iterate_crops_overlapped
    try:
        with _NetworkClock(predictor) as network:
            began = time.perf_counter()
            write_result(out, reconstruct(job, stop=threading.Event()))
            return time.perf_counter() - began, network.seconds
    finally:
        pipeline.iterate_crops = pipeline.iterate_crops_overlapped


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    relative = (max(values) - min(values)) / median
    return f"{median:7.2f}  [{min(values):.2f} .. {max(values):.2f}, spread {relative:4.0%}]"


def measure(clip: Path, flame_model, weights: Path, device: torch.device, precision: str, n_frames: int,
            batch_size: int, repeats: int, work: Path) -> dict[str, list[float]]:
    """frames/s per stage (no overlap), of the whole no-overlap run and end to end, each repeat interleaved."""
    predictor = load_predictor(weights, device, precision, flame_model)
    print(f"  {precision_line(predictor, precision)}", flush=True)
    footage = open_footage(clip)
    n_frames = min(n_frames, footage.frame_count)
    warm = min(n_frames, 2 * batch_size)  # every stage, and the network at the batch sizes the runs use
    run_without_overlap(footage, predictor, warm, batch_size, work / "warm.st")
    run_pipeline(footage, predictor, flame_model, warm, batch_size, work / "warm.st")
    figures: dict[str, list[float]] = {}
    for repeat in range(repeats):
        serial = run_without_overlap(footage, predictor, n_frames, batch_size, work / "serial.st")
        overlapped, network_busy = run_pipeline(footage, predictor, flame_model, n_frames, batch_size,
                                                work / "e2e.st")
        lost, network_busy_lost = run_pipeline(footage, predictor, flame_model, n_frames, batch_size,
                                               work / "lost.st", lose_overlap=True)
        for stage in STAGES:
            figures.setdefault(stage, []).append(n_frames / serial[stage])
        figures.setdefault("no overlap", []).append(n_frames / serial["total"])
        slowest = min(STAGES, key=lambda stage: figures[stage][-1])
        # what the cores allow: the stages' CPU time shared over every core, never above the slowest stage
        figures.setdefault("CPU bound", []).append(min(CORES * n_frames / serial["cpu"], figures[slowest][-1]))
        figures.setdefault("end to end", []).append(n_frames / overlapped)
        figures.setdefault("control: lost overlap", []).append(n_frames / lost)
        figures.setdefault("e2e / slowest", []).append(figures["end to end"][-1] / figures[slowest][-1])
        figures.setdefault("e2e / no overlap", []).append(figures["end to end"][-1] / figures["no overlap"][-1])
        figures.setdefault("e2e / CPU bound", []).append(figures["end to end"][-1] / figures["CPU bound"][-1])
        figures.setdefault("e2e / control", []).append(lost / overlapped)
        figures.setdefault("network busy", []).append(network_busy / overlapped)
        figures.setdefault("control: network busy", []).append(network_busy_lost / lost)
        print(f"    repeat {repeat + 1}/{repeats}: end to end {figures['end to end'][-1]:.2f} frames/s "
              f"(network busy {figures['network busy'][-1]:.0%}), control {figures['control: lost overlap'][-1]:.2f} "
              f"(busy {figures['control: network busy'][-1]:.0%}), no overlap {figures['no overlap'][-1]:.2f}, "
              f"{slowest} alone {figures[slowest][-1]:.2f}", flush=True)
    return figures


def peak_rss_mb(command: list[str]) -> float:
    """Run a command and return its peak resident memory in MB (os.wait4 gives that child's own)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(command)}\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def measure_memory(work: Path, flame_path: Path, weights: Path, seconds: tuple[int, int]) -> list[tuple[int, float]]:
    rows = []
    for duration in seconds:
        clip_dir = work / f"clip{duration}"
        clip_dir.mkdir()
        start = time.perf_counter()
        clip, _ = write_demo_clip(clip_dir, n_frames=duration * 30, fps=30, size=(1280, 720))
        print(f"  wrote a {duration} s 720p clip in {time.perf_counter() - start:.0f} s", flush=True)
        start = time.perf_counter()
        mb = peak_rss_mb([sys.executable, "-m", "backend", "reconstruct", str(clip), "-o", str(clip_dir / "r.st"),
                          "--flame", str(flame_path), "--weights", str(weights), "--device", "cpu",
                          "--progress", "none"])
        print(f"  {duration:4d} s clip ({duration * 30} frames): peak {mb:.0f} MB, "
              f"{duration * 30 / (time.perf_counter() - start):.1f} frames/s", flush=True)
        rows.append((duration, mb))
    return rows


def goal(ok: bool, text: str, misses: list[str]) -> None:
    print(f"  {'PASS' if ok else 'MISS'} {text}")
    if not ok:
        misses.append(text)


def report(device: torch.device, results: dict[str, dict[str, list[float]]], reduced: str, misses: list[str]) -> None:
    median = {precision: {name: statistics.median(values) for name, values in figures.items()}
              for precision, figures in results.items()}
    for precision, figures in results.items():
        print(f"\n  -- {precision}: frames/s, median [min .. max, spread] over {len(figures['end to end'])} repeats")
        for name in (*STAGES, "no overlap", "CPU bound", "end to end", "control: lost overlap", "e2e / slowest",
                     "e2e / no overlap", "e2e / CPU bound", "e2e / control", "network busy", "control: network busy"):
            print(f"    {name:22s} {spread(figures[name])}")
    print()
    for precision, m in median.items():
        stages = {stage: m[stage] for stage in STAGES}
        slowest = min(stages, key=stages.get)
        ceiling = m["CPU bound"] / m[slowest]  # below 1 where the other stages need CPU the network's threads fill
        goal(m["e2e / slowest"] >= 0.85, f"{precision}: end to end / slowest stage ({slowest}) = "
                                          f"{m['e2e / slowest']:.2f} (goal >= 0.85; the CPU bound allows "
                                          f"{ceiling:.2f} on {CORES} cores)", misses)
        # the overlap is real: the network waits for crops at most half as long as in the control
        idle, idle_lost = 1 - m["network busy"], 1 - m["control: network busy"]
        goal(idle <= 0.5 * idle_lost, f"{precision}: the network waits for crops {idle:.0%} of the run, "
                                      f"{idle_lost:.0%} in the control with the overlap lost (goal: at most half)",
             misses)
    if reduced in median and "fp32" in median:
        network = median[reduced]["network"] / median["fp32"]["network"]
        end_to_end = median[reduced]["end to end"] / median["fp32"]["end to end"]
        print(f"  network {reduced} / fp32 = {network:.2f}, end to end {reduced} / fp32 = {end_to_end:.2f}")
        if device.type == "cpu":
            goal(network >= 3.0, f"network {reduced} / fp32 = {network:.2f} (goal >= 3 on a CPU with native "
                                 f"bfloat16)", misses)
            goal(end_to_end >= 2.5, f"end to end {reduced} / fp32 = {end_to_end:.2f} (goal >= 2.5)", misses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96, help="frames of 1080p footage per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reduced", choices=["bf16", "fp16"], default="bf16", help="the reduced precision")
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--weights", type=Path, help="a SHeaP archive instead of the release-sized stand-in")
    parser.add_argument("--quick", action="store_true", help="memory on 10 s and 50 s clips instead of 1 and 5 min")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (median and spread)")

    devices = [torch.device("cpu")] if args.device in ("cpu", "both") else []
    if args.device in ("cuda", "both"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        else:
            print("no CUDA device here: GPU figures skipped")
    print(f"torch {torch.__version__}, {cpu_name()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"native bfloat16 on cpu: {native_bf16(torch.device('cpu'))}, load average {os.getloadavg()[0]:.2f}")
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flame_pkl, _ = write_demo_flame(work)
        flame_model = load_flame(flame_pkl)
        clip, _ = write_demo_clip(work, n_frames=args.frames, fps=30, size=(1920, 1080))
        weights = args.weights or write_full_size_predictor(work)
        print(f"network: {weights.name} ({weights.stat().st_size / 1e6:.0f} MB)"
              + ("" if args.weights else ": the release-sized stand-in, demo weights"))
        for device in devices:
            print(f"\n== {device.type}: {args.frames} frames of 1080p, batch {args.batch_size}, {args.repeats} repeats")
            auto = load_predictor(weights, device, "auto", flame_model)
            print(f"  what `--precision auto` (the default) does here: {precision_line(auto, 'auto')}", flush=True)
            del auto
            results = {}
            for precision in ("fp32", args.reduced):
                print(f"  {precision}:", flush=True)
                results[precision] = measure(clip, flame_model, weights, device, precision, args.frames,
                                             args.batch_size, args.repeats, work)
            report(device, results, args.reduced, misses)
        print(f"\nload average after the run: {os.getloadavg()[0]:.2f} (other work on the machine skews every figure)")
        if not args.skip_memory:
            seconds = (10, 50) if args.quick else (60, 300)
            print(f"\n== peak memory of `reconstruct` (small demo predictor), {seconds[0]} s and {seconds[1]} s clips")
            small = write_demo_predictor(work)
            (short, mb_short), (long, mb_long) = measure_memory(work, flame_pkl, small, seconds)
            goal(mb_long / mb_short <= 1.10, f"{long} s / {short} s peak memory = {mb_long / mb_short:.3f} "
                                             f"(goal: within 10%)", misses)
    if misses:
        print(f"\n{len(misses)} goal(s) missed")
        sys.exit(1)


if __name__ == "__main__":
    main()
