"""Bad input found by a bad-input campaign, through the real command line: one line, exit 2, nothing left."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_command import REPO, backend

from backend.standins.predictor import DemoSheap
from sheap_blender.core.result.result_format import PER_FRAME, Result, write_result


def reconstruct(demo: Path, out: Path, *extra, footage: Path | None = None, weights: Path | None = None):
    return backend("reconstruct", footage or demo / "astronaut.mp4", "-o", out, "--flame", demo / "flame.safetensors",
                   "--weights", weights or demo / "demo_sheap_model.pt", "--end", "6", *extra)


def one_line_error(completed: subprocess.CompletedProcess, *words: str) -> str:
    assert completed.returncode == 2, (completed.returncode, completed.stderr[-2000:])
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert completed.stderr.strip().splitlines()[-1] == errors[0]  # the last word, after any log lines
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


class Faulty(torch.nn.Module):
    """The demo predictor, going wrong on real crops only (the all-zero contract check at load passes)."""

    def __init__(self, fault: int):
        super().__init__()
        self.inner = DemoSheap()
        self.fault = fault

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inner(images)
        if bool(images.abs().sum() > 0):
            if self.fault == 0:
                out["expr"] = out["expr"] * float("nan")
            elif self.fault == 1:
                out["jaw_pose"] = out["jaw_pose"] + 1e30
            elif self.fault == 2:
                out = {name: value[:1] for name, value in out.items()}  # one row whatever the batch
            elif self.fault == 3:
                raise RuntimeError("boom in the model")
            elif self.fault == 4:
                out["extra_thing"] = out["expr"] * float("inf")
        return out


@pytest.mark.parametrize("fault, words", [(0, ["NaN", "expr", "frames 0"]), (1, ["absurd", "jaw_pose"]),
                                          (2, ["shape", "batch of"]), (3, ["failed on frames", "boom"]),
                                          (4, ["extra_thing", "infinite"])])
def test_a_faulty_model_is_one_line_naming_the_weights_and_nothing_is_written(demo, tmp_path, fault, words):
    weights = tmp_path / "faulty.pt"
    torch.jit.save(torch.jit.script(Faulty(fault)), str(weights))
    out = tmp_path / "r.sheap.safetensors"
    # float32: no precision self-check at load, so the fault shows on the footage's frames
    one_line_error(reconstruct(demo, out, "--precision", "fp32", weights=weights), str(weights), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faulty.pt"]


@pytest.mark.parametrize("fault, words", [(0, ["NaN", "expr", "crops 0"]), (3, ["failed on face crops", "boom"])])
def test_a_faulty_model_fails_the_precision_self_check_in_one_line(demo, tmp_path, fault, words):
    weights = tmp_path / "faulty.pt"
    torch.jit.save(torch.jit.script(Faulty(fault)), str(weights))
    out = tmp_path / "r.sheap.safetensors"
    one_line_error(reconstruct(demo, out, "--precision", "bf16", weights=weights), str(weights), *words)
    assert not out.exists()


def test_a_flame_file_full_of_nan_is_refused_at_conversion(demo, tmp_path):
    from sheap_blender.core.flame.model import load_flame, save_flame

    model = load_flame(demo / "flame.safetensors")
    model.shapedirs[5, 1, 3] = np.nan
    bad = tmp_path / "nan_flame.safetensors"
    save_flame(model, bad)
    out = tmp_path / "r.sheap.safetensors"
    one_line_error(reconstruct(demo, out, "--flame", bad), str(bad), "shapedirs", "NaN")
    assert not out.exists()


@pytest.mark.parametrize("case", ["folder", "the footage itself", "unwritable folder", "missing folder"])
def test_outputs_are_checked_before_the_work(demo, tmp_path, case):
    footage = tmp_path / "clip.mp4"
    footage.write_bytes((demo / "astronaut.mp4").read_bytes())
    out = {"folder": tmp_path, "the footage itself": footage, "unwritable folder": Path("/proc/sheap.safetensors"),
           "missing folder": tmp_path / "nope" / "r.safetensors"}[case]
    started = time.perf_counter()
    one_line_error(backend("reconstruct", footage, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
                           demo / "demo_sheap_model.pt"), str(out))
    assert time.perf_counter() - started < 30  # refused up front, not after the clip
    assert footage.read_bytes() == (demo / "astronaut.mp4").read_bytes()


@pytest.mark.parametrize("command", ["convert-flame", "flame", "export-ply"])
def test_other_commands_refuse_a_folder_as_output(demo, tmp_path, command):
    args = {"convert-flame": [demo / "generic_model.pkl"],
            "flame": [demo / "missing-but-checked-later.safetensors", "--flame", demo / "flame.safetensors"],
            "export-ply": [demo / "x.safetensors", "--frame", "0", "--flame", demo / "flame.safetensors"]}[command]
    one_line_error(backend(command, *args, "-o", tmp_path), str(tmp_path), "folder")


@pytest.mark.parametrize("option", [["--smooth", "nan"], ["--smooth", "2"], ["--smooth", "-0.1"],
                                    ["--smooth-group", "jaw=inf"], ["--smooth-group", "jaw=abc"],
                                    ["--smooth-group", "mouth=0.5"]])
def test_smoothing_out_of_range_is_refused_not_clamped(demo, tmp_path, option):
    out = tmp_path / "r.sheap.safetensors"
    one_line_error(reconstruct(demo, out, *option))
    assert not out.exists()


def test_an_image_claiming_60000_by_60000_pixels(demo, tmp_path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    image = tmp_path / "huge.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                      + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    one_line_error(reconstruct(demo, tmp_path / "r.safetensors", footage=image), str(image), "image")


def test_relative_paths_are_read_from_where_the_user_is(demo, tmp_path):
    """The command run from another folder with relative paths: resolved against that folder."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").write_bytes((demo / "astronaut.mp4").read_bytes())
    completed = subprocess.run([sys.executable, "-m", "backend", "reconstruct", "in/clip.mp4", "-o", "r.safetensors",
                                "--flame", str(demo / "flame.safetensors"), "--weights",
                                str(demo / "demo_sheap_model.pt"), "--end", "4"],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "r.safetensors").is_file()


@pytest.fixture()
def long_result(demo, tmp_path) -> Path:
    """A result long enough that `flame` runs for seconds (its vertex array is ~600 MB)."""
    n = 10_000
    rng = np.random.default_rng(0)
    params = {name: (rng.normal(size=(n, width)) * 0.1).astype(np.float32) for name, width in PER_FRAME.items()}
    params["crop_box"][:] = [100, 100, 300, 300]
    metadata = {"footage": "x.mp4", "width": "640", "height": "480", "fps": "30", "frame_count": str(n),
                "model_file": "m.pt", "model_sha256": "0", "flame_sha256": "0", "fov_deg": "14.2539",
                "backend_version": "0", "demo": "true"}
    path = tmp_path / "long.sheap.safetensors"
    write_result(path, Result(np.arange(n), np.ones(n, bool), params, {}, metadata))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_flame_killed_midway_leaves_nothing_a_later_run_keeps(demo, tmp_path, long_result, sig):
    out = tmp_path / "verts.npy"
    process = subprocess.Popen([sys.executable, "-m", "backend", "flame", str(long_result), "--flame",
                                str(demo / "flame.safetensors"), "-o", str(out)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):  # the temporary exists: work under way
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.05)
    process.send_signal(sig)
    process.wait(timeout=60)
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if sig == signal.SIGTERM:
        assert leftovers == [] and not out.exists()
        assert "Traceback" not in process.stderr.read()
        return
    assert len(leftovers) == 1 and str(process.pid) in leftovers[0].name  # recognisable: whose it was
    from sheap_blender.core.atomic_file import remove_orphans

    assert remove_orphans(out) == leftovers and not leftovers[0].exists()  # what the next write does first
