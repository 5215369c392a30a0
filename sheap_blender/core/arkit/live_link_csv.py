"""Live Link Face's CSV take: 52 ARKit coefficients, head and eye rotations per row, by timecode.

The layout is the one Epic's Live Link Face app writes: `Timecode, BlendShapeCount`, the 52
coefficients (UpperCamel names, in `ARKIT_NAMES` order), then `HeadYaw, HeadPitch, HeadRoll`,
`LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll` in radians: 63 columns.
BlendShapeCount is 61 (the 52 and the 9 rotations); values have 10 fixed decimals (`0.1274549216`).
A timecode is `HH:MM:SS:FF.fff`: frame FF of the second, then the fraction of a frame. The app counts
its timecode at 60 fps (FF 0-59) while rows come about 30 a second, unevenly (steps of 1, 2, 4 frames);
reading infers the rate from the frame field (24, 25, 30, 50, 60; `;` before FF: drop-frame 29.97/59.94)
and places every row at its own time. Reading goes by header name: other orders and missing columns work.

Rotations (docs/arkit.md): positive yaw = toward the performer's right, positive pitch = down,
positive roll = the top of the head toward the performer's left (the app's sign, for the head and each eye).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from ..atomic_file import replacing
from ..errors import InputError
from .names import ARKIT_NAMES, N_ARKIT, channel_for_key

ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
COLUMNS = ("Timecode", "BlendShapeCount", *(name[0].upper() + name[1:] for name in ARKIT_NAMES), *ROTATION_COLUMNS)
BLEND_SHAPE_COUNT = N_ARKIT + len(ROTATION_COLUMNS)  # 61, as the app writes it
APP_TIMECODE_FPS = 60  # the rate the app counts its timecode at, whatever rate its rows come at
TIMECODE_RATES = (24, 25, 30, 50, 60)  # nominal rates, read from the frame field's range
DROPPED_PER_MINUTE = {30: 2, 60: 4}  # drop-frame timecode skips these frame numbers each minute but every tenth
SNAP = 0.01  # scene frames: a row this close to a whole frame is keyed on it (keys never crowd together)
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})([:;])(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class LiveLinkTake:
    """One take: row i is frame `frames[i]` counted at `fps` (the timecode's rate when read)."""

    frames: np.ndarray  # (F,) float64 frame numbers counted from timecode 00:00:00:00 (sub-frames as fractions)
    weights: np.ndarray  # (F, 52) in ARKIT_NAMES order, 0..1
    head: np.ndarray  # (F, 3) yaw, pitch, roll, radians (the app's signs: see the module's docstring)
    left_eye: np.ndarray  # (F, 3) yaw, pitch, roll, radians
    right_eye: np.ndarray  # (F, 3)
    present: tuple[str, ...] = ARKIT_NAMES  # the ARKit channels the file had columns for
    fps: float | None = None  # the rate `frames` count at (read: the timecode's, inferred or given)

    def seconds(self, fps: float | None = None) -> np.ndarray:
        """(F,) each row's time in seconds (`fps`: the rate `frames` count at, when the take does not say)."""
        rate = self.fps if self.fps else fps
        if not rate or rate <= 0:
            raise ValueError("the take's frame rate is not known")
        return np.asarray(self.frames, dtype=np.float64) / rate

    @property
    def head_rotation_off(self) -> bool:
        """True when HeadYaw, HeadPitch, HeadRoll are 0 on every row (head rotation off in the app, or no columns)."""
        return not np.any(self.head)


def timecode(frame: float, fps: float) -> str:
    """`HH:MM:SS:FF.fff` of a frame number at `fps` (counted at the nominal whole rate, as timecode is)."""
    rate = max(1, round(fps))
    thousandths = round(max(0.0, frame) * 1000)  # the fraction rounded once: 59.9996 is the next second's 00.000
    whole, fraction = divmod(thousandths, 1000)
    seconds, ff = divmod(int(whole), rate)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{fraction:03d}"


def timecode_frame(text: str, fps: float) -> float:
    """The frame number of `HH:MM:SS:FF.fff` at `fps` (nominal count); ValueError if it is not a timecode."""
    match = _TIMECODE.match(text.strip())
    if not match:
        raise ValueError(f"not a timecode: {text!r}")
    hh, mm, ss, ff = (int(match.group(i)) for i in (1, 2, 3, 5))
    fraction = float("0." + match.group(6)) if match.group(6) else 0.0
    return ((hh * 60 + mm) * 60 + ss) * max(1, round(fps)) + ff + fraction


def write_live_link_csv(path: str | os.PathLike, take: LiveLinkTake, fps: float) -> None:
    """Write `take` (its frames counted at `fps`) as Live Link Face writes a take (atomically).

    Timecodes are the app's: each row's time at 60 fps with the fraction of a frame; values have 10 fixed decimals.
    """
    n = len(take.frames)
    for name, array, width in (("weights", take.weights, N_ARKIT), ("head", take.head, 3),
                               ("left_eye", take.left_eye, 3), ("right_eye", take.right_eye, 3)):
        if np.shape(array) != (n, width) or not np.isfinite(array).all():
            raise ValueError(f"take.{name}: expected ({n}, {width}) finite values, got {np.shape(array)}")
    frames = np.asarray(take.frames, dtype=np.float64)
    if frames.shape != (n,) or not np.isfinite(frames).all() or (frames < 0).any():
        raise ValueError(f"take.frames: expected ({n},) finite frame numbers >= 0")
    if not fps > 0:
        raise ValueError(f"frame rate {fps} is not usable")
    values = np.concatenate([take.weights, take.head, take.left_eye, take.right_eye], axis=1)
    values = np.round(values, 10) + 0.0  # + 0.0: no "-0.0000000000"
    text = io.StringIO()
    text.write(",".join(COLUMNS) + "\n")
    row_format = ",".join(["{}", str(BLEND_SHAPE_COUNT)] + ["{:.10f}"] * values.shape[1]) + "\n"
    for frame, row in zip(frames * (APP_TIMECODE_FPS / fps), values.tolist()):
        text.write(row_format.format(timecode(frame, APP_TIMECODE_FPS), *row))
    with replacing(path) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8", newline="")


def _column_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def timecode_rate(frame_field_max: int, drop_frame: bool = False, spans_seconds: bool = True) -> float:
    """The rate a take's timecode counts at, from the largest frame field FF it holds.

    The smallest of 24, 25, 30, 50, 60 above it; `drop_frame` (a `;` before FF) makes 30 and 60 their
    drop-frame 29.97 and 59.94 (and 24: 23.976). A take that never passes a whole second shows nothing
    of its rate: it is read at the app's 60. ValueError past 59.
    """
    nominal = next((rate for rate in TIMECODE_RATES if frame_field_max < rate), None)
    if nominal is None:
        raise ValueError(f"the frame field reaches {frame_field_max}: not a timecode at 60 fps or less")
    if not spans_seconds:
        nominal = APP_TIMECODE_FPS
    return nominal * 1000 / 1001 if drop_frame and nominal in (24, 30, 60) else float(nominal)


def _parse_timecodes(path, cells: list[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray, bool]:
    """(F, 4) hours, minutes, seconds, frame field; (F,) fraction of a frame; whether any is drop-frame (`;`)."""
    fields = np.empty((len(cells), 4), dtype=np.int64)
    fraction = np.zeros(len(cells))
    drop_frame = False
    for r, (line, text) in enumerate(cells):
        match = _TIMECODE.match(text.strip())
        if not match:
            raise InputError(path, f"line {line}: {text.strip()[:40]!r} is not a timecode (HH:MM:SS:FF.fff)")
        fields[r] = [int(match.group(i)) for i in (1, 2, 3, 5)]
        fraction[r] = float("0." + match.group(6)) if match.group(6) else 0.0
        drop_frame |= match.group(4) == ";"
    return fields, fraction, drop_frame


def _row_frames(path, cells: list[tuple[int, str]], fps: float | None) -> tuple[np.ndarray, float]:
    """Each row's frame number counted at the timecode's rate (`fps`, else inferred), and that rate."""
    fields, fraction, drop_frame = _parse_timecodes(path, cells)
    hh, mm, ss, ff = fields.T
    if fps is None:
        whole_seconds = (hh * 60 + mm) * 60 + ss
        rate = timecode_rate(int(ff.max()), drop_frame, bool(np.any(whole_seconds != whole_seconds[0])))
    else:
        rate = float(fps)
        beyond = np.flatnonzero(ff >= max(1, round(rate)))
        if beyond.size:
            line, text = cells[int(beyond[0])]
            raise InputError(path, f"line {line}: frame {int(ff[beyond[0]])} of timecode {text.strip()} is past "
                                   f"a {rate:g} fps timecode's last (leave the rate unset to read it from the take)")
    nominal = max(1, round(rate))
    frames = ((hh * 60 + mm) * 60 + ss) * nominal + ff + fraction
    if drop_frame and nominal in DROPPED_PER_MINUTE and abs(rate - nominal) > 1e-6:
        minutes = hh * 60 + mm
        frames = frames - DROPPED_PER_MINUTE[nominal] * (minutes - minutes // 10)
    # the clock passing midnight: a step back of more than half a day is the next day
    next_day = np.concatenate([[0], np.cumsum(np.diff(frames) < -43200 * nominal)])
    frames = frames + next_day * 86400 * rate
    back = np.flatnonzero(np.diff(frames) <= 0)
    if back.size:
        line, text = cells[int(back[0]) + 1]
        raise InputError(path, f"line {line}: the timecode {text.strip()} does not advance from the row before")
    return frames.astype(np.float64), rate


def _numbers(path, body: list[tuple[int, list[str]]], indices: list[int]) -> np.ndarray:
    """(F, len(indices)) the cells as floats; InputError naming the first line that is not numbers."""
    try:
        return np.array([[row[i] for i in indices] for _, row in body], dtype=np.float64)
    except (IndexError, ValueError, TypeError):
        pass
    for line, row in body:
        try:
            [float(row[i]) for i in indices]
        except (IndexError, ValueError):
            raise InputError(path, f"line {line}: not a row of numbers under the header") from None
    raise InputError(path, "not a table of numbers under the header")


def read_live_link_csv(path: str | os.PathLike, fps: float | None = None) -> LiveLinkTake:
    """Read a take by header names; missing ARKit columns read 0 (named in `present`). InputError if unusable.

    `fps`: the timecode's rate; None reads it from the frame field (`timecode_rate`).
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            rows = list(csv.reader(stream))
    except FileNotFoundError:
        raise InputError(path, "CSV file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"cannot read the CSV file ({error.__class__.__name__})") from None
    numbered = [(line, row) for line, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise InputError(path, "empty CSV file, not a Live Link Face take")
    header = [cell.strip() for cell in numbered[0][1]]
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
    body = numbered[1:]
    if not body:
        raise InputError(path, "the take has a header but no rows")
    rotation_index = [columns.get(_column_key(name)) for name in ROTATION_COLUMNS]
    wanted = [*channel_columns.values(), *(i for i in rotation_index if i is not None)]
    values = _numbers(path, body, wanted)
    if not np.isfinite(values).all():
        raise InputError(path, "the take holds NaN or infinite values")
    timecode_column = columns["timecode"]
    if any(len(row) <= timecode_column for _, row in body):
        raise InputError(path, "a row has no timecode cell")
    try:
        frames, rate = _row_frames(path, [(line, row[timecode_column]) for line, row in body], fps)
    except ValueError as error:
        raise InputError(path, str(error)) from None
    n = len(body)
    weights = np.zeros((n, N_ARKIT))
    weights[:, [ARKIT_NAMES.index(channel) for channel in channel_columns]] = values[:, :len(channel_columns)]
    rotations = np.zeros((n, len(ROTATION_COLUMNS)))
    rotations[:, [k for k, i in enumerate(rotation_index) if i is not None]] = values[:, len(channel_columns):]
    present = tuple(name for name in ARKIT_NAMES if name in channel_columns)
    return LiveLinkTake(frames=frames, weights=weights, head=rotations[:, 0:3], left_eye=rotations[:, 3:6],
                        right_eye=rotations[:, 6:9], present=present, fps=rate)


def on_scene_frames(take: LiveLinkTake, scene_fps: float, frame_start: float) -> LiveLinkTake:
    """The take on a scene's frames: its first row on `frame_start`, every row at its own time at `scene_fps`.

    Keys fall on every whole scene frame the take spans (values interpolated linearly between the rows
    around it) and on every row's own time (its values exactly as in the file; a row within `SNAP` of a
    whole frame is moved onto it), so the linear curve through them passes through every row.
    """
    if not scene_fps > 0:
        raise ValueError(f"scene frame rate {scene_fps} is not usable")
    seconds = take.seconds()
    rows = np.round(frame_start + (seconds - seconds[0]) * scene_fps, 9)  # 5.4999999999 is row 5.5
    nearest = np.round(rows)
    snapped = np.where(np.abs(rows - nearest) <= SNAP, nearest, rows)
    rows = snapped if np.all(np.diff(snapped) > 0) else rows  # rows closer than 2 SNAP: not moved
    whole = np.arange(math.ceil(rows[0]), math.floor(rows[-1]) + 1, dtype=np.float64)
    at = np.searchsorted(rows, whole)  # the rows on either side of each whole frame
    gap = np.minimum(np.abs(rows[np.clip(at, 0, len(rows) - 1)] - whole),
                     np.abs(rows[np.clip(at - 1, 0, None)] - whole))
    whole = whole[gap > SNAP]
    frames = np.sort(np.concatenate([rows, whole]))
    # linear interpolation of every column at once: the row before each key and the share of the next
    after = np.clip(np.searchsorted(rows, frames, side="right"), 1, len(rows) - 1) if len(rows) > 1 else None

    def resampled(values: np.ndarray) -> np.ndarray:
        if after is None:
            return np.repeat(values, len(frames), axis=0)
        t = np.clip((frames - rows[after - 1]) / (rows[after] - rows[after - 1]), 0.0, 1.0)[:, None]
        return values[after - 1] * (1.0 - t) + values[after] * t

    return LiveLinkTake(frames=frames, weights=resampled(take.weights), head=resampled(take.head),
                        left_eye=resampled(take.left_eye), right_eye=resampled(take.right_eye),
                        present=take.present, fps=scene_fps)
