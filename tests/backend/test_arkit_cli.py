"""`python -m backend arkit RESULT --flame FLAME -o TAKE.csv`: a Live Link Face take from a result, as users run it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from backend_command import backend

from sheap_blender.core.arkit.live_link_csv import COLUMNS, read_live_link_csv, timecode
from sheap_blender.core.arkit.solve import take_for_result
from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import read_result


@pytest.fixture(scope="module")
def result_file(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("arkit") / "astronaut.sheap.safetensors"
    backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "generic_model.pkl", "--weights",
            demo / "demo_sheap_model.pt", "--start", "5", "--end", "29", "--batch-size", "8", check=True)
    return out


def test_take_from_a_reconstructed_clip(demo, result_file, tmp_path):
    take_path = tmp_path / "take.csv"
    completed = backend("arkit", result_file, "--flame", demo / "flame.safetensors", "-o", take_path,
                        "--cache", tmp_path / "cache", check=True)
    assert "demo weights" in completed.stdout  # the stand-in FLAME is named as one
    rows = list(csv.reader(take_path.read_text().splitlines()))
    assert tuple(rows[0]) == COLUMNS and len(rows[0]) == 63
    result = read_result(result_file)
    assert len(rows) - 1 == result.n_frames == 24
    assert all(row[1] == "61" for row in rows[1:])
    # footage frames 5..28 at their times, as the app writes timecodes: at 60 fps, with the fraction of a frame
    assert [row[0] for row in rows[1:]] == [timecode(f * 60 / result.fps, 60) for f in range(5, 29)]
    assert rows[1][0] == timecode(5 * 60 / result.fps, 60) and result.fps == 30 and rows[1][0] == "00:00:00:10.000"
    assert all(len(cell.split(".")[1]) == 10 and "e" not in cell for row in rows[1:] for cell in row[2:])
    assert "blinks" not in completed.stderr  # this FLAME file has the eyelid shapes
    # the values are the solve's for the same result and FLAME
    expected = take_for_result(result, load_flame(demo / "flame.safetensors"))
    read = read_live_link_csv(take_path)
    np.testing.assert_allclose(read.seconds(), np.arange(5, 29) / result.fps, atol=1e-5)
    assert np.allclose(read.weights, expected.weights, atol=1e-5)
    assert np.allclose(read.head, expected.head, atol=1e-5)
    assert np.allclose(read.left_eye, expected.left_eye, atol=1e-5)
    assert read.weights.min() >= 0 and read.weights.max() <= 1
    assert list((tmp_path / "cache").glob("arkit-solve-*.safetensors"))  # built once, then cached


def test_a_flame_file_without_eyelid_shapes_says_blinks_cannot_be_carried(demo, result_file, tmp_path):
    take_path = tmp_path / "take.csv"
    # the raw generic_model.pkl has no eyelid shapes; the result has eyelid weights
    assert np.any(read_result(result_file).flame_params().eyelids)
    completed = backend("arkit", result_file, "--flame", demo / "generic_model.pkl", "-o", take_path,
                        "--cache", tmp_path / "cache", check=True)
    warnings = [line for line in completed.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "generic_model.pkl" in warnings[0], completed.stderr
    assert "blinks cannot be carried" in warnings[0] and "--eyelids" in warnings[0]
    assert take_path.is_file()  # the take is still written: the warning says what it lacks


@pytest.mark.parametrize("case", ["missing result", "not a result", "bad flame", "output is a folder"])
def test_bad_input_is_one_line_and_no_file(demo, result_file, tmp_path, case):
    result, flame, output = result_file, demo / "flame.safetensors", tmp_path / "take.csv"
    if case == "missing result":
        result = tmp_path / "nothing.safetensors"
    elif case == "not a result":
        result = demo / "flame.safetensors"
    elif case == "bad flame":
        flame = tmp_path / "flame.safetensors"
        flame.write_bytes(b"\x00" * 64)
    else:
        output = tmp_path / "folder"
        output.mkdir()
    completed = backend("arkit", result, "--flame", flame, "-o", output, "--cache", tmp_path / "cache")
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in completed.stderr
    assert not (tmp_path / "take.csv").exists() and not list(tmp_path.glob(".take.csv*"))
