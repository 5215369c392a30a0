"""What the importer checks before it touches the scene: the result and FLAME pair, the rig to re-animate, names.

Problems that make the input unusable raise InputError (one line); the rest become the import's warnings.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from ..core.camera import non_square_boxes, valid_boxes
from ..core.errors import InputError
from ..core.flame.model import FlameModel
from ..core.result.result_format import Result


def check_pair(result_path: Path, result: Result, model: FlameModel) -> list[str]:
    """Problems that make the pair unusable raise InputError; the rest become warnings."""
    warnings = []
    boxes = result.params["crop_box"]
    bad = np.flatnonzero(~valid_boxes(boxes))
    if bad.size:
        raise InputError(result_path, f"crop_box of row {int(bad[0])} has no area: {boxes[bad[0]].tolist()}")
    skewed = int(non_square_boxes(boxes).sum())
    if skewed:
        warnings.append(f"{skewed} crop boxes are not square: the camera follows their width, "
                        "the vertical placement can be off on those frames")
    try:
        fov = result.fov_deg
    except ValueError:
        raise InputError(result_path, "malformed fov_deg") from None
    if not 1.0 < fov < 179.0:
        raise InputError(result_path, f"field of view {fov} degrees is not usable")
    expected = result.metadata.get("flame_sha256", "")
    if expected and model.source_sha256 and expected != model.source_sha256:
        warnings.append("this FLAME file is not the one the result was made with (SHA-256 differs): "
                        "the head may not match the footage")
    return warnings


def check_rig(root: bpy.types.Object, parts: dict[str, bpy.types.Object], model: FlameModel,
              flame_path: str | os.PathLike) -> None:
    """A rig to re-animate is whole and was built with this FLAME model, else InputError: import as a new rig."""
    missing = [r for r in ("armature", "head", "camera") if r not in parts]
    if missing:
        raise InputError(None, f"the rig {root.name!r} lacks its {', '.join(missing)}: import as a new rig")
    head_mesh = parts["head"].data
    if len(head_mesh.vertices) != model.n_vertices:
        raise InputError(flame_path, f"the rig {root.name!r} has {len(head_mesh.vertices)} vertices, "
                                     f"this FLAME model {model.n_vertices}: import as a new rig")
    if root.get("sheap_flame_sha256", "") != model.source_sha256:
        raise InputError(flame_path, f"the rig {root.name!r} was built with another FLAME model: "
                                     "import as a new rig")


def rig_names(result: Result, result_path: Path, is_demo: bool) -> tuple[str, str]:
    """The clip's stem (objects are named "<stem> rig" ...) and the rig collection's name."""
    footage = result.metadata.get("footage", "")
    stem = Path(footage.rstrip("/\\")).stem if footage else ""
    stem = stem.replace("%", "") or result_path.name.split(".")[0] or "clip"
    collection = f"SHeaP {stem}" + (" (demo)" if is_demo else "")
    return stem, collection
