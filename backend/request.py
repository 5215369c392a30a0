"""A `serve` reconstruct request, checked field by field before any work starts.

Every field has a type and a range; anything else is a `BadRequest` with one line naming the
field, so a malformed request is answered at once and the warm backend stays ready for the next.
Paths are made absolute against the server's working folder where they are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from sheap_blender.core.result.face_choice import face_point
from sheap_blender.core.result.result_format import SMOOTHING_GROUPS

from .gaussians.head import DEFAULT_COUNT, MAX_COUNT
from .model.precision import PRECISIONS

DEVICES = ("auto", "cpu", "cuda")
MAX_FRAME = 2**31 - 1  # far beyond any clip; anything larger is a mistake, not a frame number
MAX_BATCH = 1024


class BadRequest(ValueError):
    """A request field of the wrong type or out of range (one line)."""


@dataclass
class ReconstructRequest:
    footage: Path
    output: Path
    flame: Path
    weights: Path
    device: str = "auto"
    precision: str = "auto"  # auto, fp32, bf16 or fp16 (backend/model/precision.py)
    start: int = 0
    end: int | None = None
    batch_size: int = 16
    per_frame_shape: bool = False
    smooth: float = 0.0
    smooth_groups: dict[str, float] = field(default_factory=dict)
    gaussians: bool = False
    gaussian_count: int = DEFAULT_COUNT
    face: tuple[float, float] | None = None
    people: str | int | None = None  # "all" (a result per person), a person's number, or None (one person)
    people_file: Path | None = None  # with a person's number: the people file listing them (no search again)


def _people(request: dict) -> str | int | None:
    value = request.get("people")
    if value is None:
        return None
    if value != "all" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BadRequest(f"people must be \"all\", a person's number (1, 2, ...) or null, not {value!r}"[:160])
    if request.get("face") is not None:
        raise BadRequest("people and face both say whom to follow: give one of them")
    return value


def _path(request: dict, key: str) -> Path:
    if key not in request:
        raise BadRequest(f"request lacks {key!r}")
    value = request[key]
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise BadRequest(f"{key} must be a non-empty path string")
    return Path(value).expanduser().absolute()


def _int(request: dict, key: str, default: int | None, low: int, high: int, allow_none: bool = False) -> int | None:
    value = request.get(key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise BadRequest(f"{key} must be a whole number, not {value!r}"[:160])
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}, not {value!r}"[:160])
    return int(value)


def _bool(request: dict, key: str, default: bool) -> bool:
    value = request.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false, not {value!r}"[:160])
    return value


def strength(value: object, name: str) -> float:
    """A smoothing strength: a finite number from 0 to 1 (refused, never clamped)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise BadRequest(f"{name} must be a number from 0 to 1, not {value!r}"[:160])
    return float(value)


def _face(request: dict) -> tuple[float, float] | None:
    value = request.get("face")
    if value is None:
        return None
    try:
        if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
            raise ValueError  # JSON numbers only: "0.3,0.4" or ["0.3", "0.4"] is the client's mistake
        return face_point(value)
    except ValueError:
        message = f"face must be [x, y] with fractions of the frame from 0 to 1, or null, not {value!r}"
        raise BadRequest(message[:160]) from None


def parse_reconstruct(request: dict) -> ReconstructRequest:
    """Check every field of a reconstruct request; BadRequest names the first one that is wrong."""
    device = request.get("device", "auto")
    if device not in DEVICES:
        raise BadRequest(f"device must be one of {', '.join(DEVICES)}, not {device!r}"[:160])
    precision = request.get("precision", "auto")
    if precision not in PRECISIONS:
        raise BadRequest(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"[:160])
    groups = request.get("smooth_groups") or {}
    if not isinstance(groups, dict):
        raise BadRequest("smooth_groups must be an object of group: strength")
    unknown = sorted(set(groups) - set(SMOOTHING_GROUPS))
    if unknown:
        raise BadRequest(f"unknown smoothing group(s) {', '.join(unknown)}; known: {', '.join(SMOOTHING_GROUPS)}"[:200])
    parsed = ReconstructRequest(
        footage=_path(request, "footage"), output=_path(request, "output"), flame=_path(request, "flame"),
        weights=_path(request, "weights"), device=device, precision=precision,
        start=_int(request, "start", 0, 0, MAX_FRAME),
        end=_int(request, "end", None, 1, MAX_FRAME, allow_none=True),
        batch_size=_int(request, "batch_size", 16, 1, MAX_BATCH),
        per_frame_shape=_bool(request, "per_frame_shape", False),
        smooth=strength(request.get("smooth", 0.0), "smooth"),
        smooth_groups={name: strength(value, f"smooth_groups.{name}") for name, value in groups.items()},
        gaussians=_bool(request, "gaussians", False),
        gaussian_count=_int(request, "gaussian_count", DEFAULT_COUNT, 1, MAX_COUNT),
        face=_face(request),
        people=_people(request),
        people_file=None if request.get("people_file") is None else _path(request, "people_file"),
    )
    if parsed.people_file is not None and not isinstance(parsed.people, int):
        raise BadRequest("people_file goes with people: a person's number")
    if parsed.end is not None and parsed.end <= parsed.start:
        raise BadRequest(f"end ({parsed.end}) must be after start ({parsed.start})")
    return parsed
