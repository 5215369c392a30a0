"""The per-frame result file: what the backend writes and the extension reads.

A safetensors file (docs/result-format.md is the user-facing description). Row i of every
per-frame tensor is footage frame `frame_index[i]`. Tensors the model returned beyond the known
ones are carried along unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..flame.params import WIDTHS as FLAME_WIDTHS
from ..flame.params import FlameParams
from ..safetensors_file import read_safetensors, write_safetensors

FORMAT_VERSION = "sheap-result-1"
# name -> width of one frame's row: the crop box, then the FLAME parameters (core/flame/params.py)
PER_FRAME = {
    "crop_box": 4,  # x0, y0, x1, y1 in footage pixels
    **FLAME_WIDTHS,
}
# every name the result itself uses: a model output of the same name is carried as `model_<name>`
RESERVED_NAMES = frozenset({*PER_FRAME, "frame_index", "valid", "confidence", "outlier", "segment", "identified"})
RESERVED_PREFIX = "gaussian_"  # the Gaussians' tensors (docs/result-format.md)
# temporal smoothing groups (reconstruct --smooth-group, the JSON protocol, the panel) -> the tensors they cover
SMOOTHING_GROUPS = {
    "expression": ("expr",),
    "eyelids": ("eyelids",),
    "jaw": ("jaw_pose",),
    "head": ("torso_pose", "neck_pose"),
    "eyes": ("eye_l_pose", "eye_r_pose"),
    "translation": ("cam_trans",),
}
MAX_FRAME = 2**31 - 1  # frame numbers beyond this are not footage frames
MAX_SIDE = 65_535  # pixels
MAX_FPS = 1_000.0
METADATA_KEYS = (
    "format", "footage", "width", "height", "fps", "frame_count", "model_file", "model_sha256",
    "flame_sha256", "fov_deg", "backend_version", "demo",
)


@dataclass
class Result:
    frame_index: np.ndarray  # (F,) int64, footage frame of each row
    valid: np.ndarray  # (F,) bool: a face was found on that frame (others are interpolated)
    params: dict[str, np.ndarray]  # PER_FRAME keys -> (F, width) float32
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # any other tensor, carried along
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def width(self) -> int:
        return int(self.metadata["width"])

    @property
    def height(self) -> int:
        return int(self.metadata["height"])

    @property
    def fps(self) -> float:
        return float(self.metadata["fps"])

    @property
    def fov_deg(self) -> float:
        return float(self.metadata["fov_deg"])

    @property
    def is_demo(self) -> bool:
        return self.metadata.get("demo") == "true"

    def flame_params(self) -> FlameParams:
        """Every frame's FLAME parameters, typed."""
        return FlameParams.from_mapping(self.params)

    def poses(self) -> np.ndarray:
        """(F, 5, 3) axis-angle rotations of FLAME joints 0..4."""
        return self.flame_params().poses()


def write_result(path: str | os.PathLike, result: Result) -> None:
    """Write atomically (temporary name, then rename)."""
    tensors = {name: np.asarray(value) for name, value in result.extra.items()}
    tensors.update({name: np.asarray(value, dtype=np.float32) for name, value in result.params.items()})
    tensors["frame_index"] = np.asarray(result.frame_index, dtype=np.int64)
    tensors["valid"] = np.asarray(result.valid, dtype=np.uint8)
    metadata = {"format": FORMAT_VERSION, **result.metadata}
    write_safetensors(path, tensors, metadata)


def read_result(path: str | os.PathLike) -> Result:
    """Read and check a result file; every inconsistency is an InputError naming the file."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT_VERSION:
        found = metadata.get("format")
        raise InputError(path, f"not a SHeaP result file (format {found!r}, expected {FORMAT_VERSION!r})")
    missing = [k for k in ("frame_index", "valid", *PER_FRAME) if k not in tensors]
    missing += [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        raise InputError(path, f"result file lacks {', '.join(missing)}")
    frame_index = tensors.pop("frame_index")
    n = frame_index.shape[0] if frame_index.ndim == 1 else 0
    if n == 0:
        raise InputError(path, "result file has no frames")
    if frame_index.dtype.kind not in "iu":
        raise InputError(path, f"frame_index must hold whole frame numbers, not {frame_index.dtype}")
    frame_index = frame_index.astype(np.int64)
    if frame_index.min() < 0 or frame_index.max() > MAX_FRAME:
        raise InputError(path, f"frame_index holds frame numbers outside 0..{MAX_FRAME}")
    if n > 1 and not np.all(np.diff(frame_index) > 0):
        raise InputError(path, "frame_index is not strictly increasing (frames unsorted or repeated)")
    try:
        frame_count = int(metadata["frame_count"])
        width, height, fps = int(metadata["width"]), int(metadata["height"]), float(metadata["fps"])
        fov = float(metadata["fov_deg"])
    except ValueError:
        raise InputError(path, "result file has malformed metadata (frame_count/width/height/fps/fov_deg)") from None
    if frame_count != n:
        raise InputError(path, f"result file says {frame_count} frames but its tensors hold {n}")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < fps <= MAX_FPS and 0 < fov < 180):
        raise InputError(path, f"result file has an impossible footage size {width}x{height}, fps {fps:g} or "
                               f"field of view {fov:g}")
    valid = tensors.pop("valid")
    if valid.shape != (n,):
        raise InputError(path, f"valid has shape {valid.shape}, expected ({n},)")
    for name, array in tensors.items():  # every other tensor: finite numbers, as the known ones below
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InputError(path, f"{name} holds NaN or infinite values")
    params = {}
    for name, width_ in PER_FRAME.items():
        array = tensors.pop(name)
        if array.shape != (n, width_):
            raise InputError(path, f"{name} has shape {array.shape}, expected ({n}, {width_})")
        if not np.all(np.isfinite(array)):
            raise InputError(path, f"{name} holds NaN or infinite values")
        params[name] = array.astype(np.float32)
    return Result(frame_index, valid.astype(bool), params, tensors, metadata)
