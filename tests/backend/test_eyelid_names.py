"""Eyelid shape keys are named by the side of the face they move, not by their channel's number."""

from __future__ import annotations

import numpy as np

from sheap_blender.core.result.rig_math import eyelid_key_names


def test_names_follow_the_geometry_whatever_the_channel_order(demo_flame_model):
    model = demo_flame_model
    names = eyelid_key_names(model)
    # the stand-in follows the release's order: channel 0 moves the subject's RIGHT eyelid (FLAME -X)
    assert names == ("eyelid_r", "eyelid_l")
    for channel, name in enumerate(names):
        moved = np.linalg.norm(model.eyelid_dirs[:, :, channel], axis=1) > 1e-6
        side = np.sign(model.v_template[moved, 0].mean())
        assert side == (1 if name == "eyelid_l" else -1)
    swapped = type(model)(**{**model.__dict__, "eyelid_dirs": model.eyelid_dirs[:, :, ::-1].copy()})
    assert eyelid_key_names(swapped) == ("eyelid_l", "eyelid_r")
    both_left = type(model)(**{**model.__dict__, "eyelid_dirs": np.repeat(model.eyelid_dirs[:, :, 1:], 2, axis=2)})
    assert eyelid_key_names(both_left) == ("eyelid_0", "eyelid_1")  # not two sides: said as channels, not guessed
    assert eyelid_key_names(type(model)(**{**model.__dict__, "eyelid_dirs": None})) == ()
