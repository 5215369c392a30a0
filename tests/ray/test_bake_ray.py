"""`bake.py --ray`: a batch as one Ray task per clip, against a real Ray head (conftest), as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import BACKEND_PYTHON, REPO
from ray.util.state import list_jobs, list_tasks

from sheap_blender.core.result.result_format import read_result
from sheap_blender.rig.animation import fcurves_of

BAKE = REPO / "scripts" / "bake.py"


def bake_command(demo: Path, *args: str | Path) -> list[str]:
    return [sys.executable, str(BAKE), "--", *map(str, args), "--flame", str(demo / "flame.safetensors"), "--weights",
            str(demo / "demo_sheap_model.pt"), "--backend-python", str(BACKEND_PYTHON), "--device", "cpu"]


def bake(demo: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(bake_command(demo, *args), cwd=REPO, capture_output=True, text=True, timeout=600)


def short_clip(source: Path, target: Path, frames: int) -> Path:
    """The first `frames` frames of the demo clip, as a folder of PNGs."""
    command = ("import sys, cv2\nfrom pathlib import Path\ncapture = cv2.VideoCapture(sys.argv[1])\n"
               "out = Path(sys.argv[2])\nout.mkdir(parents=True)\nfor i in range(int(sys.argv[3])):\n"
               "    cv2.imwrite(str(out / f'{i:04d}.png'), capture.read()[1])\n")
    subprocess.run([str(BACKEND_PYTHON), "-c", command, str(source), str(target), str(frames)], check=True)
    return target


def job_tasks(dashboard: str, driver_pid: int) -> list:
    """Ray's own record of the tasks (every attempt) of the batch whose driver had this pid."""
    jobs = [job.job_id for job in list_jobs(address=dashboard, raise_on_missing_output=False)
            if (job.driver_info is not None and int(job.driver_info.pid) == driver_pid)]
    if not jobs:
        return []
    return list_tasks(address=dashboard, filters=[("job_id", "=", jobs[0])], detail=True, limit=1000,
                      raise_on_missing_output=False)


def keyed_values(path: Path) -> dict[tuple[str, str, int], np.ndarray]:
    """Every F-curve's keyframes (frame, value) in a saved .blend, by (data-block, data path, index)."""
    bpy.ops.wm.open_mainfile(filepath=str(path))
    curves = {}
    for blocks in (bpy.data.objects, bpy.data.shape_keys, bpy.data.cameras, bpy.data.scenes):
        for block in blocks:
            for curve in fcurves_of(block):
                co = np.empty(len(curve.keyframe_points) * 2, dtype=np.float32)
                curve.keyframe_points.foreach_get("co", co)
                curves[(block.name, curve.data_path, curve.array_index)] = co.reshape(-1, 2)
    return curves


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_three_clips_as_ray_tasks_equal_the_sequential_bake(demo, ray_head, tmp_path):
    clips = [short_clip(demo / "astronaut.mp4", tmp_path / "a" / "take", 6),
             short_clip(demo / "astronaut.mp4", tmp_path / "b" / "take", 8),  # the same name: take-2, as in sequence
             short_clip(demo / "astronaut.mp4", tmp_path / "stills", 10)]
    sequential = bake(demo, *clips, "--out", tmp_path / "sequential")
    assert sequential.returncode == 0, sequential.stderr[-3000:]

    out = tmp_path / "ray"
    driver = subprocess.Popen(bake_command(demo, *clips, "--out", out, "--ray", ray_head.address), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stdout.splitlines() if " -> " in line]
    assert len(lines) == 3 and [line.rsplit("[", 1)[1].split(",")[0] for line in lines] == ["1/3", "2/3", "3/3"]
    for clip, name in zip(clips, ["take", "take-2", "stills"]):
        assert any(line.startswith(f"bake: {clip} -> {out / name}.blend (") for line in lines), stdout
    assert "bake: 3 baked, 0 failed" in stdout and "[demo weights]" in stdout

    names = sorted(p.name for p in (tmp_path / "sequential").iterdir())
    assert names == ["stills.blend", "stills.sheap.safetensors", "take-2.blend", "take-2.sheap.safetensors",
                     "take.blend", "take.sheap.safetensors"]
    assert sorted(p.name for p in out.iterdir()) == names, "the same files, and no temporary or marker left"
    for name in ("take", "take-2", "stills"):
        expected = read_result(tmp_path / "sequential" / f"{name}.sheap.safetensors")
        got = read_result(out / f"{name}.sheap.safetensors")
        assert got.metadata == expected.metadata
        np.testing.assert_array_equal(got.frame_index, expected.frame_index)
        np.testing.assert_array_equal(got.valid, expected.valid)
        assert got.params.keys() == expected.params.keys() and got.extra.keys() == expected.extra.keys()
        # a 1-CPU task runs torch on one thread: sums in another order, ~1e-7 apart
        for key in expected.params:
            np.testing.assert_allclose(got.params[key], expected.params[key], rtol=0, atol=1e-6, err_msg=key)
        for key in expected.extra:
            np.testing.assert_allclose(got.extra[key], expected.extra[key], rtol=0, atol=1e-6, err_msg=key)
        expected_keys, got_keys = keyed_values(tmp_path / "sequential" / f"{name}.blend"), keyed_values(
            out / f"{name}.blend")
        assert got_keys.keys() == expected_keys.keys() and len(expected_keys) > 100
        for curve, values in expected_keys.items():
            np.testing.assert_allclose(got_keys[curve], values, rtol=0, atol=1e-5, err_msg=str(curve))

    tasks = job_tasks(ray_head.dashboard, driver.pid)
    assert sorted((task.name, task.state, task.attempt_number) for task in tasks) == [
        ("bake:stills", "FINISHED", 0), ("bake:take", "FINISHED", 0), ("bake:take", "FINISHED", 0)]


def test_a_bad_clip_fails_alone(demo, ray_head, tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "stills", 6)
    out = tmp_path / "out"
    completed = bake(demo, corrupt, frames, "--out", out, "--ray", ray_head.address)
    assert completed.returncode == 1, completed.stderr[-3000:]  # as the sequential batch: 1 when a clip failed
    failures = [line for line in completed.stderr.splitlines() if line.startswith("bake: FAILED")]
    assert len(failures) == 1 and failures[0].startswith(f"bake: FAILED {corrupt}: {corrupt}"), completed.stderr
    assert "/2, " in failures[0]
    assert "Traceback" not in completed.stderr
    assert "bake: 1 baked, 1 failed" in completed.stdout
    assert sorted(p.name for p in out.iterdir()) == ["stills.blend", "stills.sheap.safetensors"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_worker_has_its_clip_retried_and_completed(demo, ray_head, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(bake_command(demo, demo / "astronaut.mp4", "--out", out, "--ray", ray_head.address),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # mid-task: the worker runs the clip's bake.py, and that has started its backend
        deadline = time.monotonic() + 120
        while True:
            assert driver.poll() is None and time.monotonic() < deadline, "the task was never seen running"
            running = [task for task in job_tasks(ray_head.dashboard, driver.pid) if task.state == "RUNNING"]
            worker = running[0].worker_pid if running else None
            bakes = _children(worker) if worker else []
            backends = [child for pid in bakes for child in _children(pid)]
            if backends:
                break
            time.sleep(0.3)
        os.kill(worker, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    assert f"bake: {demo / 'astronaut.mp4'} -> {out / 'astronaut.blend'} (90 frames" in stdout
    attempts = sorted((task.attempt_number, task.state, task.name)
                      for task in job_tasks(ray_head.dashboard, driver.pid))
    assert attempts == [(0, "FAILED", "bake:astronaut.mp4"), (1, "FINISHED", "bake:astronaut.mp4")]
    # the killed attempt's bake and backend died with its worker: nothing of it runs on, or is left
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in bakes + backends) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in bakes + backends)
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.blend", "astronaut.sheap.safetensors"]
    assert len(read_result(out / "astronaut.sheap.safetensors").frame_index) == 90


def test_a_local_ray_instance_with_auto(demo, tmp_path):
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    completed = bake(demo, frames, "--out", tmp_path / "out", "--ray", "auto", "--ray-task-cpus", "2")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "each task 2 CPUs, 0 GPUs" in completed.stdout and "bake: 1 baked, 0 failed" in completed.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["take.blend", "take.sheap.safetensors"]


@pytest.mark.parametrize(("options", "expected"), [
    (["--ray", "127.0.0.1:{closed}"], "--ray 127.0.0.1:{closed}: no Ray head answers there"),
    (["--ray", "{head}", "--ray-task-cpus", "3"], "no node has 3 CPUs and 0 GPUs for a task"),
    (["--ray-task-gpus", "1"], "--ray-task-cpus and --ray-task-gpus go with --ray"),
    (["--ray", "nowhere"], "give auto or the head's HOST:PORT"),
])
def test_bad_ray_options_are_one_line(demo, ray_head, tmp_path, options, expected):
    from conftest import free_port

    closed = free_port()
    options = [option.format(closed=closed, head=ray_head.address) for option in options]
    completed = bake(demo, demo / "astronaut.mp4", "--out", tmp_path / "out", *options)
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected.format(closed=closed) in lines[0], completed.stderr
    assert not list((tmp_path / "out").glob("*"))


def test_a_worker_that_cannot_see_out_fails_its_clip_with_one_line(tmp_path):
    """The task's first check: the driver's marker in --out (a file system the worker does not share)."""
    from ray_batch import MARKER_PREFIX, bake_one

    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, str(BAKE), "--", "clip.mp4", "--out", str(out)]
    outcome = bake_one(command, "clip.mp4", "clip", str(out), str(out / f"{MARKER_PREFIX}abc"), "abc")
    assert outcome["reason"].startswith(f"{out}: --out is not reachable from the Ray worker on ")
    assert "shares" in outcome["reason"] and outcome["line"] is None

    (out / f"{MARKER_PREFIX}abc").write_text("abc")  # seen, but the project is not at that path there
    command[1] = str(tmp_path / "elsewhere" / "bake.py")
    outcome = bake_one(command, "clip.mp4", "clip", str(out), str(out / f"{MARKER_PREFIX}abc"), "abc")
    assert outcome["reason"].startswith(f"{command[1]}: not found on ")


def test_every_other_option_reaches_each_clips_bake():
    from bake import parse_args
    from ray_batch import NOT_PASSED, passthrough

    for options in (["--rig", "/r/rig.blend", "--face", "0.7,0.4", "--preview", "--smooth", "0.3"],
                    ["--character", "/c/hero.blend", "--character-object", "Hero Face"]):
        given = parse_args(["bake.py", "--", "clip.mp4", "--out", "/o", "--device", "cpu", "--precision", "fp16",
                            "--batch-size", "4", "--ray", "auto", "--ray-task-cpus", "2", *options])
        again = parse_args(["bake.py", "--", "clip.mp4", "--out", "/o", *passthrough(given)])
        for key, value in vars(given).items():
            if key not in NOT_PASSED:
                assert getattr(again, key) == value, key
        assert "--ray" not in passthrough(given) and "--out" not in passthrough(given)
