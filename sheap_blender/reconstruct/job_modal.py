"""The modal half of a backend job's operator (Reconstruct Head, Find People), and the one job the panel shows.

One job runs at a time; `active_run()` is the one the panel draws progress for.
"""

from __future__ import annotations

import time

import bpy

_active = None  # the run the panel shows, a Reconstruction or a FindPeople (one at a time)


def active_run():
    """The background job the panel shows (Reconstruct Head or Find People), if any."""
    return _active


def forget_active_run() -> None:
    """The job has ended: the panel shows none."""
    global _active
    _active = None


class JobModal:
    """The modal half of a background job's operator (Reconstruct Head, Find People): a timer drains the
    job's events, the status bar and the panel show its progress, Esc or Cancel stops it; `_finish` ends it.
    An operator gives `_request(context)` (a request, or a one-line refusal) and `_start(request)` (the job)."""

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if job_running():
            self.report({"ERROR"}, "SHeaP: a reconstruction or Find People is already running")
            return {"CANCELLED"}
        request = self._request(context)
        if isinstance(request, str):
            self.report({"ERROR"}, f"SHeaP: {request}")
            return {"CANCELLED"}
        return self._begin(context, self._start(request))

    def execute(self, context):
        """The synchronous path (background mode, scripts): progress and the job's messages as printed lines."""
        request = self._request(context)
        if isinstance(request, str):
            self.report({"ERROR"}, f"SHeaP: {request}")
            return {"CANCELLED"}
        run = self._start(request)
        started = time.perf_counter()
        run.wait(on_progress=lambda run: print(f"SHeaP: {run.frame_line if run.total else run.status_line}",
                                               flush=True))
        for message in run.messages:
            print(f"SHeaP: {message}", flush=True)
        print(f"SHeaP: {self.bl_label} finished in {time.perf_counter() - started:.1f} s: {run.state}", flush=True)
        return self._finish(context, run)

    def _begin(self, context, job) -> set[str]:
        global _active
        _active = job
        self._run = job
        context.scene.sheap.cancel_requested = False
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.window_manager.progress_begin(0, 1)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        global _active
        run = self._run
        if event.type == "ESC" or context.scene.sheap.cancel_requested:
            run.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        run.poll()
        context.window_manager.progress_update(run.progress)
        context.workspace.status_text_set(f"SHeaP: {run.status_line}")
        for area in context.screen.areas:
            if area.type in ("VIEW_3D", "CLIP_EDITOR"):
                area.tag_redraw()
        if not run.finished:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        context.scene.sheap.cancel_requested = False
        if _active is run:
            _active = None
        return self._finish(context, run)


def job_running() -> bool:
    """A Reconstruct Head or Find People run is going on (one at a time)."""
    return _active is not None and not _active.finished
