"""Reading a Live Link Face take and placing it on a scene's frames: seconds for a real-size take.

    .venv/bin/python benchmarks/live_link_take.py [--rows 7800] [--repeats 7]

The take is the app's exact format: the real excerpt in tests/data (300 rows, MIT, see its .txt)
repeated to `--rows` rows (about 4 minutes at the app's ~30 rows a second), its timecode going on at
60 fps with the excerpt's own uneven steps. Figures, after a warm-up, median [min .. max] over the repeats:

- read: `read_live_link_csv` with the rate read from the take (header by name, timecodes, numbers);
- baseline: the floor any reader pays on the same file, Python's csv module and float() of every cell;
- on the scene: `on_scene_frames` at 24 and 30 fps (keys on every whole frame and every row).
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name  # noqa: E402  (benchmarks/machine.py, beside this script)

from sheap_blender.core.arkit.live_link_csv import on_scene_frames, read_live_link_csv, timecode  # noqa: E402

EXCERPT = REPO / "tests" / "data" / "live_link_face_take_excerpt.csv"


def real_size_take(path: Path, n_rows: int) -> None:
    """The excerpt's rows repeated to `n_rows`, timecodes continuing at 60 fps with the excerpt's own steps."""
    with open(EXCERPT, newline="") as stream:
        header, *rows = list(csv.reader(stream))
    read = read_live_link_csv(EXCERPT)
    steps = list(read.frames[1:] - read.frames[:-1]) + [2.0]
    frame, lines = read.frames[0], [",".join(header)]
    for i in range(n_rows):
        row = rows[i % len(rows)]
        lines.append(",".join([timecode(frame, 60), *row[1:]]))
        frame += steps[i % len(steps)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def figure(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms  [{min(values) * 1000:.1f} .. {max(values) * 1000:.1f}]"


def plain_parse(path: Path) -> None:
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream))
    [[float(cell) for cell in row[2:]] for row in rows[1:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7800)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "take.csv"
        real_size_take(path, args.rows)
        take = read_live_link_csv(path)
        seconds = take.seconds()[-1] - take.seconds()[0]
        print(f"{cpu_name()}, Python {platform.python_version()}: {args.rows} rows, {seconds:.1f} s of take, "
              f"{path.stat().st_size / 1e6:.1f} MB, timecode read at {take.fps:g} fps")
        read = timed(lambda: read_live_link_csv(path), args.repeats)
        baseline = timed(lambda: plain_parse(path), args.repeats)
        print(f"read (rate from the take)   {figure(read)}")
        print(f"baseline (csv + float())    {figure(baseline)}   read / baseline "
              f"{statistics.median(read) / statistics.median(baseline):.2f}")
        for fps in (24, 30):
            placed = timed(lambda fps=fps: on_scene_frames(take, fps, 1), args.repeats)
            keys = len(on_scene_frames(take, fps, 1).frames)
            print(f"on a {fps} fps scene           {figure(placed)}   {keys} keys a channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
