"""The preferences' two set-up buttons: make the backend's Python environment, make and select the demo stand-ins.

Each runs a command beside Blender (modal, its last output line in the status bar); in background mode it waits.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import bpy

from ..backend_client.process import backend_environment, backend_root
from .preferences import default_backend_python, get_preferences, user_dir


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


classes = (SHEAP_OT_setup_backend, SHEAP_OT_use_demo_files)
