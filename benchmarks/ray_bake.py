"""`bake.py --ray` on this machine: a 4-clip batch with 1 and with 2 Ray workers vs the sequential bake.

    .venv-bpy45/bin/python benchmarks/ray_bake.py [--repeats 3] [--clips 4]

The clips are the demo stand-ins' astronaut clip (90 frames, 640x480) under other names, on CPU. A Ray head
started here with this machine's 2 CPUs (`ray start --head --num-cpus 2`, loopback only); "1 worker": each task
asks for both CPUs (`--ray-task-cpus 2`: one clip at a time, its torch on 2 threads, as in the sequential bake);
"2 workers": each asks for one (two clips at once, one thread each). Printed: the batch's wall time (median
and range of the repeats) for the sequential bake and for Ray with 1 and 2 workers; Ray's scheduling overhead
per task: its task start latency (the bake task's creation to its start, for tasks that found a free worker,
from Ray's own task list), an empty task's round trip (warm worker) and first call (a worker started for it);
and what a clip costs more under Ray than in the sequential bake, 1 worker against it (the clip's own bake.py
process: bpy, the extension, a backend that is not warm yet).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# one machine: Ray's nodes on 127.0.0.1, no token (set before Ray is imported)
os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"})
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import cpu_name  # noqa: E402  (benchmarks/machine.py, beside this script)

BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Head:
    """`ray start --head --block` with `cpus` CPUs; `stop()` ends it (SIGTERM: it stops all it started)."""

    def __init__(self, cpus: int, folder: Path):
        gcs, dashboard = free_port(), free_port()
        self.address, self.dashboard = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
        command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address",
                   "127.0.0.1", "--port", str(gcs), "--num-cpus", str(cpus), "--num-gpus", "0",
                   "--object-store-memory", str(100 * 2**20), "--dashboard-host", "127.0.0.1", "--dashboard-port",
                   str(dashboard), "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port",
                   str(free_port()), "--disable-usage-stats", "--temp-dir", str(folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from ray.util.state import list_nodes

        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ray_bake: the Ray head with {cpus} CPUs did not start")
            try:
                if list_nodes(address=self.dashboard, raise_on_missing_output=False):
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1.0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=90)


def bake(demo: Path, clips: list[Path], out: Path, *extra: str) -> tuple[float, int]:
    """Wall seconds of one bake.py batch, and its driver's pid."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, clips), "--out",
                                str(out), "--flame", str(demo / "flame.safetensors"), "--weights",
                                str(demo / "demo_sheap_model.pt"), "--backend-python", str(BACKEND_PYTHON),
                                "--device", "cpu", *extra], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0 or f"{len(clips)} baked, 0 failed" not in stdout:
        raise SystemExit(f"ray_bake: the batch failed: {(stderr or stdout).strip().splitlines()[-1:]}")
    return wall, process.pid


def start_latencies(dashboard: str, driver_pid: int, workers: int) -> list[float]:
    """Seconds from each bake task's creation to its start, for the tasks that found a free worker."""
    from ray.util.state import list_jobs, list_tasks

    job = next(j.job_id for j in list_jobs(address=dashboard, raise_on_missing_output=False)
               if j.driver_info is not None and int(j.driver_info.pid) == driver_pid)
    tasks = sorted(list_tasks(address=dashboard, filters=[("job_id", "=", job)], detail=True,
                              raise_on_missing_output=False), key=lambda t: t.start_time_ms)
    return [(t.start_time_ms - t.creation_time_ms) / 1000 for t in tasks[:workers]]


def empty_task_latency(address: str, calls: int = 20) -> tuple[float, float]:
    """An empty task's first call (its worker started for it) and median warm round trip, seconds."""
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        @ray.remote(num_cpus=1)
        def empty() -> int:
            return 0

        started = time.perf_counter()
        ray.get(empty.remote())
        first = time.perf_counter() - started
        trips = []
        for _ in range(calls):
            started = time.perf_counter()
            ray.get(empty.remote())
            trips.append(time.perf_counter() - started)
        return first, statistics.median(trips)
    finally:
        ray.shutdown()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} s  ({min(values):.1f} .. {max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    print(f"ray_bake: {cpu_name()}, {os.cpu_count()} CPUs; {args.clips} clips x 90 frames (640x480, demo stand-in, "
          f"CPU); median of {args.repeats}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ray_bake") as tmp:
        tmp = Path(tmp)
        demo = tmp / "demo"
        subprocess.run([str(BACKEND_PYTHON), "-m", "backend", "make-demo", str(demo)], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        clips = []
        for i in range(args.clips):
            clips.append(tmp / f"clip{i + 1}.mp4")
            shutil.copyfile(demo / "astronaut.mp4", clips[-1])

        sequential = [bake(demo, clips, tmp / "out")[0] for _ in range(args.repeats)]
        print(f"  sequential bake.py        {spread(sequential)}", flush=True)
        walls, starts = {1: [], 2: []}, []
        head = Head(2, tmp / "ray")
        try:
            first, trip = empty_task_latency(head.address)
            for workers in (1, 2):
                for _ in range(args.repeats):
                    wall, pid = bake(demo, clips, tmp / "out", "--ray", head.address, "--ray-task-cpus",
                                     str(2 // workers))
                    walls[workers].append(wall)
                    starts += start_latencies(head.dashboard, pid, workers)
                print(f"  --ray, {workers} worker{'s' if workers > 1 else ' '}        {spread(walls[workers])}   "
                      f"x{statistics.median(sequential) / statistics.median(walls[workers]):.2f} vs sequential "
                      f"({2 // workers} CPU{'s' if workers == 1 else ''} a task)", flush=True)
        finally:
            head.stop()
    per_clip = (statistics.median(walls[1]) - statistics.median(sequential)) / args.clips
    print("Ray's overhead per task:")
    print(f"  bake task start latency   {statistics.median(starts) * 1000:6.0f} ms (creation to start, free worker; "
          f"median of {len(starts)})")
    print(f"  empty task round trip     {trip * 1000:6.1f} ms (warm worker, median of 20); first call "
          f"{first * 1000:.0f} ms (a worker started for it)")
    print(f"  a clip under Ray vs in the sequential bake: +{per_clip:.1f} s (1 worker: its own bake.py, bpy and a "
          "cold backend per clip)")


if __name__ == "__main__":
    main()
