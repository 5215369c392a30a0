"""A character's shape key -> ARKit channel mapping, and its per-channel adjustments, as a small JSON preset file.

    {"format": "sheap-arkit-mapping-2",
     "mapping": {"EyeBlink_L": "eyeBlinkLeft", "Extra": null, ...},
     "channels": {"jawOpen": {"gain": 1.2, "offset": 0.0, "smoothing": 1.5}, ...}}

Keys are shape-key names, values ARKit names (`ARKIT_NAMES`) or null (the key is not driven); `channels`
holds an animator's gain, offset and smoothing (scene frames) per ARKit channel, only where they are not the
defaults (1, 0, 0). Version 1 files (no `channels`) are read too.
"""

from __future__ import annotations

import json
import math
import os

from ..atomic_file import replacing
from ..errors import InputError
from .names import ARKIT_INDEX

FORMAT = "sheap-arkit-mapping-2"
READABLE = ("sheap-arkit-mapping-1", FORMAT)
MAX_BYTES = 1 << 20  # a mapping of a few hundred keys is a few kB
DEFAULTS = {"gain": 1.0, "offset": 0.0, "smoothing": 0.0}


def write_preset(path: str | os.PathLike, mapping: dict[str, str | None],
                 channels: dict[str, dict[str, float]] | None = None) -> None:
    """Write `mapping` (key -> ARKit name or None) and `channels` (ARKit name -> adjustments), atomically."""
    bad = [channel for channel in [*mapping.values(), *(channels or {})] if channel is not None
           and channel not in ARKIT_INDEX]
    if bad:
        raise ValueError(f"not ARKit channels: {bad}")
    adjusted = {name: {k: float(v) for k, v in values.items() if k in DEFAULTS and float(v) != DEFAULTS[k]}
                for name, values in (channels or {}).items()}
    document = {"format": FORMAT, "mapping": dict(mapping),
                "channels": {name: values for name, values in adjusted.items() if values}}
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_document(path: str | os.PathLike) -> dict:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise InputError(path, "too large for an ARKit mapping preset")
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise InputError(path, "preset file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not an ARKit mapping preset ({error.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE or not isinstance(data.get("mapping"), dict):
        raise InputError(path, f"not an ARKit mapping preset (expected a JSON object with format {FORMAT!r})")
    return data


def read_preset_with_channels(path: str | os.PathLike) -> tuple[dict[str, str | None], dict[str, dict[str, float]]]:
    """The mapping and the per-channel adjustments (every channel named: all three values) in a preset file."""
    data = _read_document(path)
    mapping = data["mapping"]
    for key, channel in mapping.items():
        if channel is not None and channel not in ARKIT_INDEX:
            raise InputError(path, f"key {key!r}: {channel!r} is not one of the 52 ARKit channels")
    channels = data.get("channels", {})
    if not isinstance(channels, dict):
        raise InputError(path, "'channels' is not a JSON object")
    out = {}
    for name, values in channels.items():
        if name not in ARKIT_INDEX:
            raise InputError(path, f"channels: {name!r} is not one of the 52 ARKit channels")
        if not isinstance(values, dict) or any(k not in DEFAULTS for k in values):
            raise InputError(path, f"channels: {name!r}: expected gain, offset, smoothing")
        adjusted = {**DEFAULTS, **values}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in adjusted.values()) or adjusted["smoothing"] < 0:
            raise InputError(path, f"channels: {name!r}: gain, offset and smoothing (>= 0) must be numbers")
        out[name] = {k: float(v) for k, v in adjusted.items()}
    return mapping, out


def read_preset(path: str | os.PathLike) -> dict[str, str | None]:
    """The mapping in a preset file; InputError (one line) if the file is not one."""
    return read_preset_with_channels(path)[0]
