"""The network's precision from Blender: the preference, the operator's override and bake.py --precision all
reach the backend as the request's "precision" (checked in the result each run writes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from sheap_blender.backend_client import reconstruction
from sheap_blender.core.safetensors_file import read_metadata
from sheap_blender.settings import preferences

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"

pytestmark = pytest.mark.usefixtures("backend_environment")  # a missing .venv fails, never skips


@pytest.fixture()
def prefs():
    """The extension's preferences, as when it is enabled in Blender (plain module use has none)."""
    bpy.context.preferences.addons.new().module = preferences.ADDON_ID
    yield preferences.get_preferences(bpy.context)
    addon = bpy.context.preferences.addons.get(preferences.ADDON_ID)
    if addon is not None:
        bpy.context.preferences.addons.remove(addon)
    reconstruction.drop_backend()


def _run(demo: Path, **overrides) -> dict[str, str]:
    bpy.ops.wm.read_homefile(use_empty=True)  # factory settings would drop the preferences
    arguments = dict(footage=str(demo / "astronaut.mp4"), flame=str(demo / "flame.safetensors"),
                     weights=str(demo / "demo_sheap_model.pt"), backend_python=str(BACKEND_PYTHON), device="cpu",
                     batch_size=4, frame_start=0, frame_end=6)
    assert bpy.ops.sheap.reconstruct_head(**{**arguments, **overrides}) == {"FINISHED"}
    root = next(o for o in bpy.context.scene.objects if "sheap_result" in o)
    return read_metadata(root["sheap_result"])


def test_the_preference_and_the_operator_choose_the_precision(demo, prefs, capfd):
    assert prefs.precision == "auto"  # the default: bfloat16 where native and within the self-check's limits
    prefs.precision = "fp32"
    assert _run(demo)["precision"] == "fp32"
    prefs.precision = "bf16"
    metadata = _run(demo)
    assert metadata["precision"] == "bf16"
    assert json.loads(metadata["precision_deviation"])["mean_mm"] >= 0
    assert "bfloat16 moves the FLAME vertices" in capfd.readouterr().out  # the log reaches the user
    assert _run(demo, precision="fp32")["precision"] == "fp32"  # the operator's own choice wins


def test_bake_precision(demo, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", str(demo / "astronaut.mp4"),
                           "--out", str(out), "--flame", str(demo / "flame.safetensors"), "--weights",
                           str(demo / "demo_sheap_model.pt"), "--backend-python", str(BACKEND_PYTHON), "--device",
                           "cpu", "--precision", "bf16"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_metadata(out / "astronaut.sheap.safetensors")["precision"] == "bf16"
    refused = subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", "clip.mp4", "--out",
                              str(out), "--precision", "fp8"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "fp8" in refused.stderr
