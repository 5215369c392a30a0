"""Evaluate FLAME for every frame of a result, in chunks, into a preallocated (F, V, 3) array."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from sheap_blender.core.flame.model import FlameModel
from sheap_blender.core.result.result_format import Result

from .flame import Flame
from .predictor import resolve_device


def vertex_chunks(model: FlameModel, result: Result, device: str = "cpu",
                  chunk: int = 256) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, (n, V, 3) float32 posed vertices of those rows), `chunk` rows at a time, in order."""
    torch_device = resolve_device(device)
    flame = Flame(model).to(torch_device)
    params = result.flame_params()
    with torch.inference_mode():
        for begin in range(0, result.n_frames, chunk):
            rows = slice(begin, min(begin + chunk, result.n_frames))
            yield rows, flame.vertices(params.rows(rows)).cpu().numpy()


def evaluate_result(model: FlameModel, result: Result, out: np.ndarray, device: str = "cpu", chunk: int = 256) -> None:
    """Write the posed vertices of each result frame into `out` (F, V, 3)."""
    for rows, verts in vertex_chunks(model, result, device, chunk):
        out[rows] = verts
