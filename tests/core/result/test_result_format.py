"""The result file and the NumPy safetensors reader/writer, against the official library."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.numpy

from sheap_blender.core.errors import InputError
from sheap_blender.core.result.result_format import PER_FRAME, Result, read_result, write_result
from sheap_blender.core.safetensors_file import read_safetensors, write_safetensors


def make_result(n: int = 6) -> Result:
    rng = np.random.default_rng(1)
    params = {name: rng.normal(size=(n, width)).astype(np.float32) for name, width in PER_FRAME.items()}
    metadata = {"footage": "clip.mp4", "width": "640", "height": "480", "fps": "29.97002997", "frame_count": str(n),
                "model_file": "m.pt", "model_sha256": "ab", "flame_sha256": "cd", "fov_deg": "14.2539",
                "backend_version": "0", "demo": "true"}
    return Result(np.arange(n) + 10, rng.random(n) > 0.3, params, {"extra_out": np.ones((n, 2), np.float32)}, metadata)


def test_result_round_trip_and_library_compatibility(tmp_path):
    path = tmp_path / "r.safetensors"
    original = make_result()
    write_result(path, original)
    back = read_result(path)
    assert np.array_equal(back.frame_index, original.frame_index)
    assert np.array_equal(back.valid, original.valid)
    for name in PER_FRAME:
        assert np.array_equal(back.params[name], original.params[name])
    assert np.array_equal(back.extra["extra_out"], original.extra["extra_out"])
    assert back.is_demo and back.fps == pytest.approx(30 / 1.001)
    # the official library reads what the NumPy writer wrote, and vice versa
    official = safetensors.numpy.load_file(path)
    assert np.array_equal(official["expr"], original.params["expr"])
    safetensors.numpy.save_file({"a": np.arange(5, dtype=np.int16)}, tmp_path / "lib.safetensors", {"k": "v"})
    tensors, meta = read_safetensors(tmp_path / "lib.safetensors")
    assert tensors["a"].tolist() == [0, 1, 2, 3, 4] and meta == {"k": "v"}


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "r.safetensors"
    write_result(path, make_result())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="truncated"):
        read_result(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"\xff" * 64])
def test_foreign_file_is_refused(tmp_path, content):
    path = tmp_path / "r.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a safetensors file"):
        read_result(path)


def test_other_safetensors_is_not_a_result(tmp_path):
    path = tmp_path / "weights.safetensors"
    write_safetensors(path, {"w": np.zeros(3, np.float32)})
    with pytest.raises(InputError, match="not a SHeaP result"):
        read_result(path)


def test_frame_count_disagreeing_with_tensors(tmp_path):
    result = make_result()
    result.metadata["frame_count"] = "7"
    path = tmp_path / "r.safetensors"
    write_result(path, result)
    with pytest.raises(InputError, match="says 7 frames but its tensors hold 6"):
        read_result(path)


def test_wrong_tensor_width(tmp_path):
    result = make_result()
    result.params["expr"] = result.params["expr"][:, :50]
    path = tmp_path / "r.safetensors"
    write_result(path, result)
    with pytest.raises(InputError, match=r"expr has shape \(6, 50\)"):
        read_result(path)


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "r.safetensors"
    with pytest.raises(TypeError):
        write_safetensors(path, {"bad": np.array(["text"])})
    assert list(tmp_path.iterdir()) == []


def _write_raw(path, header: dict, data: bytes = b"") -> None:
    import json
    import struct

    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


@pytest.mark.parametrize("change, problem", [
    (lambda r: r.metadata.update(fps="inf"), "impossible footage"),
    (lambda r: r.metadata.update(fps="1e9"), "impossible footage"),
    (lambda r: r.metadata.update(width="99999999"), "impossible footage"),
    (lambda r: r.metadata.update(fov_deg="nan"), "impossible footage"),
    (lambda r: setattr(r, "frame_index", np.array([0, 1, 2, 2, 3, 4])), "not strictly increasing"),
    (lambda r: setattr(r, "frame_index", np.array([5, 4, 3, 2, 1, 0])), "not strictly increasing"),
    (lambda r: setattr(r, "frame_index", np.array([-(2**62), 1, 2, 3, 4, 5])), "outside 0.."),
    (lambda r: setattr(r, "frame_index", np.array([-2, -1, 0, 1, 2, 3])), "outside 0.."),
    (lambda r: r.extra.update(confidence=np.array([np.nan] * 6, np.float32)), "confidence holds NaN"),
])
def test_impossible_results_are_refused_in_one_line(tmp_path, change, problem):
    result = make_result()
    change(result)
    path = tmp_path / "r.safetensors"
    write_result(path, result)
    with pytest.raises(InputError, match=problem) as info:
        read_result(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_float_frame_index_is_refused(tmp_path):
    result = make_result()
    path = tmp_path / "r.safetensors"
    write_result(path, result)
    tensors, metadata = read_safetensors(path)
    tensors["frame_index"] = np.array([0, 1, np.nan, 3, 4, 5])
    write_safetensors(path, tensors, metadata)
    with pytest.raises(InputError, match="whole frame numbers"):
        read_result(path)


def test_metadata_that_is_a_list_and_a_shape_that_overflows(tmp_path):
    path = tmp_path / "list.safetensors"
    _write_raw(path, {"__metadata__": ["a", "b"], "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
               b"\0" * 4)
    with pytest.raises(InputError, match="metadata is not a mapping"):
        read_result(path)
    path = tmp_path / "huge.safetensors"
    # 2**32 * 2**32 elements: a 64-bit product wraps to 0 and would pass for an empty tensor
    _write_raw(path, {"x": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}})
    with pytest.raises(InputError, match="outside the file"):
        read_safetensors(path)
