"""Image sequences, one rule for the backend that reads them and the extension that shows them.

A sequence is a folder of images (in natural order: frame2 before frame10) or a printf pattern
such as `frames/%04d.png` (every file it matches, from the lowest number up to the first gap).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# what OpenCV reads (the backend) and Blender shows (the camera background, the compositor)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr", ".jp2", ".hdr"})


def natural_key(path: Path) -> list:
    """Sort key putting frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def folder_images(folder: Path) -> list[Path]:
    """The images of a folder, in natural order."""
    return sorted((p for p in folder.iterdir() if is_image(p) and p.is_file()), key=natural_key)


def is_pattern(path: str | os.PathLike) -> bool:
    return "%" in Path(path).name


def pattern_images(pattern: str | os.PathLike) -> list[tuple[int, Path]]:
    """(number, file) of every file `frames/%04d.png` matches, from its lowest number up to the first gap."""
    path = Path(pattern)
    regex = re.compile("^" + re.sub(r"%0?(\d*)d", lambda m: r"(\d{%s,})" % (m.group(1) or 1),
                                    re.escape(path.name).replace(r"\%", "%")) + "$")
    numbered = sorted((int(m.group(1)), path.parent / name) for name in os.listdir(path.parent)
                      if (m := regex.match(name)))
    if not numbered:
        return []
    first = numbered[0][0]
    return [(number, file) for i, (number, file) in enumerate(numbered) if number == first + i]
