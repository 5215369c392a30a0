"""ARKit's 52 face blendshape names, and matching a character's shape-key names to them.

Apple's ARKit defines 52 face coefficients in 0..1 (`ARFaceAnchor.BlendShapeLocation`); "Left" is the
face's own left. Characters name their keys in many habits: `eyeBlinkLeft`, `EyeBlinkLeft`,
`eyeBlink_L`, `eyeBlink.L`, `Eye_Blink_L`, `L_eyeBlink`, Character Creator's `A01_Brow_Inner_Up`,
Maya's `blendShape1.eyeBlinkLeft`, any case. `channel_for_key` reads them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def channel_for_key(key_name: str) -> str | None:
    """The ARKit name a shape key drives, or None; leading words that are not part of it (prefixes) are skipped."""
    words = _words(key_name)
    while words and words[-1].isdigit():  # Blender's duplicate suffix (.001) or a trailing number
        words.pop()
    for start in range(len(words)):
        tail = words[start:]
        if not any(w not in _SIDES for w in tail):
            break
        canonical = _canonical(tail)
        if canonical in _BY_CANONICAL:
            return _BY_CANONICAL[canonical]
        unsided = "".join(w for w in tail if w not in _SIDES)
        if unsided != canonical and unsided in _UNSIDED:
            return _UNSIDED[unsided]
    squashed = re.sub(r"[^a-z]", "", key_name.lower())  # all capitals without separators: EYEBLINKLEFT
    return _BY_CANONICAL.get(squashed)


def match_keys(key_names: Iterable[str]) -> dict[str, str | None]:
    """Each shape key's ARKit channel (None where it has none), in the keys' order."""
    return {key: channel_for_key(key) for key in key_names}


def unmatched_channels(mapping: dict[str, str | None]) -> list[str]:
    """The ARKit names no key is mapped to, in ARKIT_NAMES order."""
    driven = {channel for channel in mapping.values() if channel}
    return [name for name in ARKIT_NAMES if name not in driven]
