"""The network's precision: float32, or bfloat16 / float16 where they are faster, checked in millimetres.

`auto` picks bfloat16 on a CPU with native bfloat16 (AVX-512 BF16 or AMX) and on a CUDA device
that supports it, float32 elsewhere. Whenever a reduced precision is used, a self-check runs a
fixed batch of real face crops (scikit-image's public-domain astronaut at several scales and
shifts) through the network at float32 and at the reduced precision, poses the job's FLAME with
both and measures how far the vertices move. Under `auto`, a deviation beyond the limits below
falls back to float32; an explicit `bf16` / `fp16` is kept and only reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame_model import FlameModel
from sheap_blender.core.flame_params import FlameParams

from .crop import crop_image
from .demo_clip import FACE_CENTRE_IN_PORTRAIT
from .flame import Flame
from .predictor import Predictor, exception_reason

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Limits on how far the reduced precision may move FLAME's vertices under `auto` (millimetres):
# the mean a fifth, the worst vertex of the worst crop half of SHeaP's ~1 mm NoW error.
LIMIT_MEAN_MM = 0.2
LIMIT_MAX_MM = 0.5
# the self-check's crops: (box side, shift x, shift y) in portrait pixels around the astronaut's face
CHECK_BOXES = ((320, 0, -25), (270, 0, -25), (370, 0, -25), (320, -25, -25), (320, 25, -25), (320, 0, -50),
               (320, 0, 0), (300, 15, -40))


def native_bf16(device: torch.device) -> bool:
    """The device computes in bfloat16 natively (not emulated through float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # x86 only; elsewhere: float32
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 where it is native, else fp32; fp32/bf16/fp16 as given; anything else is refused."""
    if name not in PRECISIONS:
        raise InputError(None, f"unknown precision {name!r} ({', '.join(PRECISIONS)})")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def check_crops() -> np.ndarray:
    """(8, 3, 224, 224) float32: the astronaut's face at several scales and shifts (the self-check's batch)."""
    from skimage import data

    portrait = data.astronaut()
    cx, cy = FACE_CENTRE_IN_PORTRAIT
    boxes = [np.array([cx + dx - side / 2, cy + dy - side / 2, cx + dx + side / 2, cy + dy + side / 2])
             for side, dx, dy in CHECK_BOXES]
    return np.stack([crop_image(portrait, box) for box in boxes])


def vertices_mm(flame: Flame, predicted: dict[str, np.ndarray]) -> torch.Tensor:
    """Posed FLAME vertices (N, V, 3) in millimetres for the network's per-image outputs."""
    with torch.inference_mode():
        return flame.vertices(FlameParams.from_mapping(predicted)) * 1000.0


def vertex_deviation_mm(reference: torch.Tensor, reduced: torch.Tensor) -> tuple[float, float]:
    """Mean and max distance (mm) between corresponding vertices of two (N, V, 3) batches."""
    distance = torch.linalg.vector_norm(reduced.double() - reference.double(), dim=-1)
    return float(distance.mean()), float(distance.max())


def within_limits(mean_mm: float, max_mm: float) -> bool:
    return mean_mm <= LIMIT_MEAN_MM and max_mm <= LIMIT_MAX_MM


@dataclass(frozen=True)
class PrecisionCheck:
    """What the self-check found: the precision asked for, the one checked and the one used."""

    asked: str  # auto, fp32, bf16 or fp16
    checked: str  # the reduced precision that was measured
    used: str  # fp32 after a fall-back, else `checked`
    mean_mm: float | None  # None: the network failed at the reduced precision
    max_mm: float | None
    crops: int
    demo: bool
    failure: str = ""

    @property
    def fell_back(self) -> bool:
        return self.used != self.checked

    def message(self) -> str:
        """One log line."""
        who = " (demo weights)" if self.demo else ""
        name = NAMES[self.checked]
        if self.mean_mm is None:
            return f"precision {self.used}: the network fails at {name} ({self.failure}); using float32{who}"
        moved = (f"{name} moves the FLAME vertices {self.mean_mm:.3f} mm on average, {self.max_mm:.3f} mm at most "
                 f"vs float32 on {self.crops} face crops{who}")
        if self.fell_back:
            return (f"precision fp32: {moved}, beyond the limits ({LIMIT_MEAN_MM:g} mm mean, {LIMIT_MAX_MM:g} mm "
                    f"max): auto falls back to float32")
        if not within_limits(self.mean_mm, self.max_mm):
            return (f"precision {self.used}: {moved}, beyond the limits ({LIMIT_MEAN_MM:g} mm mean, "
                    f"{LIMIT_MAX_MM:g} mm max): kept because {self.used} was asked for (auto would use float32)")
        return f"precision {self.used}: {moved} (limits {LIMIT_MEAN_MM:g} mm mean, {LIMIT_MAX_MM:g} mm max)"

    def metadata(self) -> dict[str, str]:
        deviation = {"checked": self.checked, "asked": self.asked, "crops": self.crops,
                     "mean_mm": None if self.mean_mm is None else round(self.mean_mm, 5),
                     "max_mm": None if self.max_mm is None else round(self.max_mm, 5),
                     "limit_mean_mm": LIMIT_MEAN_MM, "limit_max_mm": LIMIT_MAX_MM, "fell_back": self.fell_back}
        return {"precision": self.used, "precision_deviation": json.dumps(deviation)}


def load_predictor(path: str | os.PathLike, device: torch.device, precision: str, flame: FlameModel) -> Predictor:
    """Load the archive at the precision asked for (resolving `auto`), self-checked when it is not float32.

    The predictor's `precision` is the one in use, its `precision_check` the check (None at float32).
    """
    asked = precision
    chosen = resolve_precision(asked, device)
    predictor = Predictor(path, device)
    if chosen == "fp32":
        return predictor
    crops = check_crops()
    model = Flame(flame)
    reference = vertices_mm(model, predictor.checked_predict(crops))  # a faulty model: one line, here
    predictor.cast(DTYPES[chosen])
    try:
        reduced = vertices_mm(model, predictor.predict(crops))
        failure, (mean_mm, max_mm) = "", vertex_deviation_mm(reference, reduced)
    except Exception as exc:  # noqa: BLE001 - an archive whose code pins float32 somewhere fails here
        failure, mean_mm, max_mm = exception_reason(exc), None, None
        if asked != "auto":
            raise InputError(Path(path), f"the network fails at {NAMES[chosen]} ({failure}); use fp32") from None
    keep = asked != "auto" or (mean_mm is not None and within_limits(mean_mm, max_mm))
    if not keep:
        predictor = Predictor(path, device)  # reloaded: casting back would keep the reduced precision's rounding
    predictor.precision_check = PrecisionCheck(asked, chosen, chosen if keep else "fp32", mean_mm, max_mm,
                                               len(crops), predictor.is_demo, failure)
    return predictor


def precision_metadata(predictor: Predictor) -> dict[str, str]:
    """The result's `precision` and `precision_deviation` metadata (docs/result-format.md)."""
    check = predictor.precision_check
    return check.metadata() if check is not None else {"precision": predictor.precision,
                                                       "precision_deviation": "null"}


def precision_line(predictor: Predictor, asked: str) -> str:
    """The log line saying which precision the network runs at, and why."""
    if predictor.precision_check is not None:
        return predictor.precision_check.message()
    if asked == "auto":
        return f"precision fp32: no native bfloat16 on this {predictor.device.type} (auto)"
    return "precision fp32"
