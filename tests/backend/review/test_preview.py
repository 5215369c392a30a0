"""`python -m backend preview`: the review video's frames against the result's projection, the marks on
frames without a face, and bad input (one line, exit 2, nothing left behind)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from backend_command import backend

from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import read_result, write_result

ROWS = 24
NO_FACE = (8, 9, 10)


@pytest.fixture(scope="module")
def case(demo, tmp_path_factory) -> dict[str, Path]:
    """A demo reconstruction of the astronaut's frames 3..26 with three rows marked as without a face,
    and its posed vertices from `python -m backend flame` (the reference the drawing must match)."""
    out = tmp_path_factory.mktemp("preview")
    made = out / "made.sheap.safetensors"
    backend("reconstruct", demo / "astronaut.mp4", "-o", made, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--start", "3", "--end", str(3 + ROWS), "--device", "cpu", check=True)
    result = read_result(made)
    result.valid[list(NO_FACE)] = False
    path = out / "clip.sheap.safetensors"
    write_result(path, result)
    verts = out / "verts.npy"
    backend("flame", path, "--flame", demo / "flame.safetensors", "-o", verts, check=True)
    return {"result": path, "verts": verts, "flame": demo / "flame.safetensors", "footage": demo / "astronaut.mp4"}


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


def silhouette(verts: np.ndarray, faces: np.ndarray, box: np.ndarray, fov: float, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: every triangle filled where docs/result-format.md's projection puts it."""
    f = 112 / np.tan(np.radians(fov) / 2)
    depth = 1 - verts[:, 2]
    u = 112 + f * verts[:, 0] / depth
    v = 112 - f * verts[:, 1] / depth
    x0, y0, x1, y1 = box
    pixels = np.stack([x0 + u * (x1 - x0) / 224, y0 + v * (y1 - y0) / 224], axis=1)
    mask = np.zeros(size[::-1], dtype=np.uint8)
    # pixel centres at i + 0.5: fillPoly's integer grid is the centres, so shift by half a pixel
    polygons = np.round((pixels[faces] - 0.5) * 16).astype(np.int32)
    for polygon in polygons:  # one at a time: fillPoly given them all would fill overlaps even-odd
        cv2.fillConvexPoly(mask, polygon, 1, cv2.LINE_8, 4)
    return mask.astype(bool)


def footage_frames(path: Path, first: int, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, first)
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(count)]
    capture.release()
    return frames


def border_redness(frame: np.ndarray) -> float:
    strip = np.concatenate([frame[:, -3:].reshape(-1, 3), frame[-3:].reshape(-1, 3)]).astype(float)
    return float(np.mean((strip[:, 0] > 170) & (strip[:, 1] < 100) & (strip[:, 2] < 100)))


def test_the_video_draws_the_head_where_the_result_projects_it(case, tmp_path):
    out = tmp_path / "review.mp4"
    done = backend("preview", case["result"], "--flame", case["flame"], "-o", out, "--opacity", "1", check=True)
    assert f"{ROWS} frames, {len(NO_FACE)} without a face" in done.stdout
    frames, fps = read_video(out)
    result = read_result(case["result"])
    assert len(frames) == ROWS and fps == pytest.approx(result.fps, abs=0.01)
    assert not list(tmp_path.glob(".*")), "no temporary file is left"
    verts = np.load(case["verts"])
    model = load_flame(case["flame"])
    footage = footage_frames(case["footage"], 3, ROWS)
    for row in range(ROWS):
        expected = silhouette(verts[row], model.faces, result.params["crop_box"][row].astype(np.float64),
                              result.fov_deg, (result.width, result.height))
        drawn = np.abs(frames[row].astype(int) - footage[row].astype(int)).sum(axis=-1) > 30
        drawn = cv2.morphologyEx(drawn.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        drawn[:60, :200] = False  # the frame number
        drawn[:, :8] = drawn[:, -8:] = drawn[:8] = drawn[-8:] = False  # the no-face border
        overlap = (drawn & expected).sum() / (drawn | expected).sum()
        assert expected.sum() > 3000 and overlap > 0.95, (row, overlap)
        assert (border_redness(frames[row]) > 0.8) == (row in NO_FACE), row
    # the frame number: white text top left, not in the footage there
    label = frames[0][5:40, 5:150].astype(int)
    assert ((label > 170).all(axis=-1)).sum() > 30


def test_wireframe_draws_the_visible_edges(case, tmp_path):
    out = tmp_path / "wire.avi"
    backend("preview", case["result"], "--flame", case["flame"], "-o", out, "--style", "wireframe", "--opacity", "1",
            check=True)
    frames, _ = read_video(out)
    result = read_result(case["result"])
    verts = np.load(case["verts"])
    model = load_flame(case["flame"])
    footage = footage_frames(case["footage"], 3, ROWS)
    row = 15
    expected = silhouette(verts[row], model.faces, result.params["crop_box"][row].astype(np.float64), result.fov_deg,
                          (result.width, result.height))
    drawn = np.abs(frames[row].astype(int) - footage[row].astype(int)).sum(axis=-1) > 60
    drawn[:60, :200] = False
    near = cv2.dilate(expected.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert (drawn & ~near).sum() < 0.02 * drawn.sum(), "lines only on the head"
    assert (drawn & expected).sum() > 0.3 * expected.sum(), "the head is covered by its edges"


def test_footage_that_moved_is_one_line(case, tmp_path):
    result = read_result(case["result"])
    result.metadata["footage"] = str(tmp_path / "gone" / "astronaut.mp4")
    moved = tmp_path / "moved.sheap.safetensors"
    write_result(moved, result)
    out = tmp_path / "review.mp4"
    done = backend("preview", moved, "--flame", case["flame"], "-o", out)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "gone/astronaut.mp4" in lines[0] and "not found" in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.sheap.safetensors"]


@pytest.mark.parametrize("what", ["result", "flame", "folder", "suffix"])
def test_bad_input_exits_2_and_writes_nothing(case, tmp_path, what):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    result, flame, out = case["result"], case["flame"], tmp_path / "review.mp4"
    if what == "result":
        result = junk
    elif what == "flame":
        flame = junk
    elif what == "folder":
        out = tmp_path / "missing" / "review.mp4"
    else:
        out = tmp_path / "review.gif"
    done = backend("preview", result, "--flame", flame, "-o", out)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.safetensors"]
