"""Fixtures shared by the backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheap_blender.core.flame_model import FlameModel


@pytest.fixture(scope="session")
def demo_flame_files(tmp_path_factory) -> tuple[Path, Path]:
    """The demo FLAME stand-in (`generic_model.pkl`, `eyelids.pt`), written once per session."""
    from backend.demo_flame import write_demo_flame

    return write_demo_flame(tmp_path_factory.mktemp("demo_flame"))


@pytest.fixture(scope="session")
def demo_flame_model(demo_flame_files) -> FlameModel:
    """The stand-in loaded from its pickle, with its eyelid blendshapes."""
    from backend.flame_convert import read_eyelids
    from sheap_blender.core.flame_model import load_flame

    pkl, eyelids = demo_flame_files
    model = load_flame(pkl)
    model.eyelid_dirs = read_eyelids(eyelids, model.n_vertices)
    return model
