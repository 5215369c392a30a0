"""Live Link Face's CSV take: 52 ARKit coefficients, head and eye rotations per row, by timecode.

The layout is the one Epic's Live Link Face app writes: `Timecode, BlendShapeCount`, the 52
coefficients (UpperCamel names, in `ARKIT_NAMES` order), then `HeadYaw, HeadPitch, HeadRoll`,
`LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll` in radians: 63 columns.
BlendShapeCount is 61 (the 52 and the 9 rotations). A timecode is `HH:MM:SS:FF.fff`: frame FF of the
second at the take's rate, then the fraction of a frame. Reading goes by header name, so columns in
another order, or missing, are fine.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .arkit_names import ARKIT_NAMES, N_ARKIT, channel_for_key
from .atomic_file import replacing
from .errors import InputError

ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
COLUMNS = ("Timecode", "BlendShapeCount", *(name[0].upper() + name[1:] for name in ARKIT_NAMES), *ROTATION_COLUMNS)
BLEND_SHAPE_COUNT = N_ARKIT + len(ROTATION_COLUMNS)  # 61, as the app writes it
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class LiveLinkTake:
    """One take: row i is footage/timecode frame `frames[i]` (at `fps`)."""

    frames: np.ndarray  # (F,) float64 frame numbers counted from timecode 00:00:00:00 (sub-frames as fractions)
    weights: np.ndarray  # (F, 52) in ARKIT_NAMES order, 0..1
    head: np.ndarray  # (F, 3) yaw, pitch, roll, radians
    left_eye: np.ndarray  # (F, 3) yaw, pitch, roll, radians
    right_eye: np.ndarray  # (F, 3)
    present: tuple[str, ...] = ARKIT_NAMES  # the ARKit channels the file had columns for


def timecode(frame: float, fps: float) -> str:
    """`HH:MM:SS:FF.fff` of a frame number at `fps` (counted at the nominal whole rate, as timecode is)."""
    rate = max(1, round(fps))
    whole = math.floor(frame + 1e-9)
    fraction = max(0.0, frame - whole)
    seconds, ff = divmod(int(whole), rate)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{min(999, round(fraction * 1000)):03d}"


def timecode_frame(text: str, fps: float) -> float:
    """The frame number of `HH:MM:SS:FF.fff` at `fps`; ValueError if it is not a timecode."""
    match = _TIMECODE.match(text.strip())
    if not match:
        raise ValueError(f"not a timecode: {text!r}")
    hh, mm, ss, ff = (int(g) for g in match.groups()[:4])
    fraction = float("0." + match.group(5)) if match.group(5) else 0.0
    return ((hh * 60 + mm) * 60 + ss) * max(1, round(fps)) + ff + fraction


def write_live_link_csv(path: str | os.PathLike, take: LiveLinkTake, fps: float) -> None:
    """Write `take` as Live Link Face writes a take (atomically: complete or not at all)."""
    n = len(take.frames)
    for name, array, width in (("weights", take.weights, N_ARKIT), ("head", take.head, 3),
                               ("left_eye", take.left_eye, 3), ("right_eye", take.right_eye, 3)):
        if np.shape(array) != (n, width) or not np.isfinite(array).all():
            raise ValueError(f"take.{name}: expected ({n}, {width}) finite values, got {np.shape(array)}")
    frames = np.asarray(take.frames, dtype=np.float64)
    if frames.shape != (n,) or not np.isfinite(frames).all() or (frames < 0).any():
        raise ValueError(f"take.frames: expected ({n},) finite frame numbers >= 0")
    values = np.concatenate([take.weights, take.head, take.left_eye, take.right_eye], axis=1)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for frame, row in zip(take.frames, values):
        writer.writerow([timecode(float(frame), fps), BLEND_SHAPE_COUNT, *(f"{v:.6g}" for v in row)])
    with replacing(path) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8", newline="")


def _column_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def read_live_link_csv(path: str | os.PathLike, fps: float) -> LiveLinkTake:
    """Read a take by header names; missing ARKit columns read 0 (named in `present`). InputError if unusable."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            rows = list(csv.reader(stream))
    except FileNotFoundError:
        raise InputError(path, "CSV file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"cannot read the CSV file ({error.__class__.__name__})") from None
    numbered = [(line, row) for line, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    rows = [row for _, row in numbered]
    if not rows:
        raise InputError(path, "empty CSV file, not a Live Link Face take")
    header = [cell.strip() for cell in rows[0]]
    columns = {_column_key(name): i for i, name in enumerate(header)}
    if "timecode" not in columns:
        raise InputError(path, "not a Live Link Face take: no Timecode column in the header")
    channel_columns = {}
    for i, name in enumerate(header):
        channel = channel_for_key(name)
        if channel and channel not in channel_columns:
            channel_columns[channel] = i
    if not channel_columns:
        raise InputError(path, "not a Live Link Face take: no ARKit blendshape columns in the header")
    if len(rows) < 2:
        raise InputError(path, "the take has a header but no rows")
    n = len(rows) - 1
    frames = np.empty(n)
    weights = np.zeros((n, N_ARKIT))
    rotations = np.zeros((n, len(ROTATION_COLUMNS)))
    rotation_index = [columns.get(_column_key(name)) for name in ROTATION_COLUMNS]
    for r, (line, row) in enumerate(numbered[1:]):
        try:
            frames[r] = timecode_frame(row[columns["timecode"]], fps)
            for channel, i in channel_columns.items():
                weights[r, ARKIT_NAMES.index(channel)] = float(row[i])
            for k, i in enumerate(rotation_index):
                if i is not None:
                    rotations[r, k] = float(row[i])
        except (IndexError, ValueError):
            raise InputError(path, f"line {line}: not a row of numbers under the header (or a bad timecode)") from None
    if not (np.isfinite(weights).all() and np.isfinite(rotations).all()):
        raise InputError(path, "the take holds NaN or infinite values")
    present = tuple(name for name in ARKIT_NAMES if name in channel_columns)
    return LiveLinkTake(frames=frames, weights=weights, head=rotations[:, 0:3], left_eye=rotations[:, 3:6],
                        right_eye=rotations[:, 6:9], present=present)
