"""ARKit's 52 names, and reading them from shape keys named in the habits characters use."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from sheap_blender.core.arkit.names import (
    ARKIT_INDEX,
    ARKIT_NAMES,
    N_ARKIT,
    channel_for_key,
    match_keys,
    unmatched_channels,
)

# Apple's ARFaceAnchor.BlendShapeLocation, written out here (alphabetically) apart from the module's list
APPLE_52 = {
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
}
UNSIDED = [name for name in ARKIT_NAMES if not name.endswith(("Left", "Right"))]


def test_the_52_are_arkits_in_live_link_faces_order():
    assert len(ARKIT_NAMES) == N_ARKIT == 52 and len(set(ARKIT_NAMES)) == 52
    assert set(ARKIT_NAMES) == APPLE_52
    assert ARKIT_NAMES[:2] == ("eyeBlinkLeft", "eyeLookDownLeft") and ARKIT_NAMES[-1] == "tongueOut"
    assert ARKIT_INDEX["jawRight"] + 1 == ARKIT_INDEX["jawLeft"]  # Live Link Face's CSV, unlike Apple's order
    assert ARKIT_INDEX["mouthRight"] + 1 == ARKIT_INDEX["mouthLeft"]
    assert all(ARKIT_NAMES[i] == name for name, i in ARKIT_INDEX.items())


def _split(name: str) -> tuple[list[str], str | None]:
    """`eyeBlinkLeft` -> (['eye', 'Blink'], 'Left'); `jawLeft` is a channel of its own: (['jaw'], 'Left')."""
    side = next((s for s in ("Left", "Right") if name.endswith(s)), None)
    base = name[: -len(side)] if side else name
    return re.findall(r"[A-Z]?[a-z]+", base), side


def _short_side(name: str, join: Callable[[list[str], str], str]) -> str:
    """The name with its side as L / R joined by `join(words, side)`; an unsided name as it is."""
    words, side = _split(name)
    return join(words, side[0]) if side else name


def _lower_camel(words: list[str]) -> str:
    return words[0].lower() + "".join(w[0].upper() + w[1:] for w in words[1:])


HABITS: dict[str, tuple[Callable[[str], str], str]] = {  # habit: (spelling of a name, eyeBlinkLeft spelled so)
    "lowerCamel": (lambda n: n, "eyeBlinkLeft"),
    "UpperCamel": (lambda n: n[0].upper() + n[1:], "EyeBlinkLeft"),
    "_L suffix": (lambda n: _short_side(n, lambda w, s: f"{_lower_camel(w)}_{s}"), "eyeBlink_L"),
    ".L suffix (Blender)": (lambda n: _short_side(n, lambda w, s: f"{_lower_camel(w)}.{s}"), "eyeBlink.L"),
    "Capital_Words_L": (lambda n: _short_side(n, lambda w, s: "_".join(x.capitalize() for x in w) + f"_{s}"),
                        "Eye_Blink_L"),
    "L_ prefix": (lambda n: _short_side(n, lambda w, s: f"{s}_{_lower_camel(w)}"), "L_eyeBlink"),
    "Character Creator": (lambda n: f"A{ARKIT_INDEX[n] + 1:02d}_" + "_".join(
        x.capitalize() for x in re.findall(r"[A-Z]?[a-z]+", n)), "A01_Eye_Blink_Left"),
    "Maya blendShape node": (lambda n: f"blendShape1.{n}", "blendShape1.eyeBlinkLeft"),
    "UPPER CASE": (str.upper, "EYEBLINKLEFT"),
    "lower case": (str.lower, "eyeblinkleft"),
    "snake_case": (lambda n: "_".join(x.lower() for x in re.findall(r"[A-Z]?[a-z]+", n)), "eye_blink_left"),
    "UPPER_SNAKE_L": (lambda n: _short_side(n, lambda w, s: "_".join(x.upper() for x in w) + f"_{s}"),
                      "EYE_BLINK_L"),
    "words with spaces": (lambda n: " ".join(re.findall(r"[A-Z]?[a-z]+", n)), "eye Blink Left"),
    "MetaHuman-like camelL": (lambda n: _short_side(n, lambda w, s: f"CTRL_expressions_{_lower_camel(w)}{s}"),
                              "CTRL_expressions_eyeBlinkL"),
}


@pytest.mark.parametrize("habit", HABITS)
def test_every_channel_is_read_in_every_naming_habit(habit):
    spell, example = HABITS[habit]
    assert spell("eyeBlinkLeft") == example  # the generator writes the habit it is named for
    spelled = {name: spell(name) for name in ARKIT_NAMES}
    assert len(set(spelled.values())) == 52
    assert {name: channel_for_key(key) for name, key in spelled.items()} == {name: name for name in ARKIT_NAMES}


def test_sides_are_not_confused():
    assert channel_for_key("eyeBlink_R") == "eyeBlinkRight" and channel_for_key("R_eyeBlink") == "eyeBlinkRight"
    assert channel_for_key("Mouth_Smile_L") == "mouthSmileLeft"
    assert channel_for_key("jawLeft") == "jawLeft" and channel_for_key("Jaw_R") == "jawRight"
    assert channel_for_key("mouthLeft") == "mouthLeft" and channel_for_key("MouthRight") == "mouthRight"


@pytest.mark.parametrize("key", ["Basis", "Key 1", "head", "mouthSmile", "eyeBlink", "Mouth_Smile", "EYEBLINK",
                                 "", "Left", "L", "R_", "Eye_L", "jaw", "tongue", "HeadYaw", "LeftEyePitch",
                                 "Timecode", "BlendShapeCount", "Smile_L", "Brow_Raise_Inner_L"])
def test_names_that_are_not_arkit_give_none(key):
    assert channel_for_key(key) is None


@pytest.mark.parametrize("side", ["_L", "_R", ".L", "Left", "_Right"])
def test_ict_facekit_split_halves_of_an_unsided_shape_drive_the_whole_channel(side):
    assert len(UNSIDED) == 12 and "browInnerUp" in UNSIDED and "cheekPuff" in UNSIDED
    assert {name: channel_for_key(name + side) for name in UNSIDED} == {name: name for name in UNSIDED}
    assert channel_for_key("browInnerUp_L") == channel_for_key("browInnerUp_R") == "browInnerUp"


def test_match_keys_keeps_the_keys_order_and_marks_the_rest_none():
    keys = ["Basis", "jawOpen", "Eye_Blink_R", "Key 1", "eyeBlink_L", "browInnerUp_L", "browInnerUp_R"]
    mapping = match_keys(keys)
    assert list(mapping) == keys
    assert list(mapping.values()) == [None, "jawOpen", "eyeBlinkRight", None, "eyeBlinkLeft", "browInnerUp",
                                      "browInnerUp"]
    assert match_keys([]) == {}


def test_unmatched_channels_in_arkit_order():
    assert unmatched_channels({}) == list(ARKIT_NAMES)
    assert unmatched_channels({"Basis": None, "Key 1": None}) == list(ARKIT_NAMES)
    all_but_two = {f"A{i:02d}_{name}": name for i, name in enumerate(ARKIT_NAMES)
                   if name not in ("jawLeft", "cheekPuff")}
    assert unmatched_channels(all_but_two) == ["jawLeft", "cheekPuff"]
    assert unmatched_channels(match_keys(ARKIT_NAMES)) == []
    halves = match_keys(["cheekPuff_L", "cheekPuff_R", "jawOpen", "Basis"])
    assert unmatched_channels(halves) == [name for name in ARKIT_NAMES if name not in ("cheekPuff", "jawOpen")]


@pytest.mark.parametrize(("key", "channel"), [("eyeBlink_L.001", "eyeBlinkLeft"), ("eyeBlink_L1", "eyeBlinkLeft"),
                                              ("Mouth_Smile_R.001", "mouthSmileRight"),
                                              ("browInnerUp_R.002", "browInnerUp")])
def test_a_trailing_duplicate_number_is_ignored(key, channel):
    assert channel_for_key(key) == channel
