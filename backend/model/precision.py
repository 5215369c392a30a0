"""The network's precision: float32, or bfloat16 / float16 where they are faster, checked in millimetres.

`auto` picks bfloat16 on a CPU with native bfloat16 (AVX-512 BF16 or AMX) and on a CUDA device
that supports it, float32 elsewhere. Whenever a reduced precision is used, a self-check runs a
fixed batch of real face crops (three real people: scikit-image's astronaut and cameraman,
matplotlib's Grace Hopper, each cropped by the pipeline's own rule, `faces.crop.box_from_landmarks`,
and by that box moved and scaled a little) through the network at float32 and at the reduced
precision, poses the job's FLAME with both and measures how far the vertices move: as posed
(millimetres), in the head's shape once the two heads are rigidly aligned (millimetres, as the NoW
benchmark measures a reconstruction's error) and in the image (the vertices projected into the
224 px crop, pixels). Under `auto`, a shape or image deviation beyond the limits below falls back
to float32; an explicit `bf16` / `fp16` is kept and only reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from sheap_blender.core.camera import CROP_SIZE, project_to_crop
from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import FlameModel
from sheap_blender.core.flame.params import FlameParams

from ..faces.crop import box_from_landmarks, crop_image
from ..standins.clip import PORTRAITS
from .flame import Flame
from .predictor import Predictor, exception_reason

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Limits on how far the reduced precision may move the head under `auto`: the mean over all
# vertices of all crops, and the worst vertex of the worst crop. Its shape (rigidly aligned, as
# NoW measures): a fifth and a half of SHeaP's ~1 mm NoW error. Its image (the vertices projected
# into the crop): the same numbers in crop pixels, about the same distances at the head (one crop
# pixel is ~1.1 mm there, the crops framing the face as the pipeline does: CHECK_CROPS). The raw 3D
# figure is reported, not limited: most of it is the head sliding along the line of sight, which
# neither NoW nor the footage can see.
LIMIT_MEAN_MM = 0.2
LIMIT_MAX_MM = 0.5
LIMIT_MEAN_PX = 0.2
LIMIT_MAX_PX = 0.5
# The self-check's crops: (person, shift x, shift y, scale) of the box that the pipeline's crop rule
# (`box_from_landmarks`) makes from that person's face landmarks; shifts in fractions of the box's
# side. The unmoved boxes are the pipeline's; the others are moved and scaled within what the tests
# allow the pipeline's crops of a moving face (5% of the box in position, 10% in size). Three real
# people (`standins.clip.PORTRAITS`): the astronaut; Grace Hopper, an older woman in a studio
# portrait; the cameraman, grey, in a three-quarter view, a small face upscaled as the pipeline does.
CHECK_CROPS = (("astronaut", 0.0, 0.0, 1.0), ("astronaut", 0.03, -0.02, 1.04), ("astronaut", -0.03, 0.02, 0.96),
               ("hopper", 0.0, 0.0, 1.0), ("hopper", -0.03, -0.02, 1.04), ("hopper", 0.03, 0.02, 0.96),
               ("cameraman", 0.0, 0.0, 1.0), ("cameraman", 0.02, 0.03, 1.03))


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


def pipeline_box(person: str) -> np.ndarray:
    """The box the pipeline crops around `person`'s face in its portrait (x0, y0, x1, y1, portrait pixels):
    the crop rule applied to the extent of the face's 68 landmarks (`Portrait.face_centre`, `face_px`, as the
    face finder finds them on the portrait)."""
    portrait = PORTRAITS[person]
    centre, half = np.array(portrait.face_centre), portrait.face_px / 2
    return box_from_landmarks(np.stack([centre - half, centre + half]))  # only the extent matters to the rule


def check_boxes() -> list[tuple[str, np.ndarray]]:
    """(person, box) of each self-check crop (CHECK_CROPS), portrait pixels."""
    boxes = []
    for person, dx, dy, scale in CHECK_CROPS:
        box = pipeline_box(person)
        side = box[2] - box[0]
        centre = (box[:2] + box[2:]) / 2 + side * np.array([dx, dy])
        half = side * scale / 2
        boxes.append((person, np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])))
    return boxes


def check_crops() -> np.ndarray:
    """(8, 3, 224, 224) float32: three real people's faces as the pipeline crops them (the self-check's batch)."""
    images = {person: PORTRAITS[person].image() for person in {person for person, *_ in CHECK_CROPS}}
    return np.stack([crop_image(images[person], box) for person, box in check_boxes()])


def posed_vertices(flame: Flame, predicted: dict[str, np.ndarray]) -> np.ndarray:
    """Posed FLAME vertices (N, V, 3) in metres, float64, for the network's per-image outputs."""
    with torch.inference_mode():
        return flame.vertices(FlameParams.from_mapping(predicted)).double().cpu().numpy()


def rigidly_aligned(reference: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """`moved` (N, V, 3) rotated and shifted onto `reference` per item, by least squares (Kabsch)."""
    ref_centre, moved_centre = reference.mean(axis=1, keepdims=True), moved.mean(axis=1, keepdims=True)
    covariance = np.swapaxes(moved - moved_centre, 1, 2) @ (reference - ref_centre)  # (N, 3, 3)
    u, _, vt = np.linalg.svd(covariance)
    flip = np.sign(np.linalg.det(u @ vt))  # a rotation, never a mirror
    u[:, :, 2] *= flip[:, None]
    return (moved - moved_centre) @ (u @ vt) + ref_centre


@dataclass(frozen=True)
class Deviation:
    """How far the reduced precision moves the posed head from float32's: mean and max, three ways."""

    mean_mm: float  # vertices as posed, 3D
    max_mm: float
    shape_mean_mm: float  # after a rigid alignment per crop: the head's shape and expression
    shape_max_mm: float
    image_mean_px: float  # the vertices projected into the 224 px crop
    image_max_px: float

    @classmethod
    def between(cls, reference: np.ndarray, reduced: np.ndarray) -> Deviation:
        """From two (N, V, 3) batches of posed vertices in metres."""
        posed = np.linalg.norm(reduced - reference, axis=-1) * 1000.0
        shape = np.linalg.norm(rigidly_aligned(reference, reduced) - reference, axis=-1) * 1000.0
        image = np.linalg.norm(project_to_crop(reduced) - project_to_crop(reference), axis=-1)
        return cls(*(float(f(d)) for d in (posed, shape, image) for f in (np.mean, np.max)))

    def within_limits(self) -> bool:
        return (self.shape_mean_mm <= LIMIT_MEAN_MM and self.shape_max_mm <= LIMIT_MAX_MM
                and self.image_mean_px <= LIMIT_MEAN_PX and self.image_max_px <= LIMIT_MAX_PX)

    def describe(self) -> str:
        return (f"the FLAME vertices {self.mean_mm:.3f} mm on average, {self.max_mm:.3f} mm at most; the head's "
                f"shape {self.shape_mean_mm:.3f} / {self.shape_max_mm:.3f} mm (rigidly aligned, as NoW measures) "
                f"and its image {self.image_mean_px:.3f} / {self.image_max_px:.3f} px of the {CROP_SIZE} px crop "
                f"(mean / max)")

    def as_json(self) -> dict[str, float]:
        return {name: round(value, 5) for name, value in asdict(self).items()}


def limits_text() -> str:
    return f"limits {LIMIT_MEAN_MM:g} / {LIMIT_MAX_MM:g} mm and {LIMIT_MEAN_PX:g} / {LIMIT_MAX_PX:g} px"


@dataclass(frozen=True)
class PrecisionCheck:
    """What the self-check found: the precision asked for, the one checked and the one used."""

    asked: str  # auto, fp32, bf16 or fp16
    checked: str  # the reduced precision that was measured
    used: str  # fp32 after a fall-back, else `checked`
    deviation: Deviation | None  # None: the network failed at the reduced precision
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
        if self.deviation is None:
            return f"precision {self.used}: the network fails at {name} ({self.failure}); using float32{who}"
        moved = f"{name} moves {self.deviation.describe()} vs float32 on {self.crops} face crops{who}"
        if self.fell_back:
            return f"precision fp32: {moved}: beyond the {limits_text()}, auto falls back to float32"
        if not self.deviation.within_limits():
            return (f"precision {self.used}: {moved}: beyond the {limits_text()}, kept because {self.used} was "
                    f"asked for (auto would use float32)")
        return f"precision {self.used}: {moved}; {limits_text()}"

    def metadata(self) -> dict[str, str]:
        figures = self.deviation.as_json() if self.deviation is not None else dict.fromkeys(
            field.name for field in fields(Deviation))
        deviation = {"checked": self.checked, "asked": self.asked, "crops": self.crops, **figures,
                     "limit_mean_mm": LIMIT_MEAN_MM, "limit_max_mm": LIMIT_MAX_MM,
                     "limit_mean_px": LIMIT_MEAN_PX, "limit_max_px": LIMIT_MAX_PX, "fell_back": self.fell_back}
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
    reference = posed_vertices(model, predictor.checked_predict(crops))  # a faulty model: one line, here
    predictor.cast(DTYPES[chosen])
    try:
        failure, deviation = "", Deviation.between(reference, posed_vertices(model, predictor.predict(crops)))
    except Exception as exc:  # noqa: BLE001 - an archive whose code pins float32 somewhere fails here
        failure, deviation = exception_reason(exc), None
        if asked != "auto":
            raise InputError(Path(path), f"the network fails at {NAMES[chosen]} ({failure}); use fp32") from None
    keep = asked != "auto" or (deviation is not None and deviation.within_limits())
    if not keep:
        predictor = Predictor(path, device)  # reloaded: casting back would keep the reduced precision's rounding
    predictor.precision_check = PrecisionCheck(asked, chosen, chosen if keep else "fp32", deviation, len(crops),
                                               predictor.is_demo, failure)
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
