"""Read and write the safetensors format with NumPy alone (Blender's Python has no safetensors).

The format: 8 bytes little-endian header length, a JSON header mapping each tensor name to
{dtype, shape, data_offsets} (plus an optional "__metadata__" of strings), then the raw bytes.
"""

from __future__ import annotations

import json
import os
import struct
from math import prod
from pathlib import Path

import numpy as np

from .atomic_file import replacing
from .errors import InputError

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100_000_000


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors (as NumPy arrays) and the string metadata of a safetensors file."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    if len(blob) < 8:
        raise InputError(path, "not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > min(_MAX_HEADER, len(blob) - 8):
        raise InputError(path, "not a safetensors file (bad header length)")
    try:
        header = json.loads(blob[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(path, "not a safetensors file (header is not a mapping)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise InputError(path, "not a safetensors file (its metadata is not a mapping of strings)")
    data = memoryview(blob)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(n) for n in info["shape"])
            start, end = (int(n) for n in info["data_offsets"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InputError(path, f"tensor {name!r} has a malformed header entry") from None
        # sizes in Python integers: a huge shape must not wrap around to a small byte count
        if any(n < 0 for n in shape) or not 0 <= start <= end <= len(data) or end - start != dtype.itemsize * prod(
                shape):
            raise InputError(path, f"tensor {name!r} lies outside the file (truncated?)")
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape).copy()
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the string metadata, reading just the header (cheap enough for a UI redraw)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            if len(head) < 8:
                raise InputError(path, "not a safetensors file (too short)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER:
                raise InputError(path, "not a safetensors file (bad header length)")
            header = json.loads(stream.read(header_len))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "not a safetensors file (header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if metadata is not None and not isinstance(metadata, dict):
        raise InputError(path, "not a safetensors file (its metadata is not a mapping of strings)")
    return {str(k): str(v) for k, v in (metadata or {}).items()}


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> None:
    """Write atomically: a temporary file beside `path`, renamed over it once complete."""
    path = Path(path)
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in _CODES:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} has no safetensors code")
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # keep the data 8-byte aligned
    with replacing(path) as tmp, open(tmp, "xb") as out:
        out.write(struct.pack("<Q", len(header_bytes)))
        out.write(header_bytes)
        for array in arrays:
            out.write(array.tobytes())
