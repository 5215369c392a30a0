"""convert-flame: FLAME's `generic_model.pkl` (+ SHeaP's `eyelids.pt`) -> one `flame.safetensors`.

The safetensors file loads without pickle, torch or scipy (Blender reads it with NumPy alone). It
records the SHA-256 of the source pickle, and `demo="true"` when the pickle was the stand-in.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import N_EYELIDS, FlameModel, load_flame, save_flame


def read_eyelids(path: str | os.PathLike, n_vertices: int) -> np.ndarray:
    """SHeaP's eyelid blendshapes: a tensor (V, 3, 2) saved with `torch.save`, loaded without running code."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "eyelids file not found")
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage makes torch's loader raise almost anything (KeyError, EOFError, ...)
        raise InputError(path, f"not a torch tensor file ({type(exc).__name__}): expected a tensor saved with "
                               "torch.save; anything beyond plain tensors is refused, never run") from None
    expected = (n_vertices, 3, N_EYELIDS)
    if not isinstance(tensor, torch.Tensor):
        raise InputError(path, f"expected a tensor {expected}, found a {type(tensor).__name__}")
    if tuple(tensor.shape) != expected or not tensor.is_floating_point():
        found = f"{tensor.dtype} {tuple(tensor.shape)}"
        raise InputError(path, f"expected a float tensor of shape {expected}, found {found}")
    array = tensor.detach().to(torch.float64).numpy()
    if not np.isfinite(array).all():
        raise InputError(path, "eyelid blendshapes hold NaN or infinite values")
    return array


def convert_flame(pkl_path: str | os.PathLike, eyelids_path: str | os.PathLike | None,
                  out_path: str | os.PathLike) -> FlameModel:
    """Read the pickle (allow-listed) and the optional eyelids, write the safetensors atomically; return the model."""
    model = load_flame(pkl_path)
    if eyelids_path is not None:
        model.eyelid_dirs = read_eyelids(eyelids_path, model.n_vertices)
    save_flame(model, out_path, {"demo": "true" if model.is_demo else "false"})
    return model
