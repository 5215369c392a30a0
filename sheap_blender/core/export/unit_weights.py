"""Shape-key weights remapped into [0, 1], the geometry changed to match, so every frame is the same mesh.

A shape key k adds w_k D_k to the basis (D_k: its offset from the basis). With a_k <= every w_k <= b_k,
write w_k = a_k + (b_k - a_k) u_k: the mesh is (basis + sum a_k D_k) + sum u_k (b_k - a_k) D_k, so
a basis moved by a_k D_k, offsets scaled by (b_k - a_k) and weights u_k in [0, 1] give the same
vertices for any weights. a_k = min(0, lowest), b_k = max(1, highest): a key already inside [0, 1]
is left as it is, and weight 0 maps to u = -a / (b - a).
"""

from __future__ import annotations

import numpy as np


def unit_ranges(lowest: np.ndarray, highest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per key (a, b): [0, 1] widened to take the key's lowest and highest weight."""
    return np.minimum(np.asarray(lowest, dtype=np.float64), 0.0), np.maximum(np.asarray(highest, dtype=np.float64), 1.0)


def to_unit(weights: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Weights w -> u = (w - a) / (b - a)."""
    return (np.asarray(weights, dtype=np.float64) - a) / (np.asarray(b, dtype=np.float64) - a)


def unit_geometry(basis: np.ndarray, offsets: np.ndarray, a: np.ndarray,
                  b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) basis, (K, V, 3) offsets D_k -> the moved basis and the scaled offsets (b_k - a_k) D_k."""
    offsets = np.asarray(offsets, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    moved = np.asarray(basis, dtype=np.float64) + np.einsum("k,kvc->vc", a, offsets)
    return moved, offsets * (b - a)[:, None, None]
