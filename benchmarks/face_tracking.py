"""Finding and following the face: speed of the detect stage at 1080p, 4K and portrait, on ONE core.

    .venv/bin/python benchmarks/face_tracking.py [--frames 60] [--repeats 5]

Footage: the public-domain astronaut placed small (about 70 px across) in wide frames over a real
photograph, moving (pan and zoom), written as H.264 like phone or camera files where this OpenCV
can write it, else as MPEG-4 Part 2 (the pip wheels: no H.264 encoder); the codec is printed.
The process is pinned to one CPU core. Per resolution, after a warm-up, each figure is the median
over the repeats, with the spread (min..max):

- decode: reading and converting the frames alone (the baseline);
- decode + follow: the same plus the tracker's work on every frame after the first (the face
  mesh on a region around the previous frame's face);
- search: one full-frame search (tiled detector + face mesh confirmation), milliseconds, and
  what a tracker searching every frame would run at: the ratio says what following saves.

Every timed run must find the face on every frame (else it stops with an error: a clip or tracker
that lost the face would time something else). Goal (met / MISS; the exit code counts the misses):
decode + follow >= 60 frames/s at 1080p on one core.

Face recognition: how many faces the tracker described (`embeddings`: after a cut, on re-finding
the face, and about once a second to keep the person's looks fresh), and the milliseconds they
cost per face and per second of footage; decode + follow before and after recognition, in the same
run (before: a stand-in recognizer that costs nothing and sees one person everywhere). Then the same
at 1080p on an edited clip: the person, a cut to somebody else (whose frames must be a gap), a cut
back to the person (found again).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from backend.footage.reader import open_footage  # noqa: E402
from backend.identity.face_recognition import shared_recognizer  # noqa: E402
from backend.identity.gallery import Embed  # noqa: E402
from backend.people.tracker import FaceTracker  # noqa: E402
from backend.standins.clip import H264_WHERE_POSSIBLE, FaceInShot, Shot, video_codec, write_scene_clip  # noqa: E402

RESOLUTIONS = {"1080p": (1920, 1080), "4K": (3840, 2160), "portrait 1080x1920": (1080, 1920)}
GOAL_FOLLOW_FPS_1080P = 60.0


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  ({min(values):.1f}..{max(values):.1f})"


def decode_fps(path: Path) -> float:
    started, n = time.perf_counter(), 0
    for _ in open_footage(path).frames():
        n += 1
    return n / (time.perf_counter() - started)


class TimedEmbed:
    """The face recognizer, counting the faces it describes and the time it takes."""

    def __init__(self):
        self.faces, self.seconds = 0, 0.0

    def __call__(self, rgb, faces):
        started = time.perf_counter()
        descriptors = shared_recognizer().embed(rgb, faces)
        self.seconds += time.perf_counter() - started
        self.faces += len(faces)
        return descriptors


def free_embed(rgb, faces) -> np.ndarray:
    """A stand-in for the recognizer that costs nothing: every face gets one fixed descriptor (all one person)."""
    return np.zeros((len(faces), 128), np.float32)


def follow_fps(path: Path, embed: Embed | None = None) -> tuple[float, int]:
    """Frames/s of decode + tracking over the frames after the first (whose search is timed apart), and
    the number of frames on which the face was found (the first included)."""
    with FaceTracker(embed=embed or TimedEmbed()) as tracker:
        frames = open_footage(path).frames()
        _, first = next(frames)
        tracker.track(first)
        elapsed, n, found = 0.0, 0, 0
        started = time.perf_counter()
        for _, rgb in frames:
            results = tracker.track(rgb)
            found += sum(result.detection is not None for result in results)
            n += 1
        elapsed = time.perf_counter() - started
        found += sum(result.detection is not None for result in tracker.flush())  # frames held back, if any
    return n / elapsed, found + 1


def search_ms(path: Path, repeats: int) -> list[float]:
    with FaceTracker() as tracker:
        _, rgb = next(open_footage(path).frames())
        tracker.search.find(rgb)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            faces = tracker.search.find(rgb)
            times.append((time.perf_counter() - started) * 1000)
        assert faces, "the search found no face: the benchmark's clip is broken"
    return times


def edited_clip(folder: Path, repeats: int) -> tuple[list[float], int, int, TimedEmbed]:
    """Decode + follow frames/s on the person / somebody else / the person clip; frames of the person
    found, frames of the other taken, and the recognizer's work on the last run."""
    person = dict(pan=(0.1, 0.02), zoom=0.2)
    shots = [Shot(60, [FaceInShot(0.3, 0.4, 90, **person)]),
             Shot(60, [FaceInShot(0.6, 0.45, 110, person="hopper", pan=(-0.05, 0.0))], background="coffee"),
             Shot(60, [FaceInShot(0.55, 0.5, 80, **person)])]
    clip = write_scene_clip(folder / "edited.mp4", (1920, 1080), shots, fourccs=H264_WHERE_POSSIBLE)
    runs = []
    for _ in range(repeats + 1):  # the first is the warm-up
        embed = TimedEmbed()
        with FaceTracker(embed=embed) as tracker:
            results = []
            started = time.perf_counter()
            for _, rgb in open_footage(clip).frames():
                results += tracker.track(rgb)
            results += tracker.flush()
            runs.append(180 / (time.perf_counter() - started))
        found = sum(result.detection is not None for result in results[:60] + results[120:])
        gap = sum(result.detection is not None for result in results[60:120])
    return runs[1:], found, gap, embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())  # before pinning: the machine's cores
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    cv2.setNumThreads(1)
    print(f"one core (CPU {sorted(os.sched_getaffinity(0))[0]}), {args.frames} frames a clip, "
          f"median (min..max) of {args.repeats} runs after a warm-up")
    goals, medians, recognised, unrecognised = Goals(), {}, {}, {}
    tmp_root = tempfile.TemporaryDirectory()
    print(f"{'footage':20s} {'decode fps':>22s} {'decode+follow fps':>22s} {'search ms':>22s} "
          f"{'search-every-frame fps':>23s} {'follow/search':>14s} {'found':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in RESOLUTIONS.items():
            face = FaceInShot(0.3, 0.4, 70, pan=(0.25, 0.1), zoom=0.3)
            clip = write_scene_clip(Path(tmp) / f"{size[0]}x{size[1]}.mp4", size, [Shot(args.frames, [face])],
                                    fourccs=H264_WHERE_POSSIBLE)
            if not medians:
                print(f"clips written as {video_codec(clip)}")
            decode_fps(clip), follow_fps(clip)  # warm-up: file cache, MediaPipe graphs
            decode = [decode_fps(clip) for _ in range(args.repeats)]
            embeds = [TimedEmbed() for _ in range(args.repeats)]
            follow_runs = [follow_fps(clip, embed) for embed in embeds]
            follow = [fps for fps, _ in follow_runs]
            found = min(count for _, count in follow_runs)
            if found < args.frames:
                raise SystemExit(f"{name}: a timed run found the face on only {found} of {args.frames} frames: "
                                 "the figures would not time following a face")
            search = search_ms(clip, args.repeats)
            # a tracker that searched every frame: decode time + one search a frame
            decode_s = 1 / statistics.median(decode)
            every = [1 / (decode_s + ms / 1000) for ms in search]
            ratio = statistics.median(follow) / statistics.median(every)
            print(f"{name:20s} {summary(decode)} {summary(follow)} {summary(search)} {summary(every)} "
                  f"{ratio:13.1f}x {found:3d}/{args.frames}", flush=True)
            medians[name] = statistics.median(follow)
            recognised[name] = embeds
            unrecognised[name] = [follow_fps(clip, free_embed)[0] for _ in range(args.repeats)]
    print(f"\nface recognition while following ({args.frames} frames at 30 fps):")
    for name, embeds in recognised.items():
        faces = statistics.median(embed.faces for embed in embeds)
        per_face = statistics.median(1000 * embed.seconds / max(embed.faces, 1) for embed in embeds)
        print(f"  {name:20s} {faces:4.0f} faces described, {per_face:6.1f} ms each, "
              f"{faces * per_face / (args.frames / 30):6.1f} ms per second of footage")
    print("\ndecode + follow before and after recognition (the same runs' clips; before: a stand-in descriptor "
          "that costs nothing):")
    for name, free in unrecognised.items():
        print(f"  {name:20s} before {summary(free)}   after {medians[name]:6.1f} frames/s   "
              f"after / before {medians[name] / statistics.median(free):.2f}x")
    edited_fps, found, gap, embed = edited_clip(Path(tmp_root.name), args.repeats)
    print(f"\nedited 1080p clip (the person 2 s, a cut to somebody else 2 s, a cut back 2 s): decode + follow "
          f"{summary(edited_fps)} frames/s; {embed.faces} faces described ({1000 * embed.seconds:.0f} ms); "
          f"the person on {found}/120 of their frames, {gap} of the other's frames taken")
    print()
    goals.check(gap == 0 and found >= 114, "edited clip: the person found again after the cut, the other never taken")
    goals.check(medians["1080p"] >= GOAL_FOLLOW_FPS_1080P,
                f"decode + follow at 1080p on one core: {medians['1080p']:.1f} frames/s (goal >= "
                f"{GOAL_FOLLOW_FPS_1080P:g})")
    sys.exit(goals.exit_code())


if __name__ == "__main__":
    main()
