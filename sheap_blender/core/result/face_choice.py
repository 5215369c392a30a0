"""Which face a reconstruction follows, and the segment metadata a result carries (no bpy).

A face is chosen by a point on the first frame of the range, as fractions (0..1) of the frame's
width and height from its TOP-LEFT corner (`reconstruct --face X,Y`, the request's "face": [x, y]);
none means the largest face. A result may list `cuts` (JSON: the footage frame numbers, values
of `frame_index`, where a segment starts because of a hard cut) and `followed_face` (JSON: the
rule and the box followed); older results have neither.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import InputError

LARGEST = "largest"
_EXPECTED = f'"{LARGEST}" or X,Y: fractions 0..1 of the frame\'s width and height from its top-left corner'


class OutsideFrame(ValueError):
    """A face point whose X or Y is not a fraction from 0 to 1."""


def face_point(values) -> tuple[float, float]:
    """The one rule for a face point: two real numbers (strings of them too), each a fraction 0..1.

    ValueError when it is not two numbers, OutsideFrame when one is outside 0..1 (NaN included).
    """
    try:
        x, y = values
        if isinstance(x, bool) or isinstance(y, bool):
            raise TypeError
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise ValueError(f"not two numbers X,Y: {values!r}"[:120]) from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # also refuses nan
        raise OutsideFrame(f"{x:g},{y:g} is outside the frame")
    return x, y


def parse_face(text: str) -> tuple[float, float] | None:
    """ "largest" -> None; "0.3, 0.4" -> (0.3, 0.4). Anything else: ValueError with the one-line reason."""
    cleaned = text.strip()
    if cleaned.lower() == LARGEST:
        return None
    try:
        return face_point([part.strip() for part in cleaned.split(",")])
    except OutsideFrame:
        raise ValueError(f"face {text!r} is outside the frame; expected {_EXPECTED}") from None
    except ValueError:
        raise ValueError(f"face {text!r} not understood; expected {_EXPECTED}") from None


def face_request(point: tuple[float, float] | None) -> list[float] | None:
    """The request's "face": [x, y] (plain floats), or None for the largest face."""
    return None if point is None else [float(point[0]), float(point[1])]


def clip_cursor_to_point(cursor) -> tuple[float, float]:
    """The Movie Clip editor's 2D cursor -> (x, y) from the frame's top-left corner, in fractions.

    `SpaceClipEditor.cursor_location` holds the cursor in fractions of the clip's frame with the
    origin at the frame's BOTTOM-left corner, y up (Blender's `ED_clip_point_stable_pos` divides by
    the frame size; the stabilisation is undone, so it is the footage's own frame). Outside the
    frame: ValueError.
    """
    x, y = float(cursor[0]), float(cursor[1])
    point = (x, 1.0 - y)
    if not all(0.0 <= v <= 1.0 for v in point):
        raise ValueError(f"the 2D cursor ({x:.3f}, {y:.3f}) is outside the clip's frame: place it on the face")
    return point


def cut_rows(path: str | os.PathLike, metadata: dict[str, str], frame_index: np.ndarray) -> np.ndarray:
    """Rows of the result where a segment starts at a hard cut (from the `cuts` metadata); none when absent.

    Raises InputError naming the file when `cuts` is not a JSON list of whole frame numbers or names
    a frame the result does not hold.
    """
    text = metadata.get("cuts")
    if text is None:
        return np.zeros(0, dtype=np.int64)
    try:
        cuts = json.loads(text)
    except json.JSONDecodeError:
        cuts = None
    if not isinstance(cuts, list) or not all(type(c) is int and 0 <= c < 2**63 for c in cuts):  # bool: refused
        raise InputError(path, f"malformed cuts metadata (expected a JSON list of frame numbers): {text[:60]!r}")
    cuts_array = np.unique(np.asarray(cuts, dtype=np.int64))
    frames = np.asarray(frame_index, dtype=np.int64)
    missing = cuts_array[~np.isin(cuts_array, frames)]
    if missing.size:
        raise InputError(path, f"cuts metadata names frame {int(missing[0])}, which the result does not hold")
    return np.flatnonzero(np.isin(frames, cuts_array))


def followed_face(metadata: dict[str, str]) -> dict | None:
    """The `followed_face` metadata as a dict; None when absent or not a JSON object."""
    text = metadata.get("followed_face")
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def other_person_warning(extra: dict[str, np.ndarray], valid: np.ndarray, frame_index: np.ndarray) -> str | None:
    """A warning naming the footage frames whose face may be another person's (the result's `identified`
    is 0 where it is valid: found again by place, too small to recognise); None when there are none."""
    identified = extra.get("identified")
    valid = np.asarray(valid, dtype=bool)
    if identified is None or np.shape(identified) != valid.shape:
        return None
    doubtful = valid & (np.asarray(identified) == 0)
    if not doubtful.any():
        return None
    rows = np.flatnonzero(doubtful)
    starts = rows[np.r_[True, np.diff(rows) > 1]]
    ends = rows[np.r_[np.diff(rows) > 1, True]]
    frames = np.asarray(frame_index, dtype=np.int64)
    spans = [f"{frames[a]}-{frames[b]}" if a != b else f"{frames[a]}" for a, b in zip(starts, ends)]
    listed = ", ".join(spans[:4]) + (f" and {len(spans) - 4} more" if len(spans) > 4 else "")
    return (f"footage frames {listed} may show another person than the one followed (a face too small to "
            f"recognise, found again by its place): they are animated, but the head's shape was made without them")
