"""`bake.py --ray auto|ADDRESS`: a batch as one Ray task per clip, on a local Ray instance or a cluster.

Each task (named `bake:<clip file name>`) runs the sequential bake of its one clip, `bake.py CLIP --out DIR`
with the batch's other options, as a subprocess on its worker's node; that subprocess is killed with the
worker (Linux), so a task whose worker died is retried (MAX_RETRIES) with nothing of it still running. Its
outputs are written as the sequential bake writes them (a temporary name, then a rename), and a retry first
removes what a killed attempt left. The driver prints one line per clip as it finishes, with the overall
progress; a failing clip fails alone, and the exit code is the sequential batch's.

The project (with .venv and .venv-bpy45) must be at the same path on every node, and --out on a file system
every node shares: the driver writes a marker into --out and each task checks that it sees it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

MAX_RETRIES = 2  # a task whose worker died runs again, twice at most
JOIN_TIMEOUT_S = 60.0  # joining a cluster (ray.init) that takes longer is given up
HEARTBEAT_S = 60.0  # a progress line when no clip has finished for this long
MARKER_PREFIX = ".bake-ray-"
# bake.py's options that the driver sets for each clip's own bake, or that are the driver's alone
NOT_PASSED = {"clips", "out", "flame", "weights", "backend_python", "ray", "ray_task_cpus", "ray_task_gpus",
              "output_name"}
# a killed writer's temporaries: core/atomic_file's `.NAME.PID.XXXXXXXX.tmp[.ext]`, bake.py's `.NAME.tmp.blend`
_TEMPORARY = re.compile(r"^\.(?P<name>.+?)(\.\d+\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?|\.tmp\.blend)$")
# the child re-executes the bake once the kernel will kill it with its parent (the worker): PR_SET_PDEATHSIG
_LAUNCHER = ("import ctypes, os, signal, sys\n"
             "if sys.platform.startswith('linux'):\n"
             "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
             "    if os.getppid() != int(sys.argv[1]):\n"
             "        os._exit(137)\n"
             "os.execv(sys.argv[2], sys.argv[2:])\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bake.py's Ray options (and the output name a task gives its clip's bake)."""
    group = parser.add_argument_group("Ray", "a batch as one Ray task per clip (README: Batches on a Ray cluster)")
    group.add_argument("--ray", metavar="auto|ADDRESS",
                       help="auto: a local Ray instance for this batch; ADDRESS (HOST:PORT): join that running cluster")
    group.add_argument("--ray-task-cpus", type=_amount, metavar="N", help="CPUs each clip's task asks for (default 1)")
    group.add_argument("--ray-task-gpus", type=_amount, metavar="N",
                       help="GPUs each clip's task asks for (default: 1 where the cluster has GPUs, else 0)")
    parser.add_argument("--output-name", help=argparse.SUPPRESS)  # a task's one clip keeps the batch's name for it


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"{text}: give 0, a fraction below 1 or a whole number")
    return value


def passthrough(args: argparse.Namespace) -> list[str]:
    """bake.py's other options as given, for each clip's own bake (flags from the option names)."""
    argv: list[str] = []
    for dest, value in vars(args).items():
        if dest in NOT_PASSED or value is None or value is False:
            continue
        flag = "--" + dest.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, tuple):  # --face X,Y
            argv += [flag, ",".join(repr(float(v)) for v in value)]
        elif isinstance(value, str | int | float | os.PathLike):
            argv += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
        else:
            raise TypeError(f"bake.py option {flag}: cannot pass a {type(value).__name__} to the clip's bake")
    return argv


def task_name(clip: str) -> str:
    """`bake:<clip file name>` (a printf pattern keeps its folder: `bake:take/%04d.png`)."""
    path = Path(clip.rstrip("/\\"))
    return f"bake:{path.parent.name}/{path.name}" if "%" in path.name else f"bake:{path.name}"


def remove_temporaries(out: Path, name: str) -> list[Path]:
    """Remove what a killed bake of output `name` left in `out` (its temporaries); returns what was removed."""
    targets = {f"{name}.blend", f"{name}.sheap.safetensors", f"{name}.preview.mp4"}
    removed = []
    try:
        entries = list(out.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and match["name"] in targets:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def reachable(out: str, marker: str, token: str, command: list[str]) -> str | None:
    """On the worker: None when it sees --out (the driver's marker) and the project, else the one-line reason."""
    host = socket.gethostname()
    try:
        seen = Path(marker).read_text() == token
    except OSError:
        seen = False
    if not seen:
        return (f"{out}: --out is not reachable from the Ray worker on {host} (the driver's marker is not there): "
                "put --out on a file system every node shares, at the same path")
    for path in (command[0], command[command.index("--") - 1]):  # the interpreter (or Blender) and bake.py
        if not os.path.isfile(path):
            return f"{path}: not found on {host}: the project (with its environments) must be at the same path on " \
                   "every node"
    return None


def bake_one(command: list[str], clip: str, name: str, out: str, marker: str, token: str) -> dict:
    """The Ray task: the sequential bake of one clip, as a subprocess killed with this worker."""
    started = time.perf_counter()
    host = socket.gethostname()
    problem = reachable(out, marker, token, command)
    if problem:
        return {"host": host, "code": 2, "line": None, "reason": problem, "warnings": []}
    remove_temporaries(Path(out), name)  # a killed earlier attempt's
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    stdout, stderr = done.stdout.splitlines(), done.stderr.splitlines()
    baked = next((line for line in stdout if line.startswith(f"bake: {clip} -> ")), None)
    failed = next((line for line in stderr if line.startswith(f"bake: FAILED {clip}: ")), None)
    if failed:
        reason = failed.removeprefix(f"bake: FAILED {clip}: ")
    elif baked is None or done.returncode != 0:
        last = [line for line in stderr + stdout if line.strip()][-1:] or ["no output"]
        reason = f"bake.py exited with code {done.returncode}: {last[0].removeprefix('bake: ')}"
    else:
        reason = None
    warnings = [line.removeprefix(f"bake: {clip}: warning: ") for line in stderr
                if line.startswith(f"bake: {clip}: warning: ")]
    return {"host": host, "code": done.returncode, "line": baked if reason is None else None, "reason": reason,
            "warnings": warnings, "seconds": time.perf_counter() - started}


def clip_command(args: argparse.Namespace, clip: str, name: str, flame: str, weights: str, python: str) -> list[str]:
    """The one-clip bake a task runs: this interpreter (or Blender) on bake.py, the batch's options."""
    import bpy

    script = str(Path(__file__).resolve().with_name("bake.py"))
    runner = [bpy.app.binary_path, "-b", "-P", script] if bpy.app.binary_path else [sys.executable, script]
    return [*runner, "--", clip, "--out", str(args.out), "--output-name", name, "--flame", flame, "--weights", weights,
            "--backend-python", python, *passthrough(args)]


def probe(address: str) -> str | None:
    """None when something answers at the cluster's HOST:PORT (Ray would wait for ever), else the reason."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "give auto or the head's HOST:PORT (`ray start --head --port PORT`)"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5.0):
            return None
    except OSError as exc:
        return f"no Ray head answers there ({exc.strerror or exc}): start one with `ray start --head --port {port}`"


def _give_up(address: str) -> None:
    _say(f"--ray {address}: the Ray cluster there did not take this driver within {JOIN_TIMEOUT_S:.0f} s (an "
         "address it does not know itself by? use the one `ray start --head` printed)", error=True)
    os._exit(2)


def _plural(count: float, noun: str) -> str:
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


def _say(line: str, error: bool = False) -> None:
    print(f"bake: {line}", file=sys.stderr if error else sys.stdout, flush=True)


def bake_on_ray(args: argparse.Namespace, names: list[str], flame: str, weights: str, python: str) -> int | None:
    """Run the batch on Ray when --ray is given (the exit code), else None: bake.py goes on as usual."""
    if args.output_name is not None and len(args.clips) != 1:
        _say("--output-name names the output of one clip", error=True)
        return 2
    if args.ray is None:
        if args.ray_task_cpus is not None or args.ray_task_gpus is not None:
            _say("--ray-task-cpus and --ray-task-gpus go with --ray auto|ADDRESS", error=True)
            return 2
        return None
    problem = None if args.ray == "auto" else probe(args.ray)
    if problem:
        _say(f"--ray {args.ray}: {problem} (README: Batches on a Ray cluster)", error=True)
        return 2
    if args.ray == "auto":  # a local instance for this batch: on the loopback interface only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        _say(f"--ray needs Ray in {sys.executable}: python3 scripts/setup_env.py run --ray, then run bake.py with "
             ".venv-bpy45/bin/python", error=True)
        return 2
    import logging

    watchdog = threading.Timer(JOIN_TIMEOUT_S, _give_up, args=(args.ray,))  # Ray itself would wait for ever
    watchdog.daemon = True
    watchdog.start()
    try:
        if args.ray == "auto":
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=args.ray, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        _say(f"--ray {args.ray}: cannot join the Ray cluster there ({str(exc).strip().splitlines()[0][:200]})",
             error=True)
        return 2
    finally:
        watchdog.cancel()
    marker = args.out / f"{MARKER_PREFIX}{uuid.uuid4().hex}"
    try:
        return _run(ray, args, names, flame, weights, python, marker)
    finally:
        marker.unlink(missing_ok=True)
        ray.shutdown()


def _run(ray, args: argparse.Namespace, names: list[str], flame: str, weights: str, python: str, marker: Path) -> int:
    import ray.cloudpickle

    resources = ray.cluster_resources()
    cpus = 1.0 if args.ray_task_cpus is None else args.ray_task_cpus
    gpus = args.ray_task_gpus if args.ray_task_gpus is not None else (1.0 if resources.get("GPU", 0) >= 1 else 0.0)
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if not any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
        sizes = ", ".join(f"{_plural(node.get('CPU', 0), 'CPU')} {_plural(node.get('GPU', 0), 'GPU')}"
                          for node in nodes)
        _say(f"--ray {args.ray}: no node has {_plural(cpus, 'CPU')} and {_plural(gpus, 'GPU')} for a task (its "
             f"nodes: {sizes}); set --ray-task-cpus / --ray-task-gpus", error=True)
        return 2
    token = marker.name.removeprefix(MARKER_PREFIX)
    temporary = marker.with_name(f"{marker.name}.tmp")
    temporary.write_text(token)
    os.replace(temporary, marker)

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this module
    task = ray.remote(bake_one)
    pending = {}
    for clip, name in zip(args.clips, names):
        absolute = os.path.abspath(clip)
        command = clip_command(args, absolute, name, flame, weights, python)
        ref = task.options(name=task_name(clip), num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES,
                           retry_exceptions=False).remote(command, absolute, name, str(args.out), str(marker), token)
        pending[ref] = (clip, absolute, name)
    total = len(pending)
    _say(f"{_plural(total, 'clip')} as Ray tasks ({_plural(len(nodes), 'node')}, "
         f"{_plural(resources.get('CPU', 0), 'CPU')}, {_plural(resources.get('GPU', 0), 'GPU')}; each task "
         f"{_plural(cpus, 'CPU')}, {_plural(gpus, 'GPU')})")
    started = last = time.monotonic()
    finished = failures = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            if not ready:
                if time.monotonic() - last >= HEARTBEAT_S:
                    last = time.monotonic()
                    _say(f"{finished}/{total} clips finished, {last - started:.0f} s")
                continue
            ref = ready[0]
            clip, absolute, name = pending.pop(ref)
            finished += 1
            last = time.monotonic()
            failures += not _report(ray, ref, clip, absolute, name, args.out, f"{finished}/{total}")
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        _say(f"interrupted: {len(pending)} clips not baked", error=True)
        return 130
    _say(f"{total - failures} baked, {failures} failed (Ray, {time.monotonic() - started:.1f} s)")
    return 1 if failures else 0


def _report(ray, ref, clip: str, absolute: str, name: str, out: Path, progress: str) -> bool:
    """One line for a finished clip (its warnings before it); True when it was baked."""
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayError as exc:
        remove_temporaries(out, name)  # the last attempt's, if its worker died too
        if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
            reason = f"its Ray worker died, {_plural(MAX_RETRIES + 1, 'time')} ({type(exc).__name__})"
        else:
            reason = f"the Ray task failed: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"
        _say(f"FAILED {clip}: {reason} [{progress}]", error=True)
        return False
    for warning in outcome["warnings"]:
        _say(f"{clip}: warning: {warning}", error=True)
    if outcome["reason"] is not None:
        _say(f"FAILED {clip}: {outcome['reason']} [{progress}, {outcome['host']}]", error=True)
        return False
    _say(f"{clip} {outcome['line'].removeprefix(f'bake: {absolute} ')} [{progress}, {outcome['host']}]")
    return True
