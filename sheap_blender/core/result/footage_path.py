"""Where a result's footage is: the path it names, absolute, or relative to the result file's folder
and then the working folder (the same rule for Blender's background and the backend's preview)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_footage(footage: str, result_path: str | os.PathLike) -> Path | None:
    """The footage file, folder or printf pattern (`frames/%04d.png`, whose folder must exist), or None."""
    candidate = Path(footage)
    options = ([candidate] if candidate.is_absolute()
               else [Path(result_path).parent / candidate, Path.cwd() / candidate])
    for option in options:
        if option.exists() or (option.parent.is_dir() and "%" in option.name):
            return option
    return None
