"""CUDA only: refine Gaussian colours and opacities against the footage with gsplat's 2DGS rasteriser.

Geometry stays bound to the mesh (the binding's positions, axes and scales are not touched): per
view the surfels are posed on that frame's FLAME mesh and rendered through the view's camera
(OpenCV axes: x right, y down, looking along -Z of FLAME from (0, 0, 1)); an L1 loss over the
head's pixels drives colour and opacity logits with Adam. gsplat is imported here only, so CPU
runs never touch it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.special import logit

from sheap_blender.core.gaussians import GaussianBinding, pose_gaussians, scales_3d
from sheap_blender.core.rotation import matrix_to_quaternion

from ..progress import Cancelled
from .views import View

STEPS = 300
LEARNING_RATE = 0.03

# FLAME world -> OpenCV camera: x' = x, y' = -y, z' = 1 - z (the camera at (0, 0, 1) looking toward -Z)
VIEW_MATRIX = np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 1], [0, 0, 0, 1]], dtype=np.float32)


def gsplat_available() -> bool:
    """CUDA is there and gsplat imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, 1e-4, 1 - 1e-4))  # clipped: a saturated start would have no gradient


def _posed(binding: GaussianBinding, faces: np.ndarray, view: View, device: torch.device) -> dict[str, torch.Tensor]:
    centres, axes, scales = pose_gaussians(view.vertices.astype(np.float64), faces, binding)
    scales3 = scales_3d(scales)  # 2DGS ignores the third

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

    return {"means": t(centres), "quats": t(matrix_to_quaternion(axes)), "scales": t(scales3),
            "viewmats": t(VIEW_MATRIX)[None], "Ks": t(view.intrinsics())[None]}


def render(posed: dict[str, torch.Tensor], colours: torch.Tensor, opacities: torch.Tensor, view: View
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (h, w, 3) and alpha (h, w) of the surfels in one view, on a black background."""
    from gsplat import rasterization_2dgs

    width, height = view.size
    out = rasterization_2dgs(means=posed["means"], quats=posed["quats"], scales=posed["scales"],
                             opacities=opacities, colors=colours, viewmats=posed["viewmats"], Ks=posed["Ks"],
                             width=width, height=height)
    return out[0][0, ..., :3], out[1][0, ..., 0]


def refine(binding: GaussianBinding, faces: np.ndarray, views: list[View], device: torch.device,
           steps: int = STEPS, stop: threading.Event | None = None) -> GaussianBinding:
    """A binding with colours and opacities fitted to the views (L1 over each view's head pixels).

    `stop` (a cancel) is looked at every step: raises progress.Cancelled.
    """
    posed = [_posed(binding, faces, view, device) for view in views]
    targets = [torch.as_tensor(view.image, device=device) for view in views]
    masks = [torch.as_tensor(view.head_mask, device=device) for view in views]
    colour_logit = torch.tensor(_logit(binding.colour), dtype=torch.float32, device=device, requires_grad=True)
    opacity_logit = torch.tensor(_logit(binding.opacity), dtype=torch.float32, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([colour_logit, opacity_logit], lr=LEARNING_RATE)
    for _ in range(steps):
        if stop is not None and stop.is_set():
            raise Cancelled()
        optimiser.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=device)
        for p, target, mask, view in zip(posed, targets, masks, views):
            rgb, _ = render(p, torch.sigmoid(colour_logit), torch.sigmoid(opacity_logit), view)
            loss = loss + (rgb - target).abs()[mask].mean()
        (loss / len(views)).backward()
        optimiser.step()
    with torch.no_grad():
        colour = torch.sigmoid(colour_logit).cpu().numpy()
        opacity = torch.sigmoid(opacity_logit).cpu().numpy()
    return replace(binding, colour=colour.astype(np.float32), opacity=opacity.astype(np.float32))


def render_views(binding: GaussianBinding, faces: np.ndarray, views: list[View], device: torch.device
                 ) -> list[np.ndarray]:
    """RGB (h, w, 3) float renders of the binding in each view."""
    colours = torch.as_tensor(binding.colour, device=device)
    opacities = torch.as_tensor(binding.opacity, device=device)
    with torch.no_grad():
        return [render(_posed(binding, faces, view, device), colours, opacities, view)[0].cpu().numpy()
                for view in views]


def write_preview(path: Path, binding: GaussianBinding, faces: np.ndarray, views: list[View],
                  device: torch.device) -> None:
    """footage | Gaussians | overlay for the first view (the most frontal), written atomically as PNG."""
    view = views[0]
    rendered = render_views(binding, faces, [view], device)[0]
    footage = view.image
    overlay = 0.5 * footage + 0.5 * rendered
    strip = np.concatenate([footage, rendered, overlay], axis=1)
    bgr = cv2.cvtColor((np.clip(strip, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        if not cv2.imwrite(str(tmp), bgr):
            raise OSError(f"cannot write {tmp}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
