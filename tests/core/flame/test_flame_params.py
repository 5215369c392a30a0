"""The typed per-frame FLAME parameters that cross module boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from sheap_blender.core.flame.params import POSE_KEYS, WIDTHS, FlameParams


def test_named_fields_from_the_result_tensors_in_order():
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=(4, width)) for name, width in WIDTHS.items()}
    values["crop_box"] = np.zeros((4, 4))  # not a FLAME parameter: left out
    params = FlameParams.from_mapping(values)
    assert params.n_frames == 4 and np.array_equal(params.jaw_pose, values["jaw_pose"])
    assert params.poses().shape == (4, 5, 3)
    for joint, key in enumerate(POSE_KEYS):  # joints 0..4 in FLAME's order
        assert np.array_equal(params.poses()[:, joint], values[key])
    assert np.array_equal(params.rows(slice(1, 3)).expr, values["expr"][1:3])
    assert set(params.as_dict()) == set(WIDTHS)
    del values["eyelids"]
    with pytest.raises(KeyError):
        FlameParams.from_mapping(values)


def test_the_neutral_face_of_an_identity():
    identity = np.arange(300, dtype=np.float32)
    neutral = FlameParams.zeros(2, shape=identity)
    assert np.array_equal(neutral.shape[1], identity) and not neutral.expr.any() and not neutral.poses().any()
