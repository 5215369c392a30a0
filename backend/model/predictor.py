"""The SHeaP predictor: a TorchScript archive mapping 224x224 head crops to FLAME parameters."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.camera import CROP_SIZE
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import file_sha256
from sheap_blender.core.result.result_format import RESERVED_NAMES, RESERVED_PREFIX

MAX_PREDICTION = 1e3  # FLAME coefficients, radians and metres all stay far below this
# output key -> (result name, width); the archive may return more keys, which are carried along
REQUIRED_OUTPUTS = {
    "shape_from_facenet": ("shape", 300),
    "expr": ("expr", 100),
    "torso_pose": ("torso_pose", 3),
    "neck_pose": ("neck_pose", 3),
    "jaw_pose": ("jaw_pose", 3),
    "eye_l_pose": ("eye_l_pose", 3),
    "eye_r_pose": ("eye_r_pose", 3),
    "eyelids": ("eyelids", 2),
    "cam_trans": ("cam_trans", 3),
}


def exception_reason(exc: BaseException) -> str:
    """One line for an exception: TorchScript's own error line (its message starts with boilerplate), or the first."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception):", line)]
    return (raised[-1] if raised else lines[0] if lines else type(exc).__name__)[:200]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when there is one; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda was asked for, but torch sees no CUDA device here")
    if name not in ("cpu", "cuda"):
        raise InputError(None, f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


class Predictor:
    """A loaded SHeaP TorchScript archive, checked against the output contract on load."""

    def __init__(self, path: str | os.PathLike, device: torch.device):
        self.path = Path(path)
        self.device = device
        if not self.path.is_file():
            raise InputError(self.path, "SHeaP weights file not found")
        if self.path.stat().st_size == 0:
            raise InputError(self.path, "SHeaP weights file is empty")
        try:
            self.module = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as exc:  # torch raises RuntimeError/ValueError/zip errors for foreign files
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise InputError(self.path, f"not a TorchScript archive ({reason})") from None
        self.is_demo = bool(getattr(self.module, "sheap_demo", False))
        self.sha256 = file_sha256(self.path)
        self.dtype = torch.float32
        self.precision = "fp32"  # fp32, bf16 or fp16: see backend/model/precision.py
        self.precision_check = None  # backend.precision.PrecisionCheck when a reduced precision was checked
        self._check_contract()

    def cast(self, dtype: torch.dtype) -> None:
        """Run the network at `dtype` from now on (weights cast in place; inputs cast per batch, outputs float32)."""
        self.module.to(dtype)
        self.dtype = dtype
        self.precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]

    def _check_contract(self) -> None:
        try:
            outputs = self._run(torch.zeros(1, 3, CROP_SIZE, CROP_SIZE, device=self.device))
        except InputError:
            raise
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise InputError(self.path, f"not a SHeaP predictor: it fails on a 224x224 crop ({first_line})") from None
        for key, (_, width) in REQUIRED_OUTPUTS.items():
            if key not in outputs:
                raise InputError(self.path, f"not a SHeaP predictor: its output lacks {key!r}")
            if tuple(outputs[key].shape) != (1, width):
                raise InputError(self.path, f"not a SHeaP predictor: {key} has shape {tuple(outputs[key].shape)}")

    def _run(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            outputs = self.module(crops)
        if not isinstance(outputs, dict):
            raise InputError(self.path, f"not a SHeaP predictor: it returns {type(outputs).__name__}, not a dict")
        return outputs

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, 224, 224) float32 in [0, 1] -> result name -> (N, width) float32 arrays."""
        batch = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, self.dtype, non_blocking=True)
        outputs = self._run(batch)
        n = crops.shape[0]
        named = {}
        for key, value in outputs.items():
            if key in REQUIRED_OUTPUTS:  # kept whatever its shape: the caller refuses a wrong one, naming it
                named[REQUIRED_OUTPUTS[key][0]] = value.detach().float().reshape(value.shape[0], -1).cpu().numpy()
                continue
            if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != n:
                continue  # not per-image: nothing to carry per frame
            named[extra_name(key, named)] = value.detach().float().reshape(n, -1).cpu().numpy()
        return named


    def checked_predict(self, crops: np.ndarray, frames: list[int] | None = None) -> dict[str, np.ndarray]:
        """`predict`, refused (one line naming the weights and the `frames`, or the self-check's crops) when the
        model fails, returns the wrong rows, or returns NaN, infinite or absurd values."""
        where = f"frames {frames[0]}..{frames[-1]}" if frames else "face crops"
        try:
            predicted = self.predict(crops)
        except InputError:
            raise
        except Exception as exc:  # a model that raises on real crops: its own line, never a traceback
            raise InputError(self.path, f"the model failed on {where} ({exception_reason(exc)})") from None
        n = len(crops)
        for key, (name, width) in REQUIRED_OUTPUTS.items():
            value = predicted.get(name)
            if value is None or value.shape != (n, width):
                found = "nothing" if value is None else f"shape {value.shape}"
                raise InputError(self.path, f"the model returned {found} for {key} on a batch of {n} crops "
                                            f"(expected ({n}, {width}))")
        for name, value in predicted.items():
            rows = value.reshape(n, -1)
            limit = MAX_PREDICTION if name in RESERVED_NAMES else np.inf
            bad = ~(np.isfinite(rows) & (np.abs(rows) <= limit)).all(axis=1)
            if bad.any():
                what = f"NaN, infinite or absurd values (beyond {MAX_PREDICTION:g})" if limit < np.inf else \
                    "NaN or infinite values"
                rows_bad = np.flatnonzero(bad)
                listed = ", ".join(str(frames[i] if frames else i) for i in rows_bad[:5]) + (
                    ", ..." if len(rows_bad) > 5 else "")
                label = "frames" if frames else "crops"
                raise InputError(self.path, f"the model returned {what} in {name} for {label} {listed}")
        return predicted


def extra_name(key: str, taken: dict) -> str:
    """An unknown output's name in the result: its own, or `model_<key>` where that would collide with a
    name the result uses (e.g. an archive that also returns `shape`, the renamed `shape_from_facenet`)."""
    name = key
    while name in RESERVED_NAMES or name.startswith(RESERVED_PREFIX) or name in taken or name in REQUIRED_OUTPUTS:
        name = f"model_{name}"
    return name
