"""Read FLAME's `generic_model.pkl` with an allow-listed unpickler: NumPy and the standard library only.

The file is a Python 2 pickle whose arrays are partly chumpy objects and whose joint regressor is a
scipy sparse matrix (old module path `scipy.sparse.csc`). Neither package is needed here. Every
global the pickle may name is replaced by a stub that only records its arguments and pickled state:
chumpy's `Ch`, scipy's sparse matrices, and NumPy's own array/dtype/scalar reconstruction too, since
NumPy's real reconstructors crash the interpreter on corrupt input. Arrays are rebuilt afterwards
from validated bytes. Any other global is refused before it is looked up: no pickle can import or
run anything.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import numpy as np

from ..errors import InputError

DEMO_MARKER = "sheap_demo_standin"  # set to "true" in the project's own stand-in pickle
_DTYPE_CODE = re.compile(r"(b1|[iu][1248]|f[248]|c(8|16)|[SU][0-9]{1,6})")


class _Stub:
    """A pickled object reduced to the arguments it was created with and the state it was given."""

    args: tuple = ()  # class defaults: NEWOBJ creates instances without calling __init__
    state: object = None

    def __init__(self, *args: object):
        self.args = args
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class ChumpyStub(_Stub):
    """Stands in for `chumpy.ch.Ch`: the array is its state's 'x'."""


class SparseStub(_Stub):
    """Stands in for `scipy.sparse.csc_matrix`: state data, indices, indptr (over columns), _shape."""

    compressed_axis = 1


class CsrStub(SparseStub):
    """Stands in for `scipy.sparse.csr_matrix` (indptr runs over rows)."""

    compressed_axis = 0


class _NdarrayName(_Stub):
    """What the pickle's `numpy.ndarray` resolves to: only ever an argument of `_reconstruct`."""


class _DtypeStub(_Stub):
    """`numpy.dtype(code, align, copy)` with state (version, byte order, ...)."""


class _ArrayStub(_Stub):
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`; state (version, shape, dtype, fortran, data)."""


class _ScalarStub(_Stub):
    """`numpy.core.multiarray.scalar(dtype, data)`."""


def _reconstructor(cls: type, base: type, state: object) -> object:
    """`copy_reg._reconstructor`, for the stub classes on base `object` only."""
    if not (isinstance(cls, type) and issubclass(cls, _Stub) and base is object and state is None):
        raise pickle.UnpicklingError("unexpected copy_reg._reconstructor arguments")
    return cls()


_ALLOWED: dict[str, object] = {
    "numpy.core.multiarray._reconstruct": _ArrayStub,
    "numpy._core.multiarray._reconstruct": _ArrayStub,
    "numpy.core.multiarray.scalar": _ScalarStub,
    "numpy._core.multiarray.scalar": _ScalarStub,
    "numpy.ndarray": _NdarrayName,
    "numpy.dtype": _DtypeStub,
    "copy_reg._reconstructor": _reconstructor,
    "copyreg._reconstructor": _reconstructor,
    "__builtin__.object": object,
    "builtins.object": object,
    "__builtin__.set": set,  # a chumpy object's state holds its `_dirty_vars` set
    "builtins.set": set,
    "chumpy.ch.Ch": ChumpyStub,
    "scipy.sparse.csc.csc_matrix": SparseStub,
    "scipy.sparse._csc.csc_matrix": SparseStub,
    "scipy.sparse.csr.csr_matrix": CsrStub,
    "scipy.sparse._csr.csr_matrix": CsrStub,
}


class _Refused(Exception):
    """A global outside the allow-list (turned into an InputError naming the file)."""


class _FlameUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals, from the table above; never imports a module."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[f"{module}.{name}"]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _raw(value: object) -> bytes:
    """Array bytes: a Python 2 `str` arrives as latin-1 text, a Python 3 pickle's as bytes."""
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ValueError(f"array data is a {type(value).__name__}")


def _dtype(stub: object) -> np.dtype:
    """A plain numeric or string dtype from its pickled code and byte order; anything else is refused."""
    if not isinstance(stub, _DtypeStub) or not stub.args:
        raise ValueError("array without a dtype")
    code = _text(stub.args[0])
    if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
        raise ValueError(f"unsupported array type {code!r}")
    dtype = np.dtype(code)
    order = _text(stub.state[1]) if isinstance(stub.state, tuple) and len(stub.state) > 1 else "|"
    return dtype.newbyteorder(order) if order in ("<", ">") else dtype


def _ndarray(stub: _ArrayStub) -> np.ndarray:
    """The array a pickled ndarray describes, its byte count checked against its shape before use."""
    if len(stub.args) < 1 or stub.args[0] is not _NdarrayName or not isinstance(stub.state, tuple):
        raise ValueError("malformed array")
    if len(stub.state) != 5:
        raise ValueError("malformed array state")
    _, shape, dtype_stub, fortran, data = stub.state
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and 0 <= n < 2**31 for n in shape):
        raise ValueError(f"bad array shape {shape!r}")
    dtype = _dtype(dtype_stub)
    raw = _raw(data)
    count = 1
    for n in shape:
        count *= n
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"array data holds {len(raw)} bytes, its shape {shape} needs {count * dtype.itemsize}")
    flat = np.frombuffer(raw, dtype=dtype)
    return flat.reshape(shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="), order="C")


def _state_dict(stub: _Stub) -> dict:
    """The stub's state as a dict with str keys (a (dict, slots) pair is merged)."""
    state = stub.state
    if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, (dict, type(None))) for s in state):
        state = {**(state[0] or {}), **(state[1] or {})}
    if not isinstance(state, dict):
        raise ValueError(f"its state is a {type(state).__name__}, not a dict")
    return {_text(k): v for k, v in state.items()}


def _densify(stub: SparseStub) -> np.ndarray:
    """A compressed sparse matrix's stored state as a dense float array (duplicates summed)."""
    state = _state_dict(stub)
    shape = state.get("_shape", state.get("shape"))
    if not isinstance(shape, tuple) or len(shape) != 2 or not all(isinstance(n, int) and 0 <= n < 2**20 for n in shape):
        raise ValueError(f"bad sparse matrix shape {shape!r}")
    rows, cols = shape
    arrays = {}
    for key in ("data", "indices", "indptr"):
        if not isinstance(state.get(key), _ArrayStub):
            raise ValueError(f"sparse matrix without its {key} array")
        arrays[key] = _ndarray(state[key]).ravel()
    if arrays["data"].dtype.kind not in "biuf" or arrays["indices"].dtype.kind not in "iu" \
            or arrays["indptr"].dtype.kind not in "iu":
        raise ValueError("sparse matrix arrays of the wrong types")
    data = arrays["data"].astype(np.float64)
    indices, indptr = arrays["indices"].astype(np.int64), arrays["indptr"].astype(np.int64)
    n_outer, n_inner = (cols, rows) if stub.compressed_axis == 1 else (rows, cols)
    if (indptr.shape != (n_outer + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] != data.size or indices.size != data.size
            or (indices.size and (indices.min() < 0 or indices.max() >= n_inner))):
        raise ValueError("inconsistent sparse matrix")
    outer = np.repeat(np.arange(n_outer), np.diff(indptr))
    dense = np.zeros((rows, cols), dtype=np.float64)
    if stub.compressed_axis == 1:
        np.add.at(dense, (indices, outer), data)
    else:
        np.add.at(dense, (outer, indices), data)
    return dense


def _to_array(value: object, depth: int = 0) -> np.ndarray | None:
    """An entry of the pickled dict as a NumPy array; None for entries that are not array data."""
    if depth > 4:
        raise ValueError("nested too deeply")
    if isinstance(value, ChumpyStub):
        state = _state_dict(value)
        if "x" not in state:
            raise ValueError("a chumpy object without its data 'x'")
        array = _to_array(state["x"], depth + 1)
        if array is None:
            raise ValueError("a chumpy object whose 'x' is not an array")
        return array
    if isinstance(value, SparseStub):
        return _densify(value)
    if isinstance(value, _ArrayStub):
        return _ndarray(value)
    if isinstance(value, _ScalarStub):
        if len(value.args) != 2:
            raise ValueError("malformed scalar")
        dtype = _dtype(value.args[0])
        raw = _raw(value.args[1])
        if len(raw) != dtype.itemsize:
            raise ValueError("malformed scalar")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(())
    if isinstance(value, (str, bytes)):
        return np.array(_text(value))
    if isinstance(value, (bool, int, float)) and not (isinstance(value, int) and abs(value) >= 2**63):
        return np.array(value)
    return None


def read_flame_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a FLAME pickle (chumpy data unwrapped, J_regressor dense); strings as 0-d arrays.

    String entries such as `bs_style` come back as 0-d str arrays; so does the project's stand-in
    marker `sheap_demo_standin` ("true"), which `flame_model` turns into `FlameModel.is_demo`.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()  # in memory: a corrupt length field then cannot make the reader allocate it
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    try:
        loaded = _FlameUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except _Refused as refused:
        raise InputError(path, f"refused to load: the pickle names {refused}, which a FLAME model never contains"
                         ) from None
    except Exception as exc:  # truncated, corrupt or not a pickle at all: any unpickling failure
        raise InputError(path, f"not a readable FLAME pickle ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise InputError(path, f"not a FLAME model: the pickle holds a {type(loaded).__name__}, not a dict")
    arrays: dict[str, np.ndarray] = {}
    for key, value in loaded.items():
        name = _text(key) if isinstance(key, (str, bytes)) else str(key)
        try:
            array = _to_array(value)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as exc:
            raise InputError(path, f"not a FLAME model: entry {name!r} is malformed ({exc})") from None
        if array is not None:
            arrays[name] = array
    return arrays
