"""ARKit's 52 face blendshape names, and matching a character's shape-key names to them.

Apple's ARKit defines 52 face coefficients in 0..1 (`ARFaceAnchor.BlendShapeLocation`); "Left" is the
face's own left. Characters name their keys in many habits: `eyeBlinkLeft`, `EyeBlinkLeft`,
`eyeBlink_L`, `eyeBlink.L`, `Eye_Blink_L`, `L_eyeBlink`, Character Creator's `A01_Brow_Inner_Up`,
Maya's `blendShape1.eyeBlinkLeft`, any case. `channel_for_key` reads them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# The 52 in Live Link Face's CSV order (docs/arkit.md): note jawRight before jawLeft and mouthRight
# before mouthLeft, unlike Apple's and the streaming protocol's order.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
N_ARKIT = len(ARKIT_NAMES)
ARKIT_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}

_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> list[str]:
    """Lower-case words of a key name: split at separators, camel-case humps and digits."""
    return [word.lower() for part in re.split(r"[\s_.\-:|/]+", name) for word in _WORD.findall(part)]


def _canonical(words: list[str]) -> str:
    """The words joined, a side word (L, R, Left, Right) moved to the end: `l eye blink` -> `eyeblinkleft`."""
    sides = [_SIDES[w] for w in words if w in _SIDES]
    rest = [w for w in words if w not in _SIDES]
    return "".join(rest) + (sides[-1] if sides else "")


_BY_CANONICAL = {_canonical(_words(name)): name for name in ARKIT_NAMES}
# Shapes without a side that some rigs split into halves (ICT-FaceKit's browInnerUp_L / _R): each half
# takes the whole channel.
_UNSIDED = {_canonical(_words(name)): name for name in ARKIT_NAMES if not name.endswith(("Left", "Right"))}


def _channel_of_words(words: list[str]) -> str | None:
    """The ARKit name these words spell exactly (a side word anywhere), or None; conflicting sides spell none."""
    if len({_SIDES[w] for w in words if w in _SIDES}) > 1:
        return None
    if not any(w not in _SIDES for w in words):
        return None
    canonical = _canonical(words)
    if canonical in _BY_CANONICAL:
        return _BY_CANONICAL[canonical]
    unsided = "".join(w for w in words if w not in _SIDES)
    if unsided != canonical and unsided in _UNSIDED:
        return _UNSIDED[unsided]
    return None


def _is_combination(words: list[str]) -> bool:
    """Whether two runs of these words that share no word spell two different ARKit names (a corrective)."""
    spans = [(i, j, channel) for i in range(len(words)) for j in range(i + 1, len(words) + 1)
             if (channel := _channel_of_words(words[i:j]))]
    return any(a[2] != b[2] and (a[1] <= b[0] or b[1] <= a[0]) for a in spans for b in spans)


@lru_cache(maxsize=8192)  # the panel reads every key's name on each redraw
def channel_for_key(key_name: str) -> str | None:
    """The ARKit name a shape key drives, or None; leading words that are not part of it (prefixes) are skipped.

    None for a combination or corrective of several channels (`jawOpen_mouthClose`,
    `mouthSmileLeft_eyeSquintLeft`) and for side words that disagree (`eyeBlink_L_Right`).
    """
    words = _words(key_name)
    while words and words[-1].isdigit():  # Blender's duplicate suffix (.001) or a trailing number
        words.pop()
    if len({_SIDES[w] for w in words if w in _SIDES}) > 1:  # L_eyeBlinkRight: which eye?
        return None
    for start in range(len(words)):
        tail = words[start:]
        if not any(w not in _SIDES for w in tail):
            break
        channel = _channel_of_words(tail)
        if channel is not None:
            return None if _is_combination(words) else channel
    squashed = re.sub(r"[^a-z]", "", key_name.lower())  # all capitals without separators: EYEBLINKLEFT
    return _BY_CANONICAL.get(squashed)


def match_keys(key_names: Iterable[str]) -> dict[str, str | None]:
    """Each shape key's ARKit channel (None where it has none), in the keys' order."""
    return {key: channel_for_key(key) for key in key_names}


def unmatched_channels(mapping: dict[str, str | None]) -> list[str]:
    """The ARKit names no key is mapped to, in ARKIT_NAMES order."""
    driven = {channel for channel in mapping.values() if channel}
    return [name for name in ARKIT_NAMES if name not in driven]


_NUMBERED = re.compile(r"^(.*?)[._ -]?\d+$")


def is_half(key_a: str, key_b: str, channel: str) -> bool:
    """Whether two keys on one unsided channel are its two halves (ICT-FaceKit's browInnerUp_L and _R)."""
    if channel.endswith(("Left", "Right")):
        return False
    sides = [{_SIDES[w] for w in _words(name) if w in _SIDES} for name in (key_a, key_b)]
    return len(sides[0]) == len(sides[1]) == 1 and sides[0] != sides[1]


def duplicate_keys(mapping: dict[str, str | None]) -> dict[str, list[str]]:
    """Keys that would drive a channel a second time: channel -> the extra keys (all but the one kept).

    `eyeBlinkLeft` and `eyeBlinkLeft.001` both read eyeBlinkLeft: the one without a number suffix (else the
    first) is kept. A split channel's two halves (`browInnerUp_L`, `browInnerUp_R`) are not duplicates.
    """
    by_channel: dict[str, list[str]] = {}
    for key, channel in mapping.items():
        if channel:
            by_channel.setdefault(channel, []).append(key)
    out = {}
    for channel, keys in by_channel.items():
        if len(keys) < 2:
            continue
        ordered = sorted(keys, key=lambda k: (_NUMBERED.match(k) is not None, keys.index(k)))
        kept: list[str] = []
        for key in ordered:
            if not kept or (len(kept) == 1 and is_half(kept[0], key, channel)):
                kept.append(key)
        extra = [key for key in keys if key not in kept]
        if extra:
            out[channel] = extra
    return out
