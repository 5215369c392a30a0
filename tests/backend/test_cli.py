"""The backend's command line end to end, as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from backend_command import backend

from sheap_blender.core.result.result_format import PER_FRAME, read_result


@pytest.fixture(scope="module")
def reconstructed(demo, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("out") / "astronaut.sheap.safetensors"
    completed = backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "generic_model.pkl",
                        "--weights", demo / "demo_sheap_model.pt", "--batch-size", "8", "--progress", "json",
                        check=True)
    return out, completed


def test_make_demo_writes_every_stand_in(demo):
    for name in ("generic_model.pkl", "eyelids.pt", "flame.safetensors", "demo_sheap_model.pt", "astronaut.mp4",
                 "astronaut_motion.json"):
        assert (demo / name).stat().st_size > 0, name


def test_reconstruct_end_to_end(demo, reconstructed):
    out, completed = reconstructed
    result = read_result(out)
    motion = json.loads((demo / "astronaut_motion.json").read_text())
    n_frames = len(motion["frames"]) if isinstance(motion, dict) else len(motion)
    assert result.n_frames == n_frames
    assert np.array_equal(result.frame_index, np.arange(n_frames))
    assert result.valid.all()  # the astronaut's face is on every frame
    assert result.is_demo and result.metadata["model_file"] == "demo_sheap_model.pt"
    assert result.width == 640 and result.height == 480 and result.fps == pytest.approx(30)
    assert float(result.metadata["fov_deg"]) == pytest.approx(14.2539)
    for name, width in PER_FRAME.items():
        assert result.params[name].shape == (n_frames, width)
    # one identity per clip by default; expressions follow the frames
    assert np.ptp(result.params["shape"], axis=0).max() == 0
    assert np.ptp(result.params["expr"], axis=0).max() > 1e-3
    assert result.extra["confidence"].shape == (n_frames,)
    # the JSON protocol: progress lines then one done line, nothing else on stdout
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert {e["event"] for e in events} <= {"progress", "log", "done"}
    assert events[-1]["event"] == "done" and events[-1]["frames"] == n_frames and events[-1]["demo"] is True
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["frame"] == n_frames == progress[-1]["total"]
    assert any("demo weights" in e.get("message", "") for e in events)


@pytest.mark.parametrize("frames", [1, 3])
def test_short_footage_one_image_or_three(demo, tmp_path, frames):
    """Footage shorter than the crop smoother's look-ahead: one still image, a three-frame folder."""
    import cv2

    capture = cv2.VideoCapture(str(demo / "astronaut.mp4"))
    images = [capture.read()[1] for _ in range(frames)]
    if frames == 1:
        footage = tmp_path / "still.png"
        cv2.imwrite(str(footage), images[0])
    else:
        footage = tmp_path / "frames"
        footage.mkdir()
        for i, image in enumerate(images):
            cv2.imwrite(str(footage / f"{i:03d}.png"), image)
    out = tmp_path / "short.safetensors"
    backend("reconstruct", footage, "-o", out, "--flame", demo / "flame.safetensors",
            "--weights", demo / "demo_sheap_model.pt", check=True)
    result = read_result(out)
    assert result.n_frames == frames and result.valid.all()


def test_frame_range(demo, tmp_path):
    out = tmp_path / "range.safetensors"
    backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "flame.safetensors",
            "--weights", demo / "demo_sheap_model.pt", "--start", "10", "--end", "25", check=True)
    result = read_result(out)
    assert result.frame_index.tolist() == list(range(10, 25))


def test_flame_command_matches_in_process_evaluation(demo, reconstructed, tmp_path):
    import torch

    from backend.model.flame import Flame
    from sheap_blender.core.flame.model import load_flame

    out, _ = reconstructed
    verts_path = tmp_path / "verts.npy"
    backend("flame", out, "--flame", demo / "flame.safetensors", "-o", verts_path, check=True)
    verts = np.load(verts_path)
    result = read_result(out)
    assert verts.shape == (result.n_frames, 5023, 3) and verts.dtype == np.float32
    model = load_flame(demo / "flame.safetensors")
    p = {k: torch.from_numpy(v[[3]]) for k, v in result.params.items()}
    expected = Flame(model)(p["shape"], p["expr"], torch.from_numpy(result.poses()[[3]]), p["eyelids"],
                            p["cam_trans"])[0].numpy()
    assert np.abs(verts[3] - expected).max() < 1e-6
    assert np.abs(verts[3] - verts[40]).max() > 1e-4  # frames differ


def _bad_inputs(demo: Path, tmp: Path) -> dict[str, tuple[list, str]]:
    """name -> (reconstruct arguments, the file the message must name)."""
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes((demo / "astronaut.mp4").read_bytes()[:2000])
    empty_dir = tmp / "no_images"
    empty_dir.mkdir()
    broken_dir = tmp / "broken_images"
    broken_dir.mkdir()
    import cv2

    frame = np.full((64, 64, 3), 128, np.uint8)
    cv2.imwrite(str(broken_dir / "0001.png"), frame)
    (broken_dir / "0002.png").write_bytes(b"\x89PNG garbage")
    bad_flame = tmp / "flame_bad.pkl"
    bad_flame.write_bytes(b"not a pickle")
    bad_weights = tmp / "weights_bad.pt"
    bad_weights.write_bytes(b"not a torchscript archive")
    clip = demo / "astronaut.mp4"
    flame, weights = demo / "flame.safetensors", demo / "demo_sheap_model.pt"
    return {
        "missing": ([tmp / "nope.mp4", flame, weights], tmp / "nope.mp4"),
        "empty": ([empty, flame, weights], empty),
        "not a video": ([text, flame, weights], text),
        "corrupt": ([corrupt, flame, weights], corrupt),
        "empty folder": ([empty_dir, flame, weights], empty_dir),
        "unreadable image": ([broken_dir, flame, weights], broken_dir / "0002.png"),
        "wrong FLAME": ([clip, bad_flame, weights], bad_flame),
        "FLAME is a result-sized other file": ([clip, weights, weights], weights),
        "wrong weights": ([clip, flame, bad_weights], bad_weights),
        "weights are FLAME": ([clip, flame, flame], flame),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not a video", "corrupt", "empty folder", "unreadable image",
                                  "wrong FLAME", "FLAME is a result-sized other file", "wrong weights",
                                  "weights are FLAME"])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(demo, tmp_path, case):
    (footage, flame, weights), named = _bad_inputs(demo, tmp_path)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    completed = backend("reconstruct", footage, "-o", out_dir / "r.safetensors", "--flame", flame,
                        "--weights", weights)
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in completed.stderr, completed.stderr
    assert str(named) in completed.stderr
    assert list(out_dir.iterdir()) == []


def test_faceless_clip_is_a_clear_error(tmp_path, demo):
    from backend.standins.clip import write_faceless_clip

    clip = tmp_path / "faceless.mp4"
    write_faceless_clip(clip)
    out = tmp_path / "r.safetensors"
    completed = backend("reconstruct", clip, "-o", out, "--flame", demo / "flame.safetensors",
                        "--weights", demo / "demo_sheap_model.pt")
    assert completed.returncode == 2
    assert "no face" in completed.stderr and str(clip) in completed.stderr
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


def test_convert_flame_refuses_a_malicious_pickle(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    completed = backend("convert-flame", bad, "-o", tmp_path / "flame.safetensors")
    assert completed.returncode == 2 and "refused" in completed.stderr and "Traceback" not in completed.stderr
    assert not marker.exists() and not (tmp_path / "flame.safetensors").exists()
