"""Preferences: where the backend, FLAME and the SHeaP weights are, and the two set-up buttons.

`readiness()` says, before any run, what is missing and the exact next step; the panel shows it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import bpy

from .backend_process import backend_environment, backend_root, development_checkout, venv_python

ADDON_ID = __package__
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
        from .core.errors import InputError
        from .core.safetensors_file import read_metadata

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


class _BackgroundCommand:
    """A set-up command running beside Blender; its last stdout line is the progress text."""

    def __init__(self, command: list[str], echo: bool = False):
        self.echo = echo  # background mode: print each line (there is no status bar)
        self.status = "starting..."
        self.returncode: int | None = None
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        cwd=backend_root(), env=backend_environment())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip():
                self.status = line.strip()[:200]
                if self.echo:
                    print(f"SHeaP: {line.rstrip()}", flush=True)
        self.returncode = self.process.wait()


class _CommandOperator:
    """Modal operator mix-in: runs `command()` in the background, shows its progress in the status bar."""

    _job: _BackgroundCommand | None = None

    def command(self, context) -> list[str]:
        raise NotImplementedError

    def finished(self, context) -> None:
        pass

    def execute(self, context):
        command = self.command(context)
        try:
            self._job = _BackgroundCommand(command, echo=bool(bpy.app.background))
        except OSError as exc:  # e.g. the backend Python is not there yet
            self.report({"ERROR"}, f"SHeaP: {command[0]}: cannot run it ({exc.strerror})")
            return {"CANCELLED"}
        if bpy.app.background:  # no event loop: wait here, echoing progress
            self._job.reader.join()
            return self._finish(context)
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        context.workspace.status_text_set(f"SHeaP: {self._job.status}")
        if self._job.returncode is None:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        return self._finish(context)

    def _finish(self, context):
        if self._job.returncode != 0:
            self.report({"ERROR"}, f"SHeaP: {self._job.status}")
            return {"CANCELLED"}
        self.finished(context)
        return {"FINISHED"}


class SHEAP_OT_setup_backend(_CommandOperator, bpy.types.Operator):
    """Create the backend's Python environment (torch, MediaPipe, OpenCV); runs once, takes minutes"""

    bl_idname = "sheap.setup_backend"
    bl_label = "Set up backend"

    def command(self, context) -> list[str]:
        script = backend_root() / "scripts" / "setup_env.py"
        return [sys.executable, str(script), "backend", "--venv", str(default_backend_python().parent.parent)]

    def execute(self, context):
        if not bpy.app.online_access:  # the set-up downloads packages: only with the user's leave
            script = backend_root() / "scripts" / "setup_env.py"
            self.report({"ERROR"}, "SHeaP: Set up backend downloads about 3 GB of Python packages, but Blender's "
                                   "online access is off: allow it in Preferences > System > Network, or run "
                                   f"`python3.11 {script} backend` yourself and choose its Python here")
            return {"CANCELLED"}
        return super().execute(context)

    def finished(self, context) -> None:
        prefs = get_preferences(context)
        if prefs is not None:
            prefs.backend_python = str(default_backend_python())
        self.report({"INFO"}, "SHeaP backend is set up")


class SHEAP_OT_use_demo_files(_CommandOperator, bpy.types.Operator):
    """Make the demo stand-ins (not FLAME, not SHeaP: for trying the tool) and select them"""

    bl_idname = "sheap.use_demo_files"
    bl_label = "Use demo stand-ins"

    def command(self, context) -> list[str]:
        prefs = get_preferences(context)
        python = prefs.python_path() if prefs else str(default_backend_python())
        return [python, "-m", "backend", "make-demo", str(user_dir() / "demo")]

    def finished(self, context) -> None:
        prefs = get_preferences(context)
        demo = user_dir() / "demo"
        if prefs is not None:
            prefs.flame_path = str(demo / "flame.safetensors")
            prefs.weights_choice = "custom"
            prefs.weights_custom = str(demo / "demo_sheap_model.pt")
        self.report({"WARNING"}, "SHeaP: demo weights selected - the head is not a real reconstruction")


classes = (SHEAP_AddonPreferences, SHEAP_OT_setup_backend, SHEAP_OT_use_demo_files)
