"""Long footage at a bounded cost: `people` and `reconstruct --people all` on a generated edit of several people.

    PYTHONPATH=. .venv/bin/python benchmarks/people_long.py [--minutes 20] [--size 1280x720] [--fps 30]

The edit is made on the spot from real public-domain faces (Grace Hopper, the astronaut Eileen Collins,
the cameraman: `backend.standins.clip.PORTRAITS`) over real photographs, 4-second shots cycling
through: one person alone, another alone, a two-shot, an empty room, another two-shot, a third
person alone, each face drifting; hard cuts. Both commands run as a user runs them (the backend
as a subprocess, `--progress json`, the demo weights: the model's cost is not what is measured here)
and for each the benchmark reports:
- peak memory: the process's peak resident set (`VmHWM` in /proc, read until it exits);
- frames per second of the process's own CPU time (all its threads, from /proc) over the first and
  the last quarter of each pass over the clip, read at its progress events (`--people all` makes
  one pass to find the people, then one per person); CPU time, not the wall clock, so that other
  work on a shared machine does not pass for a slow-down (the wall-clock rates are printed too).

Goals (issue 25): peak under 1.5 GB for each command; in every pass the last quarter at >= 0.8x
the first quarter's frames/s (nothing grows with the clip's length). The full length is 20 minutes
(36,000 frames at 30 fps: about an hour of a 2-core machine); `--minutes` runs a shorter one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.standins.clip import FaceInShot, Shot, write_scene_clip  # noqa: E402
from benchmarks.machine import Goals, machine_line  # noqa: E402

SHOT_S = 4.0
PEAK_GOAL_BYTES = 1.5 * 2**30
SLOWDOWN_GOAL = 0.8
# one cycle of shots: (faces as (person, x, y, face px, pan x), background)
CYCLE = [
    ([("hopper", 0.4, 0.45, 180, 0.04)], "rocket"),
    ([("astronaut", 0.6, 0.45, 160, -0.03)], "coffee"),
    ([("hopper", 0.3, 0.42, 120, 0.02), ("cameraman", 0.7, 0.45, 140, -0.02)], "rocket"),
    ([], "coffee"),
    ([("astronaut", 0.35, 0.5, 150, 0.03), ("hopper", 0.72, 0.42, 110, -0.02)], "coffee"),
    ([("cameraman", 0.5, 0.45, 170, 0.02)], "rocket"),
]


def edit(path: Path, minutes: float, size: tuple[int, int], fps: float) -> Path:
    frames = round(SHOT_S * fps)
    count = max(1, round(minutes * 60 / SHOT_S))
    shots = []
    for index in range(count):
        faces, background = CYCLE[index % len(CYCLE)]
        shots.append(Shot(frames, [FaceInShot(x, y, px, pan=(pan, 0.0), zoom=0.1, person=person)
                                   for person, x, y, px, pan in faces], background=background))
    return write_scene_clip(path, size, shots, fps=fps)


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system, all threads), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """The process's peak resident set so far (bytes), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(args: list[str]) -> tuple[int, list[tuple[float, float, int, int]], str]:
    """Run `python -m backend ARGS --progress json`: (peak bytes, [(wall s, CPU s, frame, total)], stderr's tail)."""
    process = subprocess.Popen([sys.executable, "-m", "backend", *args, "--progress", "json"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def watch() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], peak_rss(process.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    events = []
    for line in process.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "progress":
            events.append((time.perf_counter(), cpu_seconds(process.pid), int(event["frame"]), int(event["total"])))
    stderr = process.stderr.read()
    process.wait()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"backend {args[0]} failed ({process.returncode}):\n{stderr[-3000:]}")
    return peak[0], events, stderr[-2000:]


def quarter_rates(events: list[tuple[float, float, int, int]], frames: int, clock: int) -> list[tuple[float, float]]:
    """Per pass over the clip: (frames/s over its first quarter, over its last quarter); `clock` 0: the
    wall clock, 1: the process's CPU time."""
    events = [event for event in events if np.isfinite(event[clock])]
    times = np.array([event[clock] for event in events])
    done = np.array([event[2] for event in events], float)
    passes = round(events[-1][3] / frames)
    rates = []
    for index in range(passes):
        marks = np.clip(index * frames + frames * np.array([0.0, 0.25, 0.75, 1.0]), done[0], done[-1])
        at = np.interp(marks, done, times)
        first, last = (marks[1] - marks[0]) / max(at[1] - at[0], 1e-9), (marks[3] - marks[2]) / max(at[3] - at[2], 1e-9)
        rates.append((first, last))
    return rates


def report(name: str, peak: int, events: list, frames: int, goals: Goals) -> None:
    print(f"{name}: peak memory {peak / 2**20:.0f} MB")
    rates, wall = quarter_rates(events, frames, 1), quarter_rates(events, frames, 0)
    for index, ((first, last), (wall_first, wall_last)) in enumerate(zip(rates, wall)):
        what = "the search for people" if index == 0 else f"person {index}"
        print(f"  pass {index + 1} ({what}): {first:.1f} frames per CPU second over the first quarter, {last:.1f} "
              f"over the last ({last / first:.2f}x); wall clock {wall_first:.1f} and {wall_last:.1f} frames/s")
    goals.check(peak < PEAK_GOAL_BYTES, f"{name}: peak memory {peak / 2**30:.2f} GB < {PEAK_GOAL_BYTES / 2**30:.1f} GB")
    worst = min(last / first for first, last in rates)
    goals.check(worst >= SLOWDOWN_GOAL, f"{name}: last quarter at {worst:.2f}x the first (>= {SLOWDOWN_GOAL})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the edit (default 20)")
    parser.add_argument("--size", default="1280x720", help="frame size (default 1280x720)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--clip", type=Path, help="the edit's file: made there if missing, else reused (its "
                                                  "length and size must match the arguments)")
    args = parser.parse_args()
    size = tuple(int(value) for value in args.size.split("x"))
    print(machine_line())
    goals = Goals()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        clip = args.clip or folder / "long_edit.mp4"
        if not clip.is_file():
            edit(clip, args.minutes, size, args.fps)
        frames = round(args.minutes * 60 / SHOT_S) * round(SHOT_S * args.fps)
        made = time.perf_counter() - started
        print(f"edit: {args.minutes:g} min, {frames} frames {size[0]}x{size[1]} @ {args.fps:g} fps, "
              f"{len(CYCLE)}-shot cycle of {SHOT_S:g} s shots, 3 people (made in {made:.0f} s)")
        subprocess.run([sys.executable, "-m", "backend", "make-demo", str(folder / "demo")], cwd=REPO, check=True,
                       capture_output=True)
        peak, events, _ = run(["people", str(clip), "-o", str(folder / "who.people.json")])
        found = len(json.loads((folder / "who.people.json").read_text())["people"])
        print(f"people found: {found}")
        report("people", peak, events, frames, goals)
        demo = folder / "demo"
        peak, events, _ = run(["reconstruct", str(clip), "-o", str(folder / "all.sheap.safetensors"), "--flame",
                               str(demo / "flame.safetensors"), "--weights", str(demo / "demo_sheap_model.pt"),
                               "--people", "all"])
        report("reconstruct --people all", peak, events, frames, goals)
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
