"""A character's shape key -> ARKit channel mapping as a small JSON preset file.

    {"format": "sheap-arkit-mapping-1", "mapping": {"EyeBlink_L": "eyeBlinkLeft", "Extra": null, ...}}

Keys are shape-key names, values ARKit names (`ARKIT_NAMES`) or null (the key is not driven).
"""

from __future__ import annotations

import json
import os

from .arkit_names import ARKIT_INDEX
from .atomic_file import replacing
from .errors import InputError

FORMAT = "sheap-arkit-mapping-1"
MAX_BYTES = 1 << 20  # a mapping of a few hundred keys is a few kB


def write_preset(path: str | os.PathLike, mapping: dict[str, str | None]) -> None:
    """Write `mapping` (key -> ARKit name or None) as a preset file, atomically."""
    bad = [channel for channel in mapping.values() if channel is not None and channel not in ARKIT_INDEX]
    if bad:
        raise ValueError(f"not ARKit channels: {bad}")
    text = json.dumps({"format": FORMAT, "mapping": dict(mapping)}, indent=1, ensure_ascii=False)
    with replacing(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def read_preset(path: str | os.PathLike) -> dict[str, str | None]:
    """The mapping in a preset file; InputError (one line) if the file is not one."""
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise InputError(path, "too large for an ARKit mapping preset")
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise InputError(path, "preset file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not an ARKit mapping preset ({error.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("mapping"), dict):
        raise InputError(path, f"not an ARKit mapping preset (expected a JSON object with format {FORMAT!r})")
    mapping = data["mapping"]
    for key, channel in mapping.items():
        if channel is not None and channel not in ARKIT_INDEX:
            raise InputError(path, f"key {key!r}: {channel!r} is not one of the 52 ARKit channels")
    return mapping
