"""Backend throughput at float32 and at a reduced precision on the release-sized stand-in; peak memory.

    .venv/bin/python benchmarks/backend_throughput.py [--frames 96] [--repeats 5] [--reduced auto|bf16|fp16|none]
        [--device cpu|cuda|both] [--weights MODEL.pt] [--quick] [--skip-memory | --only-memory]

The network is the release-sized stand-in (`make-demo --full-size`: ViT-B/16 at 224, ~87 M
parameters, random weights, SHeaP's input/output contract) unless --weights names a real archive.
The footage is the astronaut clip at 1080p (H.264 where this OpenCV writes it, else MPEG-4 Part 2:
printed). The reduced precision (`--reduced auto`: bfloat16 where the device has it natively, none
elsewhere, where `--precision auto` runs float32) is measured beside float32, the two interleaved:
after warming every stage at both, each repeat runs, for each precision in turn (the order
alternating from one repeat to the next, so that a drift of the machine's load hits both alike):
(a) the pipeline's stages one after another in one thread, each timed (decode, detect/landmarks,
crop, network, write: the figures of each stage alone, and the whole no-overlap run), (b) the real
`reconstruct` (the stages overlapped) plus writing the result: end to end, and (c) the control: (b)
with the overlap lost (every crop made before the network starts). Every timed run must find the
face on every frame, else the benchmark stops with an error. Median and spread over the repeats;
ratios against baselines measured in the same repeats.

How much of a run the network computes, three ways:
  overlap: from the network's first batch to the last crop, the share of the crops the detect+crop
    thread made while the network was running a batch, over the share of that time it was running one
    (1: crops are made whether the network computes or not; 0: never while it does, as in the control):
    the overlap itself, which contention for the cores slows on both sides alike;
  network busy (CPU): the CPU time of the thread that calls the network, inside it, divided by the same
    thread's CPU share of the network's wall time in the no-overlap run (the network alone) and by the
    run's wall time: the wall time the network's work would take alone, over the run's;
  network busy (wall): the wall time inside the network over the run's. Inflated where the other stages
    take the network's cores: a network preempted is counted busy; printed, never judged.

Goals (met / MISS lines; the exit code counts the misses):
  network at the reduced precision >= 3 x float32;  end to end >= 2.5 x float32 (CPU, native only)
  end to end >= 0.85 x the slowest stage alone, at each precision (printed with what the cores allow: the
  "CPU bound", the stages' CPU time (all threads, measured in the no-overlap run) shared over every core;
  with few cores the network's own threads already fill them)
  the overlap is real: overlap >= 0.5 (crops made while the network computes at least half as often as
  its share of the time would have them)
  the overlap pays: the network waits for crops (1 - busy, CPU) at most half as long as in the control
  (needs cores the network's threads leave free: on a machine whose cores the network fills, the
  other stages' work takes the network's time whether it overlaps or not)
Peak memory (RSS of the real `reconstruct` command, small demo predictor, `--precision auto`) for a
1-minute and a 5-minute 720p clip (10 s and 50 s with --quick): goal, they differ by less than 10%.
"""

from __future__ import annotations

import argparse
import json
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

from machine import Goals, cpu_name, load_average  # noqa: E402  (benchmarks/machine.py, beside this script)
from backend.faces.crop import BoxSmoother, box_from_landmarks, crop_image  # noqa: E402
from backend.footage.reader import open_footage  # noqa: E402
from backend.people.tracker import FaceTracker  # noqa: E402
from backend.model.precision import load_predictor, native_bf16, precision_line  # noqa: E402
from backend.model.predictor import Predictor  # noqa: E402
from backend import pipeline  # noqa: E402
from backend.pipeline import ReconstructJob, reconstruct  # noqa: E402
from backend.standins.clip import H264_WHERE_POSSIBLE, video_codec, write_demo_clip  # noqa: E402
from backend.standins.flame import write_demo_flame  # noqa: E402
from backend.standins.predictor import write_demo_predictor, write_full_size_predictor  # noqa: E402
from sheap_blender.core.flame.model import load_flame  # noqa: E402
from sheap_blender.core.result.result_format import PER_FRAME, Result, read_result, write_result  # noqa: E402

STAGES = ("decode", "detect/landmarks", "crop", "network", "write")
pipeline.iterate_crops_overlapped = pipeline.iterate_crops  # the real one; the control swaps it out per run
pipeline.crop_image_untimed = pipeline.crop_image  # the real one; runs time each crop (when it was made)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_without_overlap(footage, predictor: Predictor, n_frames: int, batch_size: int, out: Path) -> dict[str, float]:
    """The pipeline's stages one after another in this thread (what `reconstruct` overlaps), each timed:
    seconds per stage, `total` (the wall time of the whole run: the no-overlap figure), `cpu` (CPU seconds
    of the whole process, all threads, over the stages: what the cores must do, overlapped or not) and
    `network thread cpu` (this thread's CPU seconds inside the network). Stops with an error unless the
    face was found on every frame."""
    seconds = dict.fromkeys(STAGES, 0.0)
    seconds["network thread cpu"] = 0.0
    began = time.perf_counter()
    clock = [began]
    cpu = [0.0, time.process_time()]

    def lap(stage: str) -> None:
        now, now_cpu = time.perf_counter(), time.process_time()
        seconds[stage] += now - clock[0]
        cpu[0] += now_cpu - cpu[1]
        clock[0], cpu[1] = now, now_cpu

    untracked, waiting, batch, outputs = deque(), deque(), [], []
    faceless = []

    def network() -> None:
        thread_cpu = time.thread_time()
        outputs.append(predictor.predict(np.stack(batch)))
        seconds["network thread cpu"] += time.thread_time() - thread_cpu
        batch.clear()
        lap("network")

    def release(boxes) -> None:
        for box in boxes:
            rgb = waiting.popleft()
            if box is not None:
                batch.append(crop_image(rgb, box, 224))
            else:
                faceless.append(rgb)
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
    if faceless or n != n_frames:
        raise SystemExit(f"the no-overlap run found the face on {n} of {n_frames} frames: its figures would not "
                         "time the pipeline on a face")
    result = Result(np.arange(n), np.ones(n, bool), {**{k: params[k] for k in PER_FRAME if k != "crop_box"},
                                                     "crop_box": np.zeros((n, 4), np.float32)}, {}, {})
    clock[0], cpu[1] = time.perf_counter(), time.process_time()
    write_result(out, result)
    lap("write")
    seconds["total"] = time.perf_counter() - began
    seconds["cpu"] = cpu[0]
    return seconds


class _RunClock:
    """During a `reconstruct`: when the network ran (its `checked_predict` timed in place: wall intervals and
    the calling thread's CPU time) and when each crop was made (`pipeline.crop_image` timed in place)."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.intervals: list[tuple[float, float]] = []
        self.thread_cpu = 0.0
        self.crops: list[float] = []

    @property
    def network_seconds(self) -> float:
        return sum(end - start for start, end in self.intervals)

    def overlap(self) -> float:
        """How freely the crops were made while the network computed, from its first batch to the last crop:
        the share of those crops made while it was running a batch, over the share of that time it was
        running one. 1: crops are made whether the network computes or not (the stages overlap); 0: never
        while it computes (the control, whose crops are all made before the network starts). Contention for
        the cores slows both stages alike and leaves it near 1."""
        if not self.intervals or not self.crops:
            return 0.0
        first, last = self.intervals[0][0], max(self.crops)
        if last <= first:
            return 0.0
        made = np.array([t for t in self.crops if t > first])
        starts = np.array([start for start, _ in self.intervals])
        ends = np.array([end for _, end in self.intervals])
        during = ((made[:, None] >= starts[None]) & (made[:, None] <= ends[None])).any(axis=1).mean()
        busy = (np.clip(ends, first, last) - np.clip(starts, first, last)).sum() / (last - first)
        return float(during / busy) if busy > 0 else 0.0

    def __enter__(self) -> _RunClock:
        original = self.predictor.checked_predict

        def timed(*args, **kwargs):
            began, began_cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.thread_cpu += time.thread_time() - began_cpu
                self.intervals.append((began, time.perf_counter()))

        def timed_crop(*args, **kwargs):
            crop = pipeline.crop_image_untimed(*args, **kwargs)
            self.crops.append(time.perf_counter())
            return crop

        self.predictor.checked_predict = timed  # an instance attribute shadows the method
        pipeline.crop_image = timed_crop
        return self

    def __exit__(self, *exc) -> None:
        del self.predictor.checked_predict
        pipeline.crop_image = pipeline.crop_image_untimed


def _crops_before_network(*args, **kwargs):
    """`pipeline.iterate_crops` with its overlap lost: every crop is made before the network sees the first."""
    return iter(list(pipeline.iterate_crops_overlapped(*args, **kwargs)))


def run_pipeline(footage, predictor: Predictor, flame, n_frames: int, batch_size: int, out: Path,
                 lose_overlap: bool = False) -> tuple[float, _RunClock]:
    """The real thing: `reconstruct` (decode, detect+crop and the network overlapped) and writing the result.

    (wall seconds, what the network and the crops did when). `lose_overlap`: the control, the same code
    with the crops all made before the network starts (a pipeline whose overlap broke). Stops with an
    error unless the face was found on every frame.
    """
    job = ReconstructJob(footage, predictor, flame, 0, n_frames, batch_size)
    pipeline.iterate_crops = _crops_before_network if lose_overlap else pipeline.iterate_crops_overlapped
    try:
        with _RunClock(predictor) as clock:
            began = time.perf_counter()
            result = reconstruct(job, stop=threading.Event())
            write_result(out, result)
            seconds = time.perf_counter() - began
    finally:
        pipeline.iterate_crops = pipeline.iterate_crops_overlapped
    if result.n_frames != n_frames or not result.valid.all() or len(clock.crops) != n_frames:
        raise SystemExit(f"{'the control' if lose_overlap else 'end to end'}: the face was found on "
                         f"{int(result.valid.sum())} of {n_frames} frames: its figures would not time the pipeline "
                         "on a face")
    return seconds, clock


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    relative = (max(values) - min(values)) / median if median else 0.0
    return f"{median:7.2f}  [{min(values):.2f} .. {max(values):.2f}, spread {relative:4.0%}]"


def one_repeat(figures: dict[str, list[float]], footage, predictor: Predictor, flame_model, n_frames: int,
               batch_size: int, work: Path) -> str:
    """One repeat at one precision: the no-overlap run, end to end and the control; figures appended."""
    serial = run_without_overlap(footage, predictor, n_frames, batch_size, work / "serial.st")
    overlapped, e2e = run_pipeline(footage, predictor, flame_model, n_frames, batch_size, work / "e2e.st")
    lost, control = run_pipeline(footage, predictor, flame_model, n_frames, batch_size, work / "lost.st",
                                 lose_overlap=True)

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    for stage in STAGES:
        add(stage, n_frames / serial[stage])
    add("no overlap", n_frames / serial["total"])
    slowest = min(STAGES, key=lambda stage: figures[stage][-1])
    # what the cores allow: the stages' CPU time shared over every core, never above the slowest stage
    add("CPU bound", min(CORES * n_frames / serial["cpu"], figures[slowest][-1]))
    add("end to end", n_frames / overlapped)
    add("control: lost overlap", n_frames / lost)
    add("e2e / slowest", figures["end to end"][-1] / figures[slowest][-1])
    add("e2e / no overlap", figures["end to end"][-1] / figures["no overlap"][-1])
    add("e2e / CPU bound", figures["end to end"][-1] / figures["CPU bound"][-1])
    add("e2e / control", lost / overlapped)
    # the network alone: its calling thread's CPU share of its wall time (below 1 where it waits for its
    # other threads, or where other processes take the cores)
    alone = serial["network thread cpu"] / serial["network"]
    add("network thread CPU / wall, alone", alone)
    add("overlap: crops made during the network", e2e.overlap())
    add("control: overlap", control.overlap())
    add("network busy (CPU)", e2e.thread_cpu / alone / overlapped)
    add("control: network busy (CPU)", control.thread_cpu / alone / lost)
    add("network busy (wall)", e2e.network_seconds / overlapped)
    add("control: network busy (wall)", control.network_seconds / lost)
    return (f"end to end {figures['end to end'][-1]:.2f} frames/s (network busy {figures['network busy (CPU)'][-1]:.0%}"
            f" CPU, {figures['network busy (wall)'][-1]:.0%} wall; overlap "
            f"{figures['overlap: crops made during the network'][-1]:.2f}), control "
            f"{figures['control: lost overlap'][-1]:.2f} (busy {figures['control: network busy (CPU)'][-1]:.0%} CPU), "
            f"no overlap {figures['no overlap'][-1]:.2f}, {slowest} alone {figures[slowest][-1]:.2f}")


def measure(clip: Path, flame_model, predictors: dict[str, Predictor], n_frames: int, batch_size: int,
            repeats: int, work: Path) -> dict[str, dict[str, list[float]]]:
    """Per precision: frames/s per stage (no overlap), of the whole no-overlap run, end to end and the control,
    and the network's shares; the precisions interleaved within each repeat, their order alternating."""
    footage = open_footage(clip)
    n_frames = min(n_frames, footage.frame_count)
    warm = min(n_frames, 2 * batch_size)  # every stage, and the network at the batch sizes the runs use
    for predictor in predictors.values():
        run_without_overlap(footage, predictor, warm, batch_size, work / "warm.st")
        run_pipeline(footage, predictor, flame_model, warm, batch_size, work / "warm.st")
    figures: dict[str, dict[str, list[float]]] = {precision: {} for precision in predictors}
    for repeat in range(repeats):
        order = list(predictors) if repeat % 2 == 0 else list(reversed(predictors))
        for precision in order:
            line = one_repeat(figures[precision], footage, predictors[precision], flame_model, n_frames, batch_size,
                              work)
            print(f"    repeat {repeat + 1}/{repeats} {precision}: {line} [{load_average()}]", flush=True)
    return figures


# Starts a command and prints its exit code and peak RSS (KB): a small process to start it from. A child's
# ru_maxrss counts the peak of the address space it was started from (the kernel keeps the old one's peak at
# exec), so a command started from this benchmark (hundreds of MB) would report this process's peak, not its own.
_LAUNCHER = ("import json, os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=["
             "(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]); _, status, usage = os.wait4(pid, 0); "
             "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))")


def peak_rss_mb(command: list[str]) -> float:
    """Run a command and return its own peak resident memory in MB (started from a small launcher process)."""
    launched = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, *command], cwd=REPO,
                              capture_output=True, text=True)
    try:
        code, peak_kb = json.loads(launched.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        code, peak_kb = launched.returncode or 1, 0
    if code != 0:
        raise SystemExit(f"command failed: {' '.join(command)}\n{launched.stderr[-2000:]}")
    return peak_kb / 1024


def measure_memory(work: Path, flame_path: Path, weights: Path, seconds: tuple[int, int]) -> list[tuple[int, float]]:
    rows = []
    for duration in seconds:
        clip_dir = work / f"clip{duration}"
        clip_dir.mkdir()
        start = time.perf_counter()
        clip, _ = write_demo_clip(clip_dir, n_frames=duration * 30, fps=30, size=(1280, 720),
                                  fourccs=H264_WHERE_POSSIBLE)
        print(f"  wrote a {duration} s 720p clip ({video_codec(clip)}) in {time.perf_counter() - start:.0f} s",
              flush=True)
        start = time.perf_counter()
        result = clip_dir / "r.st"
        mb = peak_rss_mb([sys.executable, "-m", "backend", "reconstruct", str(clip), "-o", str(result),
                          "--flame", str(flame_path), "--weights", str(weights), "--device", "cpu",
                          "--progress", "none"])
        elapsed = time.perf_counter() - start
        valid = read_result(result).valid
        if len(valid) != duration * 30 or not valid.all():
            raise SystemExit(f"the {duration} s clip: the face was found on {int(valid.sum())} of {duration * 30} "
                             "frames: its memory would not be the pipeline's on a face")
        print(f"  {duration:4d} s clip ({duration * 30} frames): peak {mb:.0f} MB, {duration * 30 / elapsed:.1f} "
              f"frames/s [{load_average()}]", flush=True)
        rows.append((duration, mb))
    return rows


def report(device: torch.device, results: dict[str, dict[str, list[float]]], reduced: str | None,
           goals: Goals) -> None:
    median = {precision: {name: statistics.median(values) for name, values in figures.items()}
              for precision, figures in results.items()}
    for precision, figures in results.items():
        print(f"\n  -- {precision}: frames/s, median [min .. max, spread] over {len(figures['end to end'])} repeats")
        for name, values in figures.items():
            print(f"    {name:48s} {spread(values)}")
    print()
    for precision, m in median.items():
        stages = {stage: m[stage] for stage in STAGES}
        slowest = min(stages, key=stages.get)
        ceiling = m["CPU bound"] / m[slowest]  # below 1 where the other stages need CPU the network's threads fill
        goals.check(m["e2e / slowest"] >= 0.85, f"{precision}: end to end / slowest stage ({slowest}) = "
                                                f"{m['e2e / slowest']:.2f} (goal >= 0.85; the CPU bound allows "
                                                f"{ceiling:.2f} on {CORES} cores)")
        during, during_lost = m["overlap: crops made during the network"], m["control: overlap"]
        goals.check(during >= 0.5, f"{precision}: the overlap is real: crops are made while the network computes "
                                   f"{during:.2f} as often as its share of the time would have them (1: freely; "
                                   f"the control {during_lost:.2f}) (goal >= 0.5)")
        idle, idle_lost = 1 - m["network busy (CPU)"], 1 - m["control: network busy (CPU)"]
        goals.check(idle <= 0.5 * idle_lost, f"{precision}: the overlap pays: the network waits for crops "
                                             f"{idle:.0%} of the run, {idle_lost:.0%} in the control (CPU-based; "
                                             f"goal: at most half)")
        if during_lost > 0.1:
            raise SystemExit(f"{precision}: the control's overlap is {during_lost:.2f}, not 0: the measurement of "
                             "the overlap is broken")
    if reduced is not None and reduced in median and "fp32" in median:
        network = median[reduced]["network"] / median["fp32"]["network"]
        end_to_end = median[reduced]["end to end"] / median["fp32"]["end to end"]
        print(f"  network {reduced} / fp32 = {network:.2f}, end to end {reduced} / fp32 = {end_to_end:.2f}")
        if device.type == "cpu" and native_bf16(device):
            goals.check(network >= 3.0, f"network {reduced} / fp32 = {network:.2f} (goal >= 3 on a CPU with native "
                                        f"bfloat16)")
            goals.check(end_to_end >= 2.5, f"end to end {reduced} / fp32 = {end_to_end:.2f} (goal >= 2.5)")
        elif device.type == "cpu":
            print(f"  (no native bfloat16 on this CPU: {reduced} is emulated here, the speed-up goals do not apply)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96, help="frames of 1080p footage per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reduced", choices=["auto", "bf16", "fp16", "none"], default="auto",
                        help="the reduced precision measured beside float32 (auto: bf16 where native, else none)")
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--weights", type=Path, help="a SHeaP archive instead of the release-sized stand-in")
    parser.add_argument("--quick", action="store_true", help="memory on 10 s and 50 s clips instead of 1 and 5 min")
    memory = parser.add_mutually_exclusive_group()
    memory.add_argument("--skip-memory", action="store_true")
    memory.add_argument("--only-memory", action="store_true", help="the memory measurement alone")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (median and spread)")

    devices = [torch.device("cpu")] if args.device in ("cpu", "both") else []
    if args.device in ("cuda", "both"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        else:
            print("no CUDA device here: GPU figures skipped")
    print(f"torch {torch.__version__}, {cpu_name()}, {os.cpu_count()} CPUs ({CORES} usable), torch threads "
          f"{torch.get_num_threads()}, native bfloat16 on cpu: {native_bf16(torch.device('cpu'))}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {load_average()}")
    goals = Goals()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flame_pkl, _ = write_demo_flame(work)
        if not args.only_memory:
            flame_model = load_flame(flame_pkl)
            clip, _ = write_demo_clip(work, n_frames=args.frames, fps=30, size=(1920, 1080),
                                      fourccs=H264_WHERE_POSSIBLE)
            weights = args.weights or write_full_size_predictor(work)
            print(f"network: {weights.name} ({weights.stat().st_size / 1e6:.0f} MB)"
                  + ("" if args.weights else ": the release-sized stand-in, demo weights")
                  + f"; footage: {args.frames} frames of 1080p, {video_codec(clip)}")
        for device in devices if not args.only_memory else []:
            reduced = args.reduced
            if reduced == "auto":
                reduced = "bf16" if native_bf16(device) else "none"
            reduced = None if reduced == "none" else reduced
            measured = f"float32 and {reduced} interleaved" if reduced else \
                "float32 only (no native bfloat16: `--reduced bf16` would measure it emulated)"
            print(f"\n== {device.type}: {args.frames} frames of 1080p, batch {args.batch_size}, {args.repeats} "
                  f"repeats, {measured}")
            auto = load_predictor(weights, device, "auto", flame_model)
            print(f"  what `--precision auto` (the default) does here: {precision_line(auto, 'auto')}", flush=True)
            del auto
            predictors = {}
            for precision in ("fp32", *((reduced,) if reduced else ())):
                predictors[precision] = load_predictor(weights, device, precision, flame_model)
                print(f"  {precision}: {precision_line(predictors[precision], precision)}", flush=True)
            results = measure(clip, flame_model, predictors, args.frames, args.batch_size, args.repeats, work)
            del predictors
            report(device, results, reduced, goals)
        if not args.skip_memory:
            seconds = (10, 50) if args.quick else (60, 300)
            print(f"\n== peak memory of `reconstruct` (small demo predictor), {seconds[0]} s and {seconds[1]} s clips")
            small = write_demo_predictor(work)
            floor = peak_rss_mb([sys.executable, "-c", "pass"])
            print(f"  (a bare Python started the same way peaks at {floor:.0f} MB: the launcher does not inflate it)")
            (short, mb_short), (long, mb_long) = measure_memory(work, flame_pkl, small, seconds)
            goals.check(mb_long / mb_short <= 1.10, f"{long} s / {short} s peak memory = {mb_long / mb_short:.3f} "
                                                    f"({mb_long:.0f} / {mb_short:.0f} MB; goal: within 10%)")
    sys.exit(goals.exit_code())


if __name__ == "__main__":
    main()
