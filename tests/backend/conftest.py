"""Fixtures shared by the backend tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sheap_blender.core.flame.model import FlameModel


@pytest.fixture(scope="session")
def demo_flame_files(tmp_path_factory) -> tuple[Path, Path]:
    """The demo FLAME stand-in (`generic_model.pkl`, `eyelids.pt`), written once per session."""
    from backend.standins.flame import write_demo_flame

    return write_demo_flame(tmp_path_factory.mktemp("demo_flame"))


@pytest.fixture(scope="session")
def demo_flame_model(demo_flame_files) -> FlameModel:
    """The stand-in loaded from its pickle, with its eyelid blendshapes."""
    from backend.model.flame_convert import read_eyelids
    from sheap_blender.core.flame.model import load_flame

    pkl, eyelids = demo_flame_files
    model = load_flame(pkl)
    model.eyelid_dirs = read_eyelids(eyelids, model.n_vertices)
    return model


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """Every demo stand-in and the astronaut clip, made once per session by `python -m backend make-demo`.

    A subprocess, as users run it (and MediaPipe/torch state of earlier tests cannot leak in).
    """
    directory = tmp_path_factory.mktemp("demo")
    completed = subprocess.run([sys.executable, "-m", "backend", "make-demo", str(directory)],
                               cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "demo weights" in completed.stdout and "not FLAME" in completed.stdout  # stand-ins named as such
    return directory
