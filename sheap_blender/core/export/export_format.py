"""Export formats: the format a file name's extension picks, and what each format carries.

The table is what the extension relies on when it exports a head or a driven character
(sheap_blender/export/head.py): Blender's exporter for each format, whether the file keeps the
rig (bones, shape keys) or bakes the deformed mesh per frame, and whether Blender's own importer
of that format clamps shape-key weights to [0, 1] on playback (it then gets weights remapped into
[0, 1], unit_weights.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class ExportFormat:
    """One file format an export can write."""

    name: str  # "GLTF", "FBX", "ALEMBIC", "USD"
    label: str  # what users read
    extensions: tuple[str, ...]
    keeps_rig: bool  # bones and shape keys in the file (else a per-frame vertex cache)
    unit_weights: bool  # shape-key weights remapped into [0, 1] (the format's Blender importer clamps to it)
    camera_lens: bool  # can animate a camera's focal length and lens shift


FORMATS = (
    ExportFormat("GLTF", "glTF 2.0", (".glb", ".gltf"), keeps_rig=True, unit_weights=True, camera_lens=False),
    ExportFormat("FBX", "FBX", (".fbx",), keeps_rig=True, unit_weights=False, camera_lens=True),
    ExportFormat("ALEMBIC", "Alembic", (".abc",), keeps_rig=False, unit_weights=False, camera_lens=True),
    ExportFormat("USD", "USD", (".usd", ".usdc", ".usda"), keeps_rig=True, unit_weights=True, camera_lens=True),
)
EXTENSIONS = tuple(ext for fmt in FORMATS for ext in fmt.extensions)


def format_for(path: str | os.PathLike) -> ExportFormat:
    """The format `path`'s extension picks (case-insensitive); InputError for any other extension."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS:
        if suffix in fmt.extensions:
            return fmt
    wanted = ", ".join(EXTENSIONS)
    what = f"extension {suffix!r}" if suffix else "no extension"
    raise InputError(path, f"{what}: the export format is picked by the file's extension ({wanted})")
