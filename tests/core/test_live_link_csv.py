"""Live Link Face CSV takes: the app's exact layout, timecodes, reading by header name, bad files named."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from sheap_blender.core.arkit_names import ARKIT_INDEX, ARKIT_NAMES
from sheap_blender.core.errors import InputError
from sheap_blender.core.live_link_csv import (
    COLUMNS,
    LiveLinkTake,
    read_live_link_csv,
    timecode,
    timecode_frame,
    write_live_link_csv,
)

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


def assert_same_take(read: LiveLinkTake, take: LiveLinkTake) -> None:
    assert np.array_equal(read.frames, take.frames)
    for name in ("weights", "head", "left_eye", "right_eye"):
        np.testing.assert_allclose(getattr(read, name), getattr(take, name), rtol=0, atol=1e-6, err_msg=name)


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
    assert first["Timecode"] == "00:00:03:10.000"  # frame 100 at 30 fps


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


@pytest.mark.parametrize("fps", [24, 29.97, 60])
def test_write_then_read_gives_the_take_back(tmp_path, fps):
    path, take = tmp_path / "take.csv", make_take(40, seed=round(fps), first_frame=3600 * round(fps) - 20)
    write_live_link_csv(path, take, fps)
    read = read_live_link_csv(path, fps)
    assert_same_take(read, take)
    assert read.present == ARKIT_NAMES


def test_an_existing_take_is_replaced_whole(tmp_path):
    path = tmp_path / "take.csv"
    write_live_link_csv(path, make_take(50, seed=1), 30)
    write_live_link_csv(path, make_take(3, seed=2), 30)
    assert_same_take(read_live_link_csv(path, 30), make_take(3, seed=2))
    assert os.listdir(tmp_path) == ["take.csv"]


def test_columns_are_read_by_name_in_any_order(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    rows = read_rows(path)
    order = np.random.default_rng(3).permutation(63)
    assert list(order[:2]) != [0, 1]
    write_rows(path, [[row[i] for i in order] for row in rows])
    assert_same_take(read_live_link_csv(path, 30), take)


def test_missing_columns_read_zero_and_are_named_in_present(tmp_path):
    path, take = tmp_path / "take.csv", make_take()
    write_live_link_csv(path, take, 30)
    rows = read_rows(path)
    dropped = {"MouthSmileLeft", "CheekPuff", "JawLeft", "HeadYaw", "RightEyeRoll", "BlendShapeCount"}
    keep = [i for i, name in enumerate(rows[0]) if name not in dropped]
    write_rows(path, [[row[i] for i in keep] for row in rows])
    read = read_live_link_csv(path, 30)
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
    assert_same_take(read_live_link_csv(path, 30), take)


def test_a_take_as_live_link_face_writes_it(tmp_path):
    path = tmp_path / "MySlate_7_iPhone.csv"
    path.write_text(",".join(LIVE_LINK_HEADER) + "\n" + LIVE_LINK_ROWS, encoding="utf-8", newline="")
    read = read_live_link_csv(path, 60)
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
