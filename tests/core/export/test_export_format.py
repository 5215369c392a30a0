"""The export format a file name picks, and shape-key weights remapped into [0, 1] with the same vertices."""

from __future__ import annotations

import numpy as np
import pytest

from sheap_blender.core.errors import InputError
from sheap_blender.core.export.export_format import format_for
from sheap_blender.core.export.unit_weights import to_unit, unit_geometry, unit_ranges


@pytest.mark.parametrize(("name", "expected"), [
    ("head.glb", "GLTF"), ("head.GLTF", "GLTF"), ("a.b/head.fbx", "FBX"), ("head.abc", "ALEMBIC"),
    ("head.usd", "USD"), ("head.usdc", "USD"), ("head.USDA", "USD"),
])
def test_extension_picks_the_format(name, expected):
    assert format_for(name).name == expected


@pytest.mark.parametrize("name", ["head.obj", "head", "head.usdz", "head.glb.tmp"])
def test_other_extensions_refused_in_one_line(name):
    with pytest.raises(InputError) as caught:
        format_for(name)
    assert len(str(caught.value).splitlines()) == 1 and name in str(caught.value)


def test_only_keys_outside_unit_range_change():
    a, b = unit_ranges(np.array([0.0, -2.0, 0.3, -0.5]), np.array([1.0, 3.0, 0.7, 4.0]))
    assert a.tolist() == [0.0, -2.0, 0.0, -0.5] and b.tolist() == [1.0, 3.0, 1.0, 4.0]


def test_same_vertices_for_any_weights():
    rng = np.random.default_rng(0)
    basis, offsets = rng.normal(size=(50, 3)), rng.normal(size=(4, 50, 3))
    weights = rng.normal(size=(30, 4)) * 3.0
    a, b = unit_ranges(weights.min(axis=0), weights.max(axis=0))
    moved, scaled = unit_geometry(basis, offsets, a, b)
    units = to_unit(weights, a, b)
    assert units.min() >= 0.0 and units.max() <= 1.0 + 1e-12
    for w, u in zip(weights, units):
        np.testing.assert_allclose(moved + np.einsum("k,kvc->vc", u, scaled),
                                   basis + np.einsum("k,kvc->vc", w, offsets), atol=1e-12)
