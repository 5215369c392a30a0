"""The network's precision (`reconstruct --precision`, the request's "precision"): the self-check in
millimetres, auto's choice and its fall-back to float32, as users run it (the real backend)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_command import backend

from backend.model import precision
from backend.model.precision import (
    CHECK_CROPS,
    LIMIT_MAX_MM,
    LIMIT_MAX_PX,
    LIMIT_MEAN_MM,
    LIMIT_MEAN_PX,
    Deviation,
    check_boxes,
    check_crops,
    load_predictor,
    native_bf16,
    pipeline_box,
    precision_line,
    precision_metadata,
    resolve_precision,
)
from backend.model.predictor import REQUIRED_OUTPUTS, Predictor
from backend.standins.clip import PORTRAITS
from backend.standins.predictor import DemoSheap, ViTB16
from sheap_blender.core.errors import InputError
from sheap_blender.core.result.result_format import read_result

NATIVE_BF16 = native_bf16(torch.device("cpu"))
MOVED = re.compile(r"(bfloat16|float16) moves the FLAME vertices ([0-9.]+) mm on average, ([0-9.]+) mm at most")


class _CoarseUnderBf16(torch.nn.Module):
    """Features passed through (h + 256) - 256: exact to 3e-5 in float32, rounded to steps of 2 in bfloat16."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.inner(x) + 256.0) - 256.0


class _PinsFloat32(torch.nn.Module):
    """An archive whose code computes in float32 whatever the weights are: it fails at any other precision."""

    def __init__(self):
        super().__init__()
        self.inner = DemoSheap()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner(x.float())


def _script(module: torch.nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


@pytest.fixture(scope="module")
def coarse_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = DemoSheap()
    model.features = _CoarseUnderBf16(model.features)
    return _script(model, tmp_path_factory.mktemp("coarse") / "coarse_bf16.pt")


def _run(demo: Path, weights: Path, out: Path, *extra: str):
    completed = backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "flame.safetensors",
                        "--weights", weights, "--end", "12", "--device", "cpu", "--progress", "json", *extra)
    events = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    logs = [e["message"] for e in events if e["event"] == "log"]
    return completed, logs


def _deviation(metadata: dict[str, str]) -> Deviation:
    """The self-check's figures as the result records them."""
    recorded = json.loads(metadata["precision_deviation"])
    return Deviation(**{name: recorded[name] for name in Deviation.__dataclass_fields__})


def _moved(logs: list[str]) -> tuple[str, float, float]:
    found = [MOVED.search(line) for line in logs if MOVED.search(line)]
    assert len(found) == 1, logs
    return found[0].group(1), float(found[0].group(2)), float(found[0].group(3))


# --- auto's choice on every machine: the CPU's capability faked (the subprocess tests above and below
# exercise whichever branch the machine running them has; these exercise both, in-process)

CPU = torch.device("cpu")


def _fake_native_bf16(monkeypatch, native: bool) -> None:
    """The capability probe `resolve_precision` asks, answered as a CPU with (or without) native bfloat16."""
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)


def _same_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)


def test_auto_with_native_bf16_falls_back_beyond_the_limits(monkeypatch, coarse_weights, demo_flame_model):
    _fake_native_bf16(monkeypatch, True)
    predictor = load_predictor(coarse_weights, CPU, "auto", demo_flame_model)
    check = predictor.precision_check
    assert (check.asked, check.checked, check.used) == ("auto", "bf16", "fp32") and check.fell_back
    assert check.crops == len(CHECK_CROPS) and not check.deviation.within_limits()
    assert predictor.precision == "fp32" and predictor.dtype == torch.float32
    line = precision_line(predictor, "auto")
    assert line.startswith("precision fp32: bfloat16 moves the FLAME vertices ") and line.endswith(
        "auto falls back to float32"), line
    metadata = precision_metadata(predictor)
    recorded = json.loads(metadata["precision_deviation"])
    assert metadata["precision"] == "fp32" and recorded["fell_back"] and recorded["asked"] == "auto"
    # float32 for real: the archive was reloaded, not cast back (bfloat16's rounding would stay)
    crops = check_crops()
    assert _same_outputs(predictor.predict(crops), Predictor(coarse_weights, CPU).predict(crops))


def test_auto_with_native_bf16_keeps_it_within_the_limits(monkeypatch, demo, demo_flame_model):
    _fake_native_bf16(monkeypatch, True)
    weights = demo / "demo_sheap_model.pt"
    predictor = load_predictor(weights, CPU, "auto", demo_flame_model)
    check = predictor.precision_check
    assert (check.asked, check.checked, check.used) == ("auto", "bf16", "bf16") and not check.fell_back
    assert check.deviation.within_limits() and check.deviation.mean_mm > 0
    assert predictor.precision == "bf16" and predictor.dtype == torch.bfloat16
    line = precision_line(predictor, "auto")
    assert line.startswith("precision bf16: bfloat16 moves ") and "(demo weights)" in line, line
    assert precision_metadata(predictor)["precision"] == "bf16"
    crops = check_crops()
    assert not _same_outputs(predictor.predict(crops), Predictor(weights, CPU).predict(crops))  # bf16 ran


def test_auto_with_native_bf16_and_an_archive_that_fails_at_it(monkeypatch, demo_flame_model, tmp_path):
    _fake_native_bf16(monkeypatch, True)
    predictor = load_predictor(_script(_PinsFloat32(), tmp_path / "pinned.pt"), CPU, "auto", demo_flame_model)
    check = predictor.precision_check
    assert check.deviation is None and check.used == "fp32" and predictor.precision == "fp32"
    assert "fails at bfloat16" in precision_line(predictor, "auto") and "using float32" in check.message()


def test_auto_without_native_bf16_is_float32_unchecked(monkeypatch, coarse_weights, demo_flame_model):
    _fake_native_bf16(monkeypatch, False)
    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    predictor = load_predictor(coarse_weights, CPU, "auto", demo_flame_model)
    assert predictor.precision == "fp32" and predictor.precision_check is None  # no check: nothing was tried
    assert precision_line(predictor, "auto") == "precision fp32: no native bfloat16 on this cpu (auto)"
    assert precision_metadata(predictor) == {"precision": "fp32", "precision_deviation": "null"}


def test_the_check_crops_are_the_pipelines_crops():
    """The self-check's unmoved boxes are what the pipeline crops on each portrait: the crop rule on the
    landmarks the face finder finds there (within 2% of the box in position and size), about 1.9 x the
    face's extent (the face as large in the crop as the network sees it in a reconstruction)."""
    from backend.faces.crop import box_from_landmarks
    from backend.people.tracker import FaceTracker

    people = {person for person, *_ in CHECK_CROPS}
    assert len(people) >= 3 and len(CHECK_CROPS) == 8
    for person in people:
        with FaceTracker() as tracker:
            tracked = tracker.track(PORTRAITS[person].image()) + tracker.flush()
        assert tracked[0].detection is not None, person
        found = box_from_landmarks(tracked[0].detection.landmarks68)
        box = pipeline_box(person)
        side = box[2] - box[0]
        assert side == pytest.approx(1.9 * PORTRAITS[person].face_px)
        assert np.abs(found - box).max() < 0.02 * side, (person, found, box)
    for (person, dx, dy, scale), (named, box) in zip(CHECK_CROPS, check_boxes()):
        base = pipeline_box(person)
        side = base[2] - base[0]
        assert named == person and abs(dx) <= 0.05 and abs(dy) <= 0.05 and abs(scale - 1) <= 0.1
        assert box[2] - box[0] == pytest.approx(scale * side)
    crops = check_crops()
    assert crops.shape == (len(CHECK_CROPS), 3, 224, 224) and crops.dtype == np.float32
    assert 0.1 < crops.mean() < 0.9 and all(crop.std() > 0.05 for crop in crops)  # pictures, not padding


def test_bf16_reports_the_vertex_deviation_in_mm(demo, tmp_path):
    out32, out16 = tmp_path / "fp32.safetensors", tmp_path / "bf16.safetensors"
    done32, logs32 = _run(demo, demo / "demo_sheap_model.pt", out32, "--precision", "fp32")
    done16, logs16 = _run(demo, demo / "demo_sheap_model.pt", out16, "--precision", "bf16")
    assert done32.returncode == 0 and done16.returncode == 0, done16.stderr[-2000:]
    assert any(line.endswith("; precision fp32") for line in logs32) and not any(MOVED.search(x) for x in logs32)
    name, mean_mm, max_mm = _moved(logs16)
    line = next(line for line in logs16 if MOVED.search(line))
    assert name == "bfloat16" and "; precision bf16: " in line and "(demo weights)" in line
    assert 0 < mean_mm <= max_mm
    r32, r16 = read_result(out32), read_result(out16)
    assert r32.metadata["precision"] == "fp32" and r32.metadata["precision_deviation"] == "null"
    assert r16.metadata["precision"] == "bf16"
    deviation = json.loads(r16.metadata["precision_deviation"])
    assert deviation["asked"] == "bf16" and deviation["checked"] == "bf16" and not deviation["fell_back"]
    assert deviation["mean_mm"] == pytest.approx(mean_mm, abs=1e-3) and deviation["crops"] >= 4
    # bf16 really ran: the parameters differ from float32's, by a bfloat16-sized amount
    diff = np.abs(r16.params["expr"] - r32.params["expr"]).max()
    assert 1e-4 < diff < 0.1 * np.abs(r32.params["expr"]).max()


def test_auto_falls_back_to_float32_when_bf16_moves_the_head_too_far(demo, coarse_weights, tmp_path):
    auto, ref = tmp_path / "auto.safetensors", tmp_path / "fp32.safetensors"
    done, logs = _run(demo, coarse_weights, auto)  # --precision auto is the default
    assert done.returncode == 0, done.stderr[-2000:]
    assert _run(demo, coarse_weights, ref, "--precision", "fp32")[0].returncode == 0
    result = read_result(auto)
    assert result.metadata["precision"] == "fp32"
    if NATIVE_BF16:
        assert _moved(logs)[0] == "bfloat16"
        assert not _deviation(result.metadata).within_limits()
        fallback = [line for line in logs if "auto falls back to float32" in line]
        assert len(fallback) == 1 and "; precision fp32: " in fallback[0], logs
        deviation = json.loads(result.metadata["precision_deviation"])
        assert deviation["fell_back"] and deviation["checked"] == "bf16" and deviation["asked"] == "auto"
    else:  # no native bfloat16 here: auto never tries it
        assert any(line.endswith("; precision fp32: no native bfloat16 on this cpu (auto)") for line in logs)
    # float32 for real: the same numbers as asking for float32 outright (the archive was reloaded, not cast back)
    assert np.array_equal(result.params["expr"], read_result(ref).params["expr"])


def test_explicit_bf16_is_kept_and_reported_even_beyond_the_limits(demo, coarse_weights, tmp_path):
    out = tmp_path / "bf16.safetensors"
    done, logs = _run(demo, coarse_weights, out, "--precision", "bf16")
    assert done.returncode == 0, done.stderr[-2000:]
    _moved(logs)
    assert any("beyond the limits" in line and "kept because bf16 was asked for" in line for line in logs), logs
    metadata = read_result(out).metadata
    assert metadata["precision"] == "bf16" and not _deviation(metadata).within_limits()


def test_auto_keeps_bf16_within_the_limits(demo, tmp_path):
    out = tmp_path / "auto.safetensors"
    done, logs = _run(demo, demo / "demo_sheap_model.pt", out)
    assert done.returncode == 0, done.stderr[-2000:]
    metadata = read_result(out).metadata
    if NATIVE_BF16:
        _moved(logs)
        assert _deviation(metadata).within_limits(), logs  # the small stand-in moves the head by hundredths of a mm
        assert metadata["precision"] == "bf16" and not json.loads(metadata["precision_deviation"])["fell_back"]
    else:
        assert metadata["precision"] == "fp32"
        assert any(line.endswith("; precision fp32: no native bfloat16 on this cpu (auto)") for line in logs)


def test_an_archive_that_fails_at_bf16(demo, tmp_path):
    weights = _script(_PinsFloat32(), tmp_path / "pinned.pt")
    out = tmp_path / "out.safetensors"
    completed, _ = _run(demo, weights, out, "--precision", "bf16")
    assert completed.returncode == 2
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(weights) in errors[0] and "bfloat16" in errors[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr and not out.exists()
    done, logs = _run(demo, weights, out)  # auto: float32 (after saying why, where bfloat16 was tried)
    assert done.returncode == 0 and read_result(out).metadata["precision"] == "fp32"
    if NATIVE_BF16:
        assert any("fails at bfloat16" in line and "using float32" in line for line in logs), logs


def test_unknown_precision_is_refused(demo, tmp_path):
    completed, _ = _run(demo, demo / "demo_sheap_model.pt", tmp_path / "x.safetensors", "--precision", "fp8")
    assert completed.returncode == 2 and "fp8" in completed.stderr
    with pytest.raises(InputError, match="unknown precision 'int8'"):
        resolve_precision("int8", torch.device("cpu"))


def test_limits():
    inside = Deviation(9.0, 9.0, LIMIT_MEAN_MM, LIMIT_MAX_MM, LIMIT_MEAN_PX, LIMIT_MAX_PX)
    assert inside.within_limits()  # the raw 3D figure is reported, never limited
    for field, limit in (("shape_mean_mm", LIMIT_MEAN_MM), ("shape_max_mm", LIMIT_MAX_MM),
                         ("image_mean_px", LIMIT_MEAN_PX), ("image_max_px", LIMIT_MAX_PX)):
        assert not dataclasses.replace(inside, **{field: limit * 1.01}).within_limits(), field
    assert LIMIT_MEAN_MM < LIMIT_MAX_MM < 1.0  # well under SHeaP's ~1 mm NoW error


def _head(rng: np.random.Generator) -> np.ndarray:
    """(1, 500, 3) points the size of a head at the origin of SHeaP's camera space, metres."""
    return rng.normal(scale=(0.07, 0.1, 0.08), size=(1, 500, 3))


def test_deviation_separates_shape_from_placement():
    rng = np.random.default_rng(0)
    head = _head(rng)
    # the same head turned 2 degrees and moved 3 mm toward the camera: no change of shape
    angle = np.radians(2.0)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = Deviation.between(head, head @ turn.T + (0, 0, 0.003))
    assert moved.shape_max_mm < 1e-6 and moved.mean_mm > 1.0 and moved.image_mean_px > 1.0
    # moved 1 mm along the line of sight only: 1 mm in 3D, a tiny change of scale in the image
    along = Deviation.between(head, head + (0, 0, 0.001))
    assert along.mean_mm == pytest.approx(1.0) and along.shape_max_mm < 1e-6 and along.image_mean_px < 0.15
    # moved 1 mm sideways: ~0.9 crop px (a crop pixel is ~1.1 mm at the head, 1 m from the camera)
    sideways = Deviation.between(head, head + (0.001, 0, 0))
    assert sideways.image_mean_px == pytest.approx(0.896, abs=0.03) and sideways.shape_max_mm < 1e-6
    # one region of the head reshaped (a jaw 1 mm lower): shape deviation, mostly kept by the alignment
    reshaped = head.copy()
    jaw = reshaped[0, :, 1] < -0.1
    reshaped[0, jaw, 1] -= 0.001
    changed = Deviation.between(head, reshaped)
    assert 0.5 < changed.shape_max_mm <= 1.0 + 1e-9 and changed.shape_mean_mm > 0.05
    # a mirror image is not a rotation: the alignment never flips the head
    mirrored = Deviation.between(head, head * (-1, 1, 1))
    assert mirrored.shape_mean_mm > 10


def test_release_sized_architecture_scripts_and_meets_the_contract(tmp_path):
    """The full-size stand-in's architecture, at a small width (the 350 MB archive is for benchmarks only)."""
    torch.manual_seed(0)
    path = _script(DemoSheap(ViTB16(dim=64, depth=2, heads=4, out=96), 96), tmp_path / "small_vit.pt")
    predictor = Predictor(path, torch.device("cpu"))
    assert predictor.is_demo  # a stand-in, never taken for the real weights
    crops = np.random.default_rng(0).random((3, 3, 224, 224), dtype=np.float32)
    reference = predictor.predict(crops)
    predictor.cast(torch.bfloat16)
    reduced = predictor.predict(crops)
    for key, (name, width) in REQUIRED_OUTPUTS.items():
        assert reduced[name].shape == (3, width) and reduced[name].dtype == np.float32, key
        assert np.abs(reduced[name] - reference[name]).max() < 0.1 * max(np.abs(reference[name]).max(), 1e-3), key



def _serve_events(requests: list[dict], until: int) -> list[dict]:
    """Send requests to `python -m backend serve`, return its events until `until` closing events came."""
    import queue
    import subprocess
    import sys
    import threading

    from backend_command import REPO

    process = subprocess.Popen([sys.executable, "-m", "backend", "serve"], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    events, closed = [], 0
    try:
        for request in requests:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            while True:
                event = json.loads(lines.get(timeout=300))
                events.append(event)
                if event["event"] in ("done", "error", "cancelled", "pong"):
                    closed += 1
                    break
        assert closed == until
    finally:
        process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        process.stdin.flush()
        process.wait(timeout=30)
    return events


def test_serve_takes_the_precision_and_checks_it(demo, tmp_path):
    base = {"cmd": "reconstruct", "footage": str(demo / "astronaut.mp4"), "flame": str(demo / "flame.safetensors"),
            "weights": str(demo / "demo_sheap_model.pt"), "device": "cpu", "end": 8}
    events = _serve_events([{**base, "id": 1, "precision": "bf16", "output": str(tmp_path / "a.safetensors")},
                            {**base, "id": 2, "precision": "fp32", "output": str(tmp_path / "b.safetensors")},
                            {**base, "id": 3, "precision": "fp8", "output": str(tmp_path / "c.safetensors")},
                            {"cmd": "ping"}], until=4)
    closing = [e for e in events if e["event"] in ("done", "error", "pong")]
    assert [e["event"] for e in closing] == ["done", "done", "error", "pong"], closing
    first_logs = [e["message"] for e in events if e["event"] == "log" and e.get("id") == 1]
    assert _moved(first_logs)[0] == "bfloat16"
    assert any(e["message"].endswith("; precision fp32") for e in events if e["event"] == "log" and e.get("id") == 2)
    assert read_result(tmp_path / "a.safetensors").metadata["precision"] == "bf16"
    assert read_result(tmp_path / "b.safetensors").metadata["precision"] == "fp32"  # the warm cache keys on it
    assert "precision" in closing[2]["message"] and "fp8" in closing[2]["message"]
    assert not (tmp_path / "c.safetensors").exists()
