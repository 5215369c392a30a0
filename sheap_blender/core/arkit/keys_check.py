"""How close made ARKit keys are to a head's authored ones (benchmarks/arkit_keys.py, tests), and the baseline.

Per channel: the cosine between the made and the authored displacements (all vertices, x y z together);
the magnitude ratio on the authored key's most-moved vertices (those moving at least half its largest
offset: how far the made key moves them over how far the authored key does); and for every Left/Right
pair, whether each made side is closer to its own authored side than to the other (not swapped).
The baseline, "five points and nearest vertices": a similarity on the two eye centres, the nose tip
and the mouth corners, then each vertex takes the offsets of the reference's nearest vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh_transfer import fit_similarity
from .names import ARKIT_INDEX, ARKIT_NAMES
from .reference import ArkitReference

MOST_MOVED = 0.5  # of the authored key's largest offset


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(5, 3): the face's right and left eye centres, nose tip, right and left mouth corners (Multi-PIE 68)."""
    return np.array([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])


def five_point_baseline(vertices: np.ndarray, landmarks: np.ndarray, reference: ArkitReference) -> np.ndarray:
    """(52, V, 3): the reference's shapes by a five-point similarity and the nearest reference vertex."""
    ref_marks = reference.neutral[reference.landmarks68]
    similarity = fit_similarity(five_points(ref_marks), five_points(landmarks))
    face = similarity.apply(reference.neutral[:reference.face_vertices])
    nearest = np.empty(len(vertices), dtype=np.int64)
    for start in range(0, len(vertices), 1024):
        chunk = vertices[start:start + 1024]
        nearest[start:start + 1024] = np.argmin(((chunk[:, None] - face[None]) ** 2).sum(-1), axis=1)
    shapes = reference.offsets[:, nearest] @ (similarity.scale * similarity.rotation.T)
    keys = np.zeros((len(ARKIT_NAMES), len(vertices), 3))
    np.add.at(keys, [ARKIT_INDEX[c] for c in reference.channels], shapes)
    return keys


@dataclass(frozen=True)
class ChannelScore:
    name: str
    cosine: float
    magnitude: float  # made / authored on the authored key's most-moved vertices


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def score_channels(made: np.ndarray, authored: dict[str, np.ndarray]) -> list[ChannelScore]:
    """One score per authored channel, in ARKIT_NAMES order; `made` is (52, V, 3) in ARKIT_NAMES order."""
    scores = []
    for name in ARKIT_NAMES:
        if name not in authored:
            continue
        truth, key = authored[name], made[ARKIT_INDEX[name]]
        moved = np.linalg.norm(truth, axis=1)
        top = moved >= MOST_MOVED * moved.max()
        magnitude = float(np.linalg.norm(key[top], axis=1).mean() / max(moved[top].mean(), 1e-12))
        scores.append(ChannelScore(name, cosine(key, truth), magnitude))
    return scores


def swapped_sides(made: np.ndarray, authored: dict[str, np.ndarray]) -> list[str]:
    """The Left/Right pairs where a made side is closer to the authored other side than to its own."""
    out = []
    for left in ARKIT_NAMES:
        right = left[:-4] + "Right"
        if not left.endswith("Left") or left not in authored or right not in authored:
            continue
        made_left, made_right = made[ARKIT_INDEX[left]], made[ARKIT_INDEX[right]]
        if (cosine(made_left, authored[left]) < cosine(made_left, authored[right])
                or cosine(made_right, authored[right]) < cosine(made_right, authored[left])):
            out.append(left[:-4])
    return out
