"""FLAME files: the allow-listed pickle reader, the stand-in's structure, conversion to safetensors, bad files."""

from __future__ import annotations

import builtins
import os
import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from backend.model.flame_convert import convert_flame, read_eyelids
from backend.standins.flame import build_demo_flame
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame import pickle_file as flame_pickle
from sheap_blender.core.flame.model import file_sha256, load_flame
from sheap_blender.core.flame.pickle_file import read_flame_pickle

FLAME_ARRAYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "kintree_table", "J")


@pytest.fixture(scope="module")
def converted(demo_flame_files, tmp_path_factory) -> Path:
    pkl, eyelids = demo_flame_files
    out = tmp_path_factory.mktemp("converted") / "flame.safetensors"
    convert_flame(pkl, eyelids, out)
    return out


def test_standin_pickle_reads_with_the_real_sizes(demo_flame_files):
    arrays = read_flame_pickle(demo_flame_files[0])
    expected = build_demo_flame()
    for name in FLAME_ARRAYS:
        assert np.array_equal(arrays[name], expected[name]), name
    assert arrays["f"].dtype == np.uint32 and arrays["v_template"].shape == (5023, 3)
    assert arrays["kintree_table"][0].tolist() == [4294967295, 0, 1, 1, 1]
    assert str(arrays["bs_style"]) == "lbs" and str(arrays["bs_type"]) == "lrotmin"
    assert str(arrays["sheap_demo_standin"]) == "true"


def test_conversion_round_trips_every_array(demo_flame_files, converted):
    pkl, eyelids = demo_flame_files
    source = read_flame_pickle(pkl)
    model = load_flame(converted)
    pairs = {"v_template": model.v_template, "shapedirs": model.shapedirs, "posedirs": model.posedirs,
             "J_regressor": model.j_regressor, "weights": model.weights}
    for name, loaded in pairs.items():
        assert np.array_equal(loaded, source[name].astype(np.float32)), name  # stored as float32, nothing else lost
    assert np.array_equal(model.faces, source["f"].astype(np.int64))
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    assert np.array_equal(model.eyelid_dirs, torch.load(eyelids, weights_only=True).numpy())
    dense = build_demo_flame()["J_regressor"]
    assert np.array_equal(source["J_regressor"], dense) and np.count_nonzero(dense) == 60 + 60 + 6 + 2 * 321
    assert model.source_sha256 == file_sha256(pkl) and model.is_demo
    assert load_flame(pkl).is_demo  # the pickle's marker, before conversion


def test_official_safetensors_reads_the_converted_file(converted):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    official = load_file(converted)
    assert set(official) == {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "parents",
                             "eyelids"}
    model = load_flame(converted)
    assert np.array_equal(official["shapedirs"], model.shapedirs.astype(np.float32))
    assert np.array_equal(official["f"], model.faces)
    with safe_open(converted, framework="numpy") as handle:
        metadata = handle.metadata()
    assert metadata["demo"] == "true" and metadata["source_sha256"] == model.source_sha256


def test_real_flame_conversion_is_not_marked_demo(demo_flame_files, tmp_path):
    """A pickle without the stand-in marker (as the real FLAME) converts with demo="false"."""
    arrays = build_demo_flame()
    plain = {k: arrays[k] for k in FLAME_ARRAYS}
    plain["J_regressor"] = scipy.sparse.csc_matrix(plain["J_regressor"])
    pkl = tmp_path / "generic_model.pkl"
    pkl.write_bytes(pickle.dumps(plain, protocol=4))  # as re-saved by Python 3 without chumpy
    model = convert_flame(pkl, None, tmp_path / "flame.safetensors")
    loaded = load_flame(tmp_path / "flame.safetensors")
    assert not model.is_demo and not loaded.is_demo and loaded.eyelid_dirs is None
    assert np.array_equal(loaded.j_regressor, arrays["J_regressor"].astype(np.float32))


def _globals(blob: bytes) -> set[str]:
    """The globals a pickle names (GLOBAL opcodes; the stand-in is protocol 2, so there is no STACK_GLOBAL)."""
    return {arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}


def test_standin_pickle_has_the_real_files_structure(demo_flame_files):
    blob = demo_flame_files[0].read_bytes()
    ops = list(pickletools.genops(blob))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    assert _globals(blob) == {
        "chumpy.ch Ch", "copy_reg _reconstructor", "__builtin__ object", "__builtin__ set",
        "scipy.sparse.csc csc_matrix", "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert not {op.name for op, _, _ in ops} & {"BINUNICODE", "SHORT_BINUNICODE", "STACK_GLOBAL", "BINBYTES"}
    # Unpickled with the stubs: the chumpy objects and the sparse matrix carry the states chumpy/scipy wrote.
    with open(demo_flame_files[0], "rb") as stream:
        raw = flame_pickle._FlameUnpickler(stream, encoding="latin1").load()
    for name in ("v_template", "shapedirs", "posedirs", "weights"):
        assert isinstance(raw[name], flame_pickle.ChumpyStub), name
        assert raw[name].state["_dirty_vars"] == {"x"} and isinstance(raw[name].state["x"], flame_pickle._ArrayStub)
    assert isinstance(raw["J_regressor"], flame_pickle.SparseStub)
    assert set(raw["J_regressor"].state) == {"data", "indices", "indptr", "_shape", "maxprint"}
    assert isinstance(raw["f"], flame_pickle._ArrayStub) and isinstance(raw["J"], flame_pickle._ArrayStub)


@pytest.mark.parametrize("cls", [scipy.sparse.csc_matrix, scipy.sparse.csr_matrix])
def test_sparse_matrices_densify_like_scipy(tmp_path, cls):
    rng = np.random.default_rng(3)
    n_outer, n_inner = (11, 7) if cls is scipy.sparse.csc_matrix else (7, 11)
    outer = np.sort(rng.integers(0, n_outer, 60))
    inner = rng.integers(0, n_inner, 60)  # 60 entries in 77 cells: some (row, col) repeat, to be summed
    indptr = np.concatenate([[0], np.cumsum(np.bincount(outer, minlength=n_outer))])
    matrix = cls((rng.normal(size=60), inner, indptr), shape=(7, 11))
    assert not matrix.has_canonical_format
    path = tmp_path / "sparse.pkl"
    path.write_bytes(pickle.dumps({"m": matrix}, protocol=4))
    assert np.allclose(read_flame_pickle(path)["m"], matrix.toarray(), rtol=0, atol=1e-12)


class _Runs:
    """Pickles as a call of `func(*args)` (what a malicious pickle does)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _call(module: str, name: str, *args: str | dict) -> bytes:
    """A protocol 2 pickle calling `module.name(*args)`, written opcode by opcode."""
    parts = [b"\x80\x02c", f"{module}\n{name}\n".encode(), b"("]
    for arg in args:
        if isinstance(arg, dict):
            parts.append(b"}")
        else:
            raw = arg.encode()
            parts += [b"X", len(raw).to_bytes(4, "little"), raw]
    parts.append(b"tR.")
    return b"".join(parts)


def _attacks(marker: Path) -> dict[str, bytes]:
    command = f"touch {marker}"
    nested = {"v_template": _Runs(os.system, command), "f": np.zeros((2, 3), np.uint32)}
    return {
        "os.system": pickle.dumps(_Runs(os.system, command), protocol=2),
        "subprocess.Popen": pickle.dumps(_Runs(subprocess.Popen, ["touch", str(marker)]), protocol=4),
        "builtins.eval": pickle.dumps(_Runs(builtins.eval, f"__import__('os').system({command!r})"), protocol=2),
        "builtins.exec": pickle.dumps(_Runs(builtins.exec, f"open({str(marker)!r}, 'w')"), protocol=0),
        "inside a FLAME dict": pickle.dumps(nested, protocol=2),
        "text protocol": f"cos\nsystem\n(S'{command}'\ntR.".encode(),
        "numpy's own runstring": _call("numpy.testing._private.utils", "runstring",
                                       f"__import__('os').system({command!r})", {}),
        "numpy allowed module, other name": _call("numpy", "load", str(marker)),
    }


@pytest.mark.parametrize("attack", [name for name in _attacks(Path("x")) if "numpy allowed" not in name])
def test_attack_payloads_are_live(tmp_path, attack):
    """The payloads really run a command under plain `pickle.loads`: their refusal below means something."""
    marker = tmp_path / "pwned"
    loaded = pickle.loads(_attacks(marker)[attack])
    if isinstance(loaded, subprocess.Popen):
        loaded.wait()
    assert marker.exists()


@pytest.mark.parametrize("attack", list(_attacks(Path("x"))))
def test_code_running_pickles_are_refused_and_never_run(tmp_path, attack):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_attacks(marker)[attack])
    for load in (read_flame_pickle, load_flame, lambda p: convert_flame(p, None, tmp_path / "out.safetensors")):
        with pytest.raises(InputError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "refused to load: the pickle names" in message
        assert "\n" not in message
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_refused_modules_are_never_imported(tmp_path):
    assert "this" not in sys.modules  # importing `this` prints the Zen of Python: a visible side effect
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(b"\x80\x02cthis\ns\nq\x00.")
    with pytest.raises(InputError, match="names this.s, which a FLAME model never contains"):
        read_flame_pickle(path)
    assert "this" not in sys.modules


def _bad_files(demo_pkl: Path) -> dict[str, bytes]:
    blob = demo_pkl.read_bytes()
    return {
        "empty": b"",
        "garbage": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "text": b"not a pickle at all\n",
        "truncated": blob[: len(blob) // 2],
        "truncated header": blob[:40],
        "a list": pickle.dumps([1, 2, 3], protocol=2),
        "a safetensors file named .pkl": b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14,
    }


@pytest.mark.parametrize("kind", list(_bad_files(Path(__file__))))
def test_unreadable_pickles_are_one_line_input_errors(tmp_path, demo_flame_files, kind):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_bad_files(demo_flame_files[0])[kind])
    with pytest.raises(InputError) as info:
        load_flame(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert info.value.path == str(path)


def test_missing_pickle_and_wrong_sizes(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_flame_pickle(tmp_path / "nope.pkl")
    arrays = build_demo_flame()
    small = {k: arrays[k] for k in FLAME_ARRAYS}
    small["v_template"] = small["v_template"][:100]
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(small, protocol=4))
    with pytest.raises(InputError, match="v_template has shape"):
        load_flame(path)


def test_malformed_chumpy_and_sparse_entries(tmp_path):
    path = tmp_path / "generic_model.pkl"
    # A chumpy object whose state has no 'x', and a sparse matrix whose indptr disagrees with its data.
    no_x = b"\x80\x02}q\x00U\x01aq\x01ccopy_reg\n_reconstructor\nq\x02cchumpy.ch\nCh\nq\x03c__builtin__\nobject\n" \
           b"q\x04N\x87q\x05Rq\x06}q\x07U\x01yK\x01sbs."
    path.write_bytes(no_x)
    with pytest.raises(InputError, match="entry 'a' is malformed"):
        read_flame_pickle(path)
    bad = scipy.sparse.csc_matrix(np.eye(3))
    bad.indptr = np.array([0, 1, 2, 7], dtype=np.int32)
    path.write_bytes(pickle.dumps({"J_regressor": bad}, protocol=4))
    with pytest.raises(InputError, match="entry 'J_regressor' is malformed"):
        read_flame_pickle(path)


def test_eyelids_file_checks(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(torch.ones(5023, 3, 2), good)
    assert read_eyelids(good, 5023).shape == (5023, 3, 2)
    wrong = tmp_path / "wrong.pt"
    torch.save(torch.ones(5023, 2), wrong)
    with pytest.raises(InputError, match=r"shape \(5023, 3, 2\)"):
        read_eyelids(wrong, 5023)
    garbage = tmp_path / "garbage.pt"
    rng = np.random.default_rng(4)
    for blob in [b"", b"\x00" * 100, *(bytes(rng.integers(0, 256, 300, dtype=np.uint8)) for _ in range(20))]:
        garbage.write_bytes(blob)
        with pytest.raises(InputError, match="not a torch tensor file"):
            read_eyelids(garbage, 5023)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save(_Runs(os.system, f"touch {marker}"), evil)
    with pytest.raises(InputError):
        read_eyelids(evil, 5023)
    assert not marker.exists()
    with pytest.raises(InputError, match="not found"):
        read_eyelids(tmp_path / "missing.pt", 5023)
