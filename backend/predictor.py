"""The SHeaP predictor: a TorchScript archive mapping 224x224 head crops to FLAME parameters."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame_model import file_sha256

CROP_SIZE = 224
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
        self._check_contract()

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
        batch = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        outputs = self._run(batch)
        n = crops.shape[0]
        named = {}
        for key, value in outputs.items():
            if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != n:
                continue  # not per-image: nothing to carry per frame
            name = REQUIRED_OUTPUTS[key][0] if key in REQUIRED_OUTPUTS else key
            named[name] = value.detach().float().reshape(n, -1).cpu().numpy()
        return named
