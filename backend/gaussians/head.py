"""`reconstruct --gaussians`: 2D Gaussians bound to the head's triangles, coloured from the footage.

Surfels are spread by area over the triangles some camera can see (on the clip's identity, neutral
expression and pose), coloured from views spread over the clip and the head's yaw
(`colours`), and on CUDA refined photometrically with gsplat (`refine`), which
also writes a side-by-side preview next to the result. The binding goes into the result's tensors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import FlameModel
from sheap_blender.core.flame.params import FlameParams
from sheap_blender.core.gaussians import GaussianBinding, sample_binding
from sheap_blender.core.result.result_format import Result

from ..footage.reader import Footage
from ..model.flame import Flame
from ..progress import Cancelled
from .colours import project_colours, visible_head_faces
from .views import View, choose_rows, load_views

DEFAULT_COUNT = 60_000
MAX_COUNT = 2_000_000
N_VIEWS = 8


def check_count(count: int) -> int:
    """The Gaussian count, or an InputError when it is out of range."""
    if not 1 <= int(count) <= MAX_COUNT:
        raise InputError(None, f"Gaussian count must be between 1 and {MAX_COUNT}, not {count}")
    return int(count)


def preview_path(result_path: Path) -> Path:
    """`clip.sheap.safetensors` -> `clip.sheap.gaussians.png` (beside it)."""
    return result_path.with_name(result_path.stem + ".gaussians.png")


def neutral_mesh(model: FlameModel, result: Result) -> np.ndarray:
    """(V, 3) the clip's identity with no expression, pose, eyelids or translation."""
    with torch.inference_mode():
        verts = Flame(model).vertices(FlameParams.zeros(1, shape=result.flame_params().shape[0]))
    return verts[0].numpy().astype(np.float64)


def build_gaussians(model: FlameModel, result: Result, footage: Footage, count: int = DEFAULT_COUNT,
                    device: torch.device | str = "cpu", n_views: int = N_VIEWS, seed: int = 0
                    ) -> tuple[GaussianBinding, list[View]]:
    """Sample the surfels and colour them from `n_views` frames; returns the binding and those views."""
    faces = np.asarray(model.faces)
    neutral = neutral_mesh(model, result)
    binding = sample_binding(neutral, faces, check_count(count), seed=seed,
                             face_mask=visible_head_faces(neutral, faces))
    views = load_views(model, result, footage, choose_rows(result, n_views), device)
    binding.colour, binding.opacity, _ = project_colours(binding, faces, views)
    return binding, views


def add_gaussians(model: FlameModel, result: Result, footage: Footage, output: Path, count: int,
                  device: torch.device, log: Callable[[str], None] = lambda message: None,
                  stop: threading.Event | None = None) -> GaussianBinding:
    """Build the Gaussians into `result.extra`; on CUDA refine them and write the preview image.

    A set `stop` (a cancel) raises progress.Cancelled between the steps and during refinement.
    """

    def check_stop() -> None:
        if stop is not None and stop.is_set():
            raise Cancelled()

    binding, views = build_gaussians(model, result, footage, count, device)
    check_stop()
    seen = float((binding.opacity > 0.5).mean())
    log(f"Gaussians: {binding.count} coloured from {len(views)} frames ({seen:.0%} seen)")
    if device.type == "cuda":
        from .refine import gsplat_available, refine, write_preview

        if gsplat_available():
            binding = refine(binding, np.asarray(model.faces), views, device, stop=stop)
            check_stop()
            preview = preview_path(output)
            write_preview(preview, binding, np.asarray(model.faces), views, device)
            log(f"Gaussians refined on the GPU; preview {preview}")
        else:
            log("gsplat is not installed: Gaussian colours are the projected ones (no refinement, no preview)")
    result.extra.update(binding.to_tensors())
    return binding
