"""Preferences: what a run still needs, said with the exact next step; the set-up button's command."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest

from sheap_blender.settings import preferences

REPO = Path(__file__).resolve().parents[3]


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


@pytest.mark.usefixtures("backend_environment")
def test_set_up_backend_runs_the_readme_set_up(capfd):
    """In a checkout the button's set-up is the README's `.venv`: already built here, so it only checks it."""
    assert preferences.default_backend_python() == REPO / ".venv" / "bin" / "python"
    bpy.context.preferences.system.use_online_access = True  # the user's leave to download
    assert bpy.ops.sheap.setup_backend() == {"FINISHED"}
    assert "SHeaP: setup: .venv ready" in capfd.readouterr().out


def test_set_up_backend_downloads_nothing_without_online_access(capfd):
    bpy.context.preferences.system.use_online_access = False
    try:
        with pytest.raises(RuntimeError) as refused:
            bpy.ops.sheap.setup_backend()
    finally:
        bpy.context.preferences.system.use_online_access = True
    message = str(refused.value)
    assert "online access is off" in message and "Preferences > System > Network" in message
    assert "setup_env.py backend" in message and "\n" not in message.strip()
    assert "setup:" not in capfd.readouterr().out  # the set-up never started
