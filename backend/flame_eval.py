"""Evaluate FLAME for every frame of a result, in chunks, into a preallocated (F, V, 3) array."""

from __future__ import annotations

import numpy as np
import torch

from sheap_blender.core.flame_model import FlameModel
from sheap_blender.core.result_format import Result

from .flame import Flame
from .predictor import resolve_device


def evaluate_result(model: FlameModel, result: Result, out: np.ndarray, device: str = "cpu", chunk: int = 256) -> None:
    """Write the posed vertices of each result frame into `out` (F, V, 3)."""
    torch_device = resolve_device(device)
    flame = Flame(model).to(torch_device)
    poses = result.poses()
    p = result.params
    with torch.inference_mode():
        for begin in range(0, result.n_frames, chunk):
            rows = slice(begin, begin + chunk)

            def tensor(array: np.ndarray, rows: slice = rows) -> torch.Tensor:
                return torch.from_numpy(np.ascontiguousarray(array[rows])).to(torch_device)

            verts = flame(tensor(p["shape"]), tensor(p["expr"]), tensor(poses), tensor(p["eyelids"]),
                          tensor(p["cam_trans"]))
            out[rows] = verts.cpu().numpy()
