"""Preferences: what a run still needs, said with the exact next step; the set-up button's command."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest

from sheap_blender import preferences

REPO = Path(__file__).resolve().parents[2]


def test_readiness_names_each_missing_thing_and_the_next_step(tmp_path):
    problems = preferences.readiness(str(tmp_path / "python"), "", str(tmp_path / "model_expressive.pt"))
    texts = [problem for problem, _ in problems]
    steps = [step for _, step in problems]
    assert texts == [f"Backend not set up ({tmp_path / 'python'})", "FLAME model not set",
                     f"SHeaP weights not found: {tmp_path / 'model_expressive.pt'}"]
    assert "Set up backend" in steps[0] and "flame.is.tue.mpg.de" in steps[1] and "nlml/sheap" in steps[2]
    ready = [str(tmp_path / name) for name in ("python", "flame.safetensors", "w.pt")]
    for path in ready:
        Path(path).write_bytes(b"x")
    assert preferences.readiness(*ready) == []


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").is_file(), reason="the backend environment is not set up")
def test_set_up_backend_runs_the_readme_set_up(capfd):
    """In a checkout the button's set-up is the README's `.venv`: already built here, so it only checks it."""
    assert preferences.default_backend_python() == REPO / ".venv" / "bin" / "python"
    assert bpy.ops.sheap.setup_backend() == {"FINISHED"}
    assert "SHeaP: setup: .venv ready" in capfd.readouterr().out
