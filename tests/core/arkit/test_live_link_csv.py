"""Live Link Face CSV takes: the app's exact layout, timecodes and rates, reading by header name, a real take's rows,
the take on a scene's frames, bad files named."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest

from sheap_blender.core.arkit.live_link_csv import (
    COLUMNS,
    SNAP,
    LiveLinkTake,
    on_scene_frames,
    read_live_link_csv,
    timecode,
    timecode_frame,
    timecode_rate,
    write_live_link_csv,
)
from sheap_blender.core.arkit.names import ARKIT_INDEX, ARKIT_NAMES
from sheap_blender.core.errors import InputError

REAL_TAKE = Path(__file__).resolve().parents[2] / "data" / "live_link_face_take_excerpt.csv"  # see its .txt

# The header Live Link Face writes, copied from a take (jawRight before jawLeft, mouthRight before mouthLeft)
LIVE_LINK_HEADER = [
    "Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft",
    "EyeLookUpLeft", "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft",
    "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft",
    "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff",
    "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut", "HeadYaw", "HeadPitch",
    "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
]
# Two rows as the app writes them at 60 fps (made-up values, real layout)
LIVE_LINK_ROWS = (
    "13:13:04:31.652,61,0.1236,0.176,0.1415,0.0221,0.0341,0.1691,0.0001,0.1541,0.1473,0.0663,0.0345,0.0304,0.0266,"
    "0.0615,0.0742,0.0853,0.2057,0.1461,0.1016,0.2036,0.0207,0.0133,0.0993,0.0019,0.0014,0.0765,0.0659,0.1819,"
    "0.1034,0.0763,0.0725,0.0255,0.0003,0.0175,0.1192,0.0186,0.0465,0,0.1566,0.0126,0.0287,0.171,0.0754,0.1615,"
    "0.1059,0.1323,0.0057,0.0824,0.0749,0.1684,0.045,0.0958,-0.09594,0.00596,0.04614,-0.0151,0.05463,-0.00532,"
    "0.05338,0.11508,-0.05405\n"
    "13:13:04:32.651,61,0.119,0.1152,0.0121,0.0605,0.0243,0.0529,0.0062,0.1972,0.0206,0.114,0.0341,0.1692,0.1116,"
    "0.0099,0.1609,0.1902,0.1779,0.089,0.0115,0.0175,0.1851,0.085,0.0159,0.1721,0.1064,0.089,0.0478,0.0545,0.0243,"
    "0.0015,0.1698,0.0662,0.0839,0.0379,0.1348,0.0008,0.047,0.0011,0.0089,0.1969,0.1105,0.058,0.0785,0.1688,0.0418,"
    "0.0939,0.1171,0.0439,0.0774,0.1386,0.1795,0.0122,-0.08269,-0.00633,0.00282,-0.08436,0.02079,-0.06864,0.07777,"
    "0.01542,0.00714\n"
)


def make_take(n: int = 12, seed: int = 0, first_frame: float = 100.0) -> LiveLinkTake:
    rng = np.random.default_rng(seed)
    return LiveLinkTake(frames=first_frame + np.arange(n, dtype=np.float64), weights=rng.uniform(0, 1, (n, 52)),
                        head=rng.normal(0, 0.3, (n, 3)), left_eye=rng.normal(0, 0.2, (n, 3)),
                        right_eye=rng.normal(0, 0.2, (n, 3)))


def read_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def write_rows(path: Path, rows: list[list[str]], prefix: str = "") -> None:
    with open(path, "w", encoding="utf-8", newline="") as stream:
        stream.write(prefix)
        csv.writer(stream, lineterminator="\n").writerows(rows)


def assert_same_take(read: LiveLinkTake, take: LiveLinkTake, fps: float = 30) -> None:
    """The same rows at the same times (the file's timecode counts 1/60,000 s) and values (10 decimals)."""
    assert read.fps == 60  # the app's timecode rate, whatever rate the take was written from
    np.testing.assert_allclose(read.seconds(), take.frames / fps, rtol=0, atol=1e-5)
    for name in ("weights", "head", "left_eye", "right_eye"):
        np.testing.assert_allclose(getattr(read, name), getattr(take, name), rtol=0, atol=1e-9, err_msg=name)


def test_the_columns_are_live_link_faces_63():
    assert len(LIVE_LINK_HEADER) == 63 and tuple(LIVE_LINK_HEADER) == COLUMNS


def test_the_file_has_the_apps_header_and_blend_shape_count_61_on_every_row(tmp_path):
    path = tmp_path / "take.csv"
    write_live_link_csv(path, make_take(), 30)
    rows = read_rows(path)
    assert rows[0] == LIVE_LINK_HEADER
    assert len(rows) == 13 and all(len(row) == 63 for row in rows)
    assert [row[1] for row in rows[1:]] == ["61"] * 12


def test_each_channel_is_written_under_its_own_name(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    with open(path, encoding="utf-8", newline="") as stream:
        first = next(csv.DictReader(stream))
    for name in ("jawRight", "jawLeft", "mouthRight", "mouthLeft", "eyeBlinkLeft", "tongueOut"):
        assert float(first[name[0].upper() + name[1:]]) == pytest.approx(take.weights[0, ARKIT_INDEX[name]], abs=1e-6)
    for column, value in (("HeadYaw", take.head[0, 0]), ("HeadRoll", take.head[0, 2]),
                          ("LeftEyePitch", take.left_eye[0, 1]), ("RightEyeYaw", take.right_eye[0, 0])):
        assert float(first[column]) == pytest.approx(value, abs=1e-6)
    assert first["Timecode"] == "00:00:03:20.000"  # frame 100 at 30 fps: 3.333 s, the app's 60 fps timecode


@pytest.mark.parametrize(("frame", "fps", "text"), [
    (0, 30, "00:00:00:00.000"),
    (29, 30, "00:00:00:29.000"),
    (30, 30, "00:00:01:00.000"),
    (10.5, 30, "00:00:00:10.500"),
    (23, 24, "00:00:00:23.000"),
    (24 * 3600 - 1, 24, "00:59:59:23.000"),
    (24 * 3600, 24, "01:00:00:00.000"),
    (25 * 3600 - 1, 25, "00:59:59:24.000"),
    (25 * 3600 + 25 * 61 + 3.25, 25, "01:01:01:03.250"),
    (29, 29.97, "00:00:00:29.000"),  # counted at the nominal 30, as timecode is
    (30 * 3600, 29.97, "01:00:00:00.000"),
    (107892, 29.97, "00:59:56:12.000"),  # an hour of real 29.97 fps footage is 3.6 s short of timecode's hour
    (60 * 3600 - 1, 60, "00:59:59:59.000"),
    (47584 * 60 + 31.652, 60, "13:13:04:31.652"),
    (10 * 3600 * 60, 60, "10:00:00:00.000"),
])
def test_timecode(frame, fps, text):
    assert timecode(frame, fps) == text
    assert timecode_frame(text, fps) == pytest.approx(frame, abs=1e-9)


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 60])
def test_timecode_frame_inverts_timecode(fps):
    rng = np.random.default_rng(round(fps * 100))
    whole = rng.integers(0, 3 * 3600 * round(fps), 300)
    fraction = rng.integers(0, 1000, 300) / 1000
    frames = np.concatenate([whole, whole + fraction, [0, round(fps) - 1, round(fps), 3600 * round(fps)]])
    back = np.array([timecode_frame(timecode(f, fps), fps) for f in frames])
    np.testing.assert_allclose(back, frames, rtol=0, atol=1e-6)
    assert np.array_equal(back[:300], whole)


def test_timecode_frame_takes_drop_frame_separators_and_refuses_non_timecodes():
    assert timecode_frame("01:00:00;02", 29.97) == 30 * 3600 + 2
    assert timecode_frame(" 00:00:01:05 ", 24) == 29
    for text in ("", "12:00", "00:00:01", "aa:bb:cc:dd", "00:00:01:05.x", "-00:00:00:01.000"):
        with pytest.raises(ValueError):
            timecode_frame(text, 30)


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 60])
def test_write_then_read_gives_the_take_back(tmp_path, fps):
    path, take = tmp_path / "take.csv", make_take(40, seed=round(fps), first_frame=3600 * round(fps) - 20)
    write_live_link_csv(path, take, fps)
    read = read_live_link_csv(path)  # nothing to say: the rate is read from the take
    assert_same_take(read, take, fps)
    assert read.present == ARKIT_NAMES


def test_values_have_ten_fixed_decimals_never_an_exponent(tmp_path):
    path, take = tmp_path / "take.csv", make_take(4)
    weights = take.weights.copy()
    weights[0, :6] = [1e-5, 1e-12, 0.0, 1.0, 0.1274549216, 3e-11]
    head = take.head.copy()
    head[1] = [-1e-12, -0.0, -0.6070534587]
    write_live_link_csv(path, LiveLinkTake(**{**take.__dict__, "weights": weights, "head": head}), 30)
    rows = read_rows(path)
    cells = [cell for row in rows[1:] for cell in row[2:]]
    assert all(re.fullmatch(r"-?[01]\.\d{10}", cell) for cell in cells), [c for c in cells if "e" in c][:3]
    assert rows[1][2:8] == ["0.0000100000", "0.0000000000", "0.0000000000", "1.0000000000", "0.1274549216",
                            "0.0000000000"]
    assert rows[2][-9:-6] == ["0.0000000000", "0.0000000000", "-0.6070534587"]  # never "-0.0000000000"


@pytest.mark.parametrize(("fps", "expected"), [
    (30, ["00:00:00:00.000", "00:00:00:02.000", "00:00:00:04.000"]),
    (25, ["00:00:00:00.000", "00:00:00:02.400", "00:00:00:04.800"]),
    (29.97, ["00:00:00:00.000", "00:00:00:02.002", "00:00:00:04.004"]),
    (60, ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"]),
])
def test_timecodes_are_the_apps_sixty_frames_a_second_with_a_fraction(tmp_path, fps, expected):
    path = tmp_path / "take.csv"
    write_live_link_csv(path, make_take(3, first_frame=0.0), fps)
    assert [row[0] for row in read_rows(path)[1:]] == expected


def test_an_existing_take_is_replaced_whole(tmp_path):
    path = tmp_path / "take.csv"
    write_live_link_csv(path, make_take(50, seed=1), 30)
    write_live_link_csv(path, make_take(3, seed=2), 30)
    assert_same_take(read_live_link_csv(path), make_take(3, seed=2))
    assert os.listdir(tmp_path) == ["take.csv"]


def test_columns_are_read_by_name_in_any_order(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    rows = read_rows(path)
    order = np.random.default_rng(3).permutation(63)
    assert list(order[:2]) != [0, 1]
    write_rows(path, [[row[i] for i in order] for row in rows])
    assert_same_take(read_live_link_csv(path), take)


def test_missing_columns_read_zero_and_are_named_in_present(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    rows = read_rows(path)
    dropped = {"MouthSmileLeft", "CheekPuff", "JawLeft", "HeadYaw", "RightEyeRoll", "BlendShapeCount"}
    keep = [i for i, name in enumerate(rows[0]) if name not in dropped]
    write_rows(path, [[row[i] for i in keep] for row in rows])
    read = read_live_link_csv(path)
    missing = [ARKIT_INDEX[name] for name in ("mouthSmileLeft", "cheekPuff", "jawLeft")]
    assert read.present == tuple(n for n in ARKIT_NAMES if n not in ("mouthSmileLeft", "cheekPuff", "jawLeft"))
    assert not read.weights[:, missing].any() and not read.head[:, 0].any() and not read.right_eye[:, 2].any()
    others = np.setdiff1d(np.arange(52), missing)
    np.testing.assert_allclose(read.weights[:, others], take.weights[:, others], atol=1e-6)
    np.testing.assert_allclose(read.head[:, 1:], take.head[:, 1:], atol=1e-6)
    np.testing.assert_allclose(read.left_eye, take.left_eye, atol=1e-6)


def test_extra_columns_a_bom_and_windows_line_ends_are_fine(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    rows = read_rows(path)
    extra = [["Notes", *row[:1], "Tracker", *row[1:]] if r == 0 else [f"take {r}", *row[:1], "iPhone", *row[1:]]
             for r, row in enumerate(rows)]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        stream.write("\ufeff")
        csv.writer(stream, lineterminator="\r\n").writerows(extra)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfNotes,Timecode")
    assert_same_take(read_live_link_csv(path), take)


def test_a_take_as_live_link_face_writes_it(tmp_path):
    path = tmp_path / "MySlate_7_iPhone.csv"
    path.write_text(",".join(LIVE_LINK_HEADER) + "\n" + LIVE_LINK_ROWS, encoding="utf-8", newline="")
    read = read_live_link_csv(path)
    assert read.fps == 60
    np.testing.assert_allclose(read.frames, [2855071.652, 2855072.651], rtol=0, atol=1e-6)
    assert read.weights.shape == (2, 52) and read.present == ARKIT_NAMES
    assert read.weights[0, ARKIT_INDEX["eyeBlinkLeft"]] == 0.1236
    assert read.weights[0, ARKIT_INDEX["jawForward"]] == 0.0742
    assert read.weights[0, ARKIT_INDEX["jawRight"]] == 0.0853 and read.weights[0, ARKIT_INDEX["jawLeft"]] == 0.2057
    assert read.weights[0, ARKIT_INDEX["jawOpen"]] == 0.1461 and read.weights[0, ARKIT_INDEX["tongueOut"]] == 0.0958
    assert read.weights[1, ARKIT_INDEX["eyeBlinkLeft"]] == 0.119
    np.testing.assert_array_equal(read.head[0], [-0.09594, 0.00596, 0.04614])
    np.testing.assert_array_equal(read.left_eye[1], [-0.08436, 0.02079, -0.06864])
    np.testing.assert_array_equal(read.right_eye[1], [0.07777, 0.01542, 0.00714])


HEADER = ",".join(LIVE_LINK_HEADER) + "\n"
GOOD_ROW = "00:00:00:01.000,61," + ",".join(["0.5"] * 61) + "\n"
BAD_FILES = {
    "empty": "",
    "blank lines only": "\n\n \n",
    "header only": HEADER,
    "no Timecode column": HEADER.replace("Timecode", "Time") + GOOD_ROW,
    "no ARKit columns": "Timecode,HeadYaw\n00:00:00:01.000,0.1\n",
    "a word in a number cell": HEADER + GOOD_ROW + GOOD_ROW.replace(",0.5,", ",high,", 1),
    "an empty cell": HEADER + GOOD_ROW.replace(",0.5,", ",,", 1),
    "NaN": HEADER + GOOD_ROW + GOOD_ROW.replace(",0.5,", ",nan,", 1),
    "infinity in a rotation": HEADER + GOOD_ROW[: GOOD_ROW.rindex(",")] + ",inf\n",
    "a bad timecode": HEADER + GOOD_ROW.replace("00:00:00:01.000", "00:00:01"),
    "a short row": HEADER + GOOD_ROW + "00:00:00:02.000,61,0.5\n",
    "not text": b"\x89PNG\r\n\x1a\n\xff\xfe\x00",
}


@pytest.mark.parametrize("content", [*BAD_FILES, "missing file", "a folder"])
def test_bad_input_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "take.csv"
    if content == "a folder":
        path.mkdir()
    elif content != "missing file":
        data = BAD_FILES[content]
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(InputError) as caught:
        read_live_link_csv(path, 30)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and len(message) > len(f"{path}: ") + 5
    assert caught.value.path == str(path)


def test_a_huge_cell_is_an_input_error(tmp_path):
    path = tmp_path / "take.csv"
    path.write_text(HEADER + GOOD_ROW.replace(",0.5,", "," + "7" * 200_000 + ",", 1), encoding="utf-8")
    with pytest.raises(InputError, match="take.csv"):
        read_live_link_csv(path, 30)


def _bad(take: LiveLinkTake, **changes) -> LiveLinkTake:
    return LiveLinkTake(**{**take.__dict__, **changes})


@pytest.mark.parametrize("change", ["51 weights", "a row short", "NaN weight", "infinite head", "eyes as (F, 2)"])
def test_the_writer_leaves_no_file_when_given_bad_arrays(tmp_path, change):
    take = make_take()
    bad = {
        "51 weights": lambda: _bad(take, weights=take.weights[:, :51]),
        "a row short": lambda: _bad(take, head=take.head[:-1]),
        "NaN weight": lambda: _bad(take, weights=np.where(np.eye(12, 52, 5) > 0, np.nan, take.weights)),
        "infinite head": lambda: _bad(take, head=np.where(np.eye(12, 3, 1) > 0, np.inf, take.head)),
        "eyes as (F, 2)": lambda: _bad(take, left_eye=take.left_eye[:, :2]),
    }[change]()
    with pytest.raises(ValueError):
        write_live_link_csv(tmp_path / "new.csv", bad, 30)
    assert os.listdir(tmp_path) == []
    write_live_link_csv(tmp_path / "old.csv", take, 30)
    before = (tmp_path / "old.csv").read_bytes()
    with pytest.raises(ValueError):
        write_live_link_csv(tmp_path / "old.csv", bad, 30)
    assert os.listdir(tmp_path) == ["old.csv"] and (tmp_path / "old.csv").read_bytes() == before


def test_a_negative_frame_is_refused_before_writing(tmp_path):
    take = make_take(first_frame=-1.0)
    with pytest.raises(ValueError):
        write_live_link_csv(tmp_path / "take.csv", take, 30)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- the timecode's rate, rows at their times


@pytest.mark.parametrize(("largest", "drop_frame", "rate"), [
    (59, False, 60), (56, False, 60), (49, False, 50), (46, False, 50), (29, False, 30), (27, False, 30),
    (24, False, 25), (23, False, 24), (20, False, 24),
    (29, True, 30000 / 1001), (59, True, 60000 / 1001), (23, True, 24000 / 1001),
])
def test_the_rate_is_read_from_the_frame_fields_range(largest, drop_frame, rate):
    assert timecode_rate(largest, drop_frame) == pytest.approx(rate, abs=1e-12)


def test_a_take_within_one_second_is_read_at_the_apps_rate_and_past_59_is_no_timecode():
    assert timecode_rate(18, spans_seconds=False) == 60
    with pytest.raises(ValueError, match="60"):
        timecode_rate(60)


def drop_frame_timecode(n: int, nominal: int) -> str:
    """Frame n (counted at 29.97 or 59.94) as drop-frame timecode `HH:MM:SS;FF` (SMPTE 12M's numbering)."""
    drop = {30: 2, 60: 4}[nominal]
    per_ten, per_minute = 600 * nominal - 9 * drop, 60 * nominal - drop
    tens, rest = divmod(n, per_ten)
    n += 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
    seconds, ff = divmod(n, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d};{ff:02d}"


def write_timecodes(path: Path, timecodes: list[str], seed: int = 0) -> np.ndarray:
    """A take with these timecodes and random values; returns the (F, 61) values written."""
    values = np.round(np.random.default_rng(seed).uniform(-0.5, 1.0, (len(timecodes), 61)), 10)
    lines = [",".join(LIVE_LINK_HEADER)]
    lines += [f"{text},61," + ",".join(f"{v:.10f}" for v in row) for text, row in zip(timecodes, values)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return values


def uneven_times(rate: float, start_seconds: float, n: int, seed: int) -> np.ndarray:
    """Row times in frames at `rate`: steps of 1, 2 and 4 frames (mostly 2) and a fraction, as the app's."""
    steps = np.random.default_rng(seed).choice([1, 2, 4], size=n - 1, p=[0.2, 0.7, 0.1])
    return start_seconds * rate + np.concatenate([[0], np.cumsum(steps)]) + 0.652


@pytest.mark.parametrize("nominal", [24, 25, 30, 50, 60])
def test_rows_are_placed_at_their_own_timecode_whatever_the_rate(tmp_path, nominal):
    # across a minute and an hour, rows 1, 2 or 4 frames apart
    frames = uneven_times(nominal, 3600 + 59 * 60 + 57, 400, seed=nominal)
    path = tmp_path / "take.csv"
    values = write_timecodes(path, [timecode(f, nominal) for f in frames])
    read = read_live_link_csv(path)
    assert read.fps == nominal
    np.testing.assert_allclose(read.seconds(), frames / nominal, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(read.weights, values[:, :52])
    np.testing.assert_array_equal(np.concatenate([read.head, read.left_eye, read.right_eye], axis=1), values[:, 52:])


@pytest.mark.parametrize("nominal", [30, 60])
def test_drop_frame_timecode_counts_real_time(tmp_path, nominal):
    rate = nominal * 1000 / 1001
    n = np.arange(0, 2 * 600 * nominal, 7)  # 20 minutes of drop-frame timecode, every 7th frame
    path = tmp_path / "take.csv"
    write_timecodes(path, [drop_frame_timecode(int(i), nominal) for i in n])
    read = read_live_link_csv(path)
    assert read.fps == pytest.approx(rate)
    np.testing.assert_allclose(read.seconds(), n / rate, rtol=0, atol=1e-9)
    assert drop_frame_timecode(1800, 30) == "00:01:00;02" and drop_frame_timecode(17982, 30) == "00:10:00;00"


def test_the_clock_passing_midnight_goes_on(tmp_path):
    path = tmp_path / "take.csv"
    write_timecodes(path, ["23:59:59:56.500", "23:59:59:58.500", "00:00:00:00.500", "00:00:00:04.500"])
    read = read_live_link_csv(path)
    np.testing.assert_allclose(np.diff(read.seconds()), [2 / 60, 2 / 60, 4 / 60], atol=1e-9)


@pytest.mark.parametrize(("timecodes", "words"), [
    (["00:00:01:10.000", "00:00:01:10.000"], "line 3: the timecode 00:00:01:10.000 does not advance"),
    (["00:00:01:10.000", "00:00:01:12.000", "00:00:01:08.000"], "line 4: the timecode 00:00:01:08.000 does not"),
    (["00:00:01:10.000", "00:00:01:75.000"], "frame field reaches 75"),
])
def test_a_timecode_that_goes_back_or_is_no_timecode_is_named(tmp_path, timecodes, words):
    path = tmp_path / "take.csv"
    write_timecodes(path, timecodes)
    with pytest.raises(InputError, match=re.escape(words)) as caught:
        read_live_link_csv(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_rate_the_user_types_is_kept_and_checked(tmp_path):
    path = tmp_path / "take.csv"
    write_timecodes(path, [timecode(f, 24) for f in (10, 12, 20, 23, 30)])
    assert read_live_link_csv(path, 48).fps == 48  # a rate the frame field allows: the user's word
    np.testing.assert_allclose(read_live_link_csv(path, 48).seconds(), np.array([10, 12, 20, 23, 48 + 6]) / 48)
    with pytest.raises(InputError, match=r"line 3: frame 12 of timecode 00:00:00:12.000 is past a 12 fps"):
        read_live_link_csv(path, 12)


# ------------------------------------------------------------------------------ a real take recorded by the app


def test_a_real_take_is_read_at_the_apps_60_fps_with_its_values_as_written():
    read = read_live_link_csv(REAL_TAKE)
    rows = read_rows(REAL_TAKE)
    assert rows[0] == LIVE_LINK_HEADER and len(rows) == 301
    assert read.fps == 60 and read.present == ARKIT_NAMES
    steps = np.diff(read.frames)  # rows about 30 a second, not evenly: 2 timecode frames, once 4
    assert np.all((np.abs(steps - 2) < 0.01) | (np.abs(steps - 4) < 0.01)) and np.sum(steps > 3) == 1
    assert read.seconds()[-1] - read.seconds()[0] == pytest.approx(10 - 0.08 / 60, abs=1e-9)  # 17:51.544-27:51.464
    cells = np.array([[float(cell) for cell in row[2:]] for row in rows[1:]])
    np.testing.assert_array_equal(read.weights, cells[:, :52])
    np.testing.assert_array_equal(np.concatenate([read.head, read.left_eye, read.right_eye], axis=1), cells[:, 52:])
    assert read.head_rotation_off and not make_take().head_rotation_off  # head rotation was off in the app


def test_the_apps_eye_signs_positive_yaw_toward_the_performers_right_positive_pitch_down():
    """The convention docs/arkit.md states, read from the app's own rows."""
    read = read_live_link_csv(REAL_TAKE)
    w = read.weights
    to_left = (w[:, ARKIT_INDEX["eyeLookOutLeft"]] > 0.4) & (w[:, ARKIT_INDEX["eyeLookInRight"]] > 0.4)
    to_right = (w[:, ARKIT_INDEX["eyeLookInLeft"]] > 0.4) & (w[:, ARKIT_INDEX["eyeLookOutRight"]] > 0.4)
    assert to_left.sum() > 20 and to_right.sum() > 20
    assert (read.left_eye[to_left, 0] < -0.1).all() and (read.right_eye[to_left, 0] < -0.1).all()
    assert (read.left_eye[to_right, 0] > 0.1).all() and (read.right_eye[to_right, 0] > 0.1).all()
    down, up = w[:, ARKIT_INDEX["eyeLookDownLeft"]] > 0.3, w[:, ARKIT_INDEX["eyeLookUpLeft"]] > 0.3
    assert down.sum() > 10 and up.sum() > 10
    assert (read.left_eye[down, 1] > 0.1).all() and (read.left_eye[up, 1] < -0.1).all()


# ------------------------------------------------------------------------------ the take on a scene's frames


@pytest.mark.parametrize("scene_fps", [24, 25, 29.97, 30, 60])
def test_the_real_take_on_a_scenes_frames(scene_fps):
    read = read_live_link_csv(REAL_TAKE)
    on_scene = on_scene_frames(read, scene_fps, 101)
    frames, seconds = on_scene.frames, read.seconds() - read.seconds()[0]
    assert on_scene.fps == scene_fps and np.all(np.diff(frames) > SNAP)  # keys never crowd
    # the take's length kept in seconds, every whole frame it spans keyed
    assert frames[0] == 101 and (frames[-1] - 101) / scene_fps == pytest.approx(seconds[-1], abs=SNAP / scene_fps)
    whole = np.arange(101, np.floor(101 + seconds[-1] * scene_fps + SNAP) + 1)
    assert np.isin(whole, frames).all()
    # every row keyed at its own time with its values as in the file
    rows = 101 + seconds * scene_fps
    at = np.abs(frames[None, :] - rows[:, None]).argmin(axis=1)
    assert np.abs(frames[at] - rows).max() <= SNAP + 1e-6
    np.testing.assert_array_equal(on_scene.weights[at], read.weights)
    np.testing.assert_array_equal(on_scene.left_eye[at], read.left_eye)
    # between rows, the straight line from one row's values to the next
    for channel in (ARKIT_INDEX["eyeBlinkLeft"], ARKIT_INDEX["jawOpen"]):
        line = np.interp(frames, frames[at], read.weights[:, channel])
        np.testing.assert_allclose(on_scene.weights[:, channel], line, atol=1e-12)


def test_one_row_and_exactly_whole_rows():
    take = make_take(1)
    one = on_scene_frames(LiveLinkTake(**{**take.__dict__, "fps": 30.0}), 24, 1)
    assert one.frames.tolist() == [1.0] and np.array_equal(one.weights, take.weights)
    take = LiveLinkTake(**{**make_take(5).__dict__, "fps": 60.0})  # rows 1/60 s apart on a 30 fps scene
    half = on_scene_frames(take, 30, 5)
    assert half.frames.tolist() == [5, 5.5, 6, 6.5, 7] and np.array_equal(half.weights, take.weights)
