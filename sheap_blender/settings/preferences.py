"""Preferences: where the backend, FLAME and the SHeaP weights are (the set-up buttons: backend_setup.py).

`readiness()` says, before any run, what is missing and the exact next step; the panel shows it.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import bpy

from ..backend_client.process import backend_root, development_checkout, venv_python

ADDON_ID = __package__.rpartition(".")[0]  # the extension's own package (sheap_blender, or bl_ext.*.sheap_blender)
WEIGHT_FILES = {"expressive": "model_expressive.pt", "paper": "model_paper.pt"}


def user_dir() -> Path:
    """Writable per-user folder of the extension (a plain folder when loaded as a module)."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, create=True))
    except (ValueError, AttributeError):  # not installed as an extension (tests, scripts)
        path = Path(bpy.utils.user_resource("SCRIPTS")) / "sheap_blender_data"
        path.mkdir(parents=True, exist_ok=True)
        return path


def default_backend_python() -> Path:
    """The set-up's interpreter: `.venv` in a development checkout, else in the extension's user folder
    (an installed extension's own folder is replaced on every update)."""
    venv = backend_root() / ".venv" if development_checkout() else user_dir() / "backend-venv"
    return venv_python(venv)


def get_preferences(context=None):
    """This extension's preferences, or None when it is not registered as an add-on (plain module use)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


@functools.lru_cache(maxsize=16)
def _is_demo_file(path: str, mtime_ns: int) -> bool:
    """Cached by modification time: the panel asks on every redraw."""
    if path.endswith(".safetensors"):  # a converted FLAME made from the stand-in
        from ..core.errors import InputError
        from ..core.safetensors_file import read_metadata

        try:
            return read_metadata(path).get("demo") == "true"
        except InputError:
            return False
    try:  # a TorchScript archive of the stand-in predictor: its code names `sheap_demo`
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".py") and b"sheap_demo" in archive.read(name)
                       for name in archive.namelist() if "/code/" in name)
    except (OSError, zipfile.BadZipFile):
        return False


def is_demo_file(path: str) -> bool:
    """The project's stand-in weights or FLAME (so the UI can say "demo weights")."""
    try:
        return _is_demo_file(path, os.stat(path).st_mtime_ns)
    except OSError:
        return False


def preferred_flame(context=None) -> str:
    """The FLAME file set in the preferences, absolute ('' when none, or when not registered as an add-on)."""
    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.flame_path) if prefs is not None and prefs.flame_path else ""


def _resolved(path: str) -> str:
    return bpy.path.abspath(path) if path else ""


class SHEAP_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_python: bpy.props.StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python of the backend environment (made by 'Set up backend')",
    )
    flame_path: bpy.props.StringProperty(
        name="FLAME", subtype="FILE_PATH",
        description="FLAME 2020 generic_model.pkl, or its converted .safetensors (with eyelids)",
    )
    weights_choice: bpy.props.EnumProperty(
        name="SHeaP weights",
        items=[("expressive", "Expressive", "model_expressive.pt: more expressive"),
               ("paper", "Paper", "model_paper.pt: best on the NoW benchmark"),
               ("custom", "Custom file", "Any SHeaP TorchScript archive")],
        default="expressive",
    )
    weights_folder: bpy.props.StringProperty(
        name="Weights folder", subtype="DIR_PATH",
        description="Folder holding model_expressive.pt / model_paper.pt",
    )
    weights_custom: bpy.props.StringProperty(name="Weights file", subtype="FILE_PATH")
    device: bpy.props.EnumProperty(
        name="Device", items=[("auto", "Auto", "CUDA when there is one"), ("cuda", "CUDA", ""), ("cpu", "CPU", "")],
        default="auto",
    )
    precision: bpy.props.EnumProperty(
        name="Precision",
        items=[("auto", "Auto", "bfloat16 where the CPU/GPU has it natively and the backend's self-check finds the "
                                "head's vertices within 0.2 mm (mean) / 0.5 mm (max) of float32's, else float32"),
               ("fp32", "Float32", "Full precision (slowest on CPUs with bfloat16)"),
               ("bf16", "BFloat16", "Faster; the log says how far it moves the head's vertices"),
               ("fp16", "Float16", "Half precision (never chosen by Auto; not faster than float32 on the CPU tried)")],
        default="auto",
    )
    batch_size: bpy.props.IntProperty(name="Batch size", default=16, min=1, max=256)

    def weights_path(self) -> str:
        if self.weights_choice == "custom":
            return _resolved(self.weights_custom)
        folder = _resolved(self.weights_folder) or str(backend_root() / "weights")
        return os.path.join(folder, WEIGHT_FILES[self.weights_choice])

    def python_path(self) -> str:
        return _resolved(self.backend_python) or str(default_backend_python())

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "backend_python")
        row = col.row()
        row.operator("sheap.setup_backend", icon="CONSOLE")
        row.operator("sheap.use_demo_files", icon="FILE_BLANK")
        col.prop(self, "flame_path")
        col.prop(self, "weights_choice")
        if self.weights_choice == "custom":
            col.prop(self, "weights_custom")
        else:
            col.prop(self, "weights_folder")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "batch_size")
        for problem, step in readiness(self.python_path(), self.flame_path and _resolved(self.flame_path),
                                       self.weights_path()):
            box = layout.box()
            box.label(text=problem, icon="ERROR")
            box.label(text=step)


def readiness(python: str, flame: str, weights: str) -> list[tuple[str, str]]:
    """(what is missing, the exact next step) for each thing a run needs; empty when ready."""
    problems = []
    if not python or not os.path.isfile(python):
        problems.append((f"Backend not set up ({python or 'no path'})",
                         "Preferences > SHeaP > Set up backend (about 3 GB download, once)"))
    if not flame or not os.path.isfile(flame):
        problems.append(("FLAME model not set" if not flame else f"FLAME not found: {flame}",
                         "Register at flame.is.tue.mpg.de, download FLAME 2020, set generic_model.pkl"))
    if not weights or not os.path.isfile(weights):
        problems.append((f"SHeaP weights not found: {weights}" if weights else "SHeaP weights not set",
                         "Download model_expressive.pt from github.com/nlml/sheap release v1.0.0"))
    return problems


classes = (SHEAP_AddonPreferences,)
