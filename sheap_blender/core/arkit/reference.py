"""An ARKit reference head: a neutral mesh, its ARKit-named shapes as vertex offsets, its 68 landmarks.

The shipped one is ICT-FaceKit's face (USC ICT, MIT licence: data/ICT-FaceKit-LICENSE.txt), made by
scripts/make_arkit_references.py. The same format holds the tests' second source (Apple's ARKit mesh).
Coordinates are metres, +Y up, the face looking toward +Z, +X the face's own left (as FLAME and ARKit).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safetensors_file import read_safetensors
from .names import channel_for_key

ICT_FACEKIT = Path(__file__).with_name("data") / "ict_facekit_arkit.safetensors"


@dataclass(frozen=True)
class ArkitReference:
    name: str
    neutral: np.ndarray  # (V, 3) metres
    triangles: np.ndarray  # (T, 3)
    offsets: np.ndarray  # (S, V, 3) metres, one per shape
    shape_names: tuple[str, ...]  # the source's own names (ICT: eyeBlink_L, browInnerUp_L, ...)
    landmarks68: np.ndarray  # (68,) vertex ids, Multi-PIE layout
    face_vertices: int  # vertices [0, face_vertices) are the face the shapes move
    eye_centres: np.ndarray | None = None  # (2, 3): the face's left eye, then its right

    @property
    def channels(self) -> tuple[str, ...]:
        """The ARKit channel of each shape (split halves such as browInnerUp_L share one)."""
        return tuple(channel_for_key(name) or name for name in self.shape_names)

    @property
    def face_triangles(self) -> np.ndarray:
        return self.triangles[(self.triangles < self.face_vertices).all(axis=1)]


def read_reference(path: str | os.PathLike) -> ArkitReference:
    """Read a reference file written by scripts/make_arkit_references.py."""
    tensors, metadata = read_safetensors(path)
    try:
        names = tuple(json.loads(metadata["shape_names"]))
        reference = ArkitReference(
            name=metadata.get("source", Path(path).name),
            neutral=tensors["neutral"].astype(np.float64),
            triangles=tensors["triangles"].astype(np.int64),
            offsets=tensors["offsets_mm"].astype(np.float64) / 1000.0,
            shape_names=names,
            landmarks68=tensors["landmarks68"].astype(np.int64),
            face_vertices=int(metadata["face_vertices"]),
            eye_centres=tensors["eye_centres"].astype(np.float64) if "eye_centres" in tensors else None,
        )
    except (KeyError, ValueError) as error:
        raise InputError(path, f"not an ARKit reference file ({error})") from None
    if reference.offsets.shape != (len(names), *reference.neutral.shape) or reference.landmarks68.shape != (68,):
        raise InputError(path, "not an ARKit reference file: sizes do not agree")
    return reference


@cache
def load_reference() -> ArkitReference:
    """The shipped calibration reference, ICT-FaceKit."""
    return read_reference(ICT_FACEKIT)
