"""The "SHeaP" sidebar tab (3D viewport and Movie Clip editor) and the per-scene settings it edits."""

from __future__ import annotations

import os

import bpy

from .core.result.face_choice import clip_cursor_to_point
from .core.result.result_format import SMOOTHING_GROUPS
from .settings import preferences


def _show_gaussians(settings: SHEAP_SceneSettings, context) -> None:
    """The checkbox shows or hides (viewport and render) every Gaussian preview of its scene."""
    from .preview.gaussians import show_previews

    show_previews(settings.id_data, settings.gaussians)


def _render_over_footage(settings: SHEAP_SceneSettings) -> bool:
    from .preview.render_setup import is_enabled

    return is_enabled(settings.id_data)


def _set_render_over_footage(settings: SHEAP_SceneSettings, value: bool) -> None:
    """On: the scene camera's footage is composited behind the render; off: our nodes go and the
    render settings they needed are put back (the user's own compositing is left alone)."""
    from .preview.render_setup import disable, enable

    if value:
        enable(settings.id_data)
    else:
        disable(settings.id_data)


def _group_strength(what: str) -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(name=what.capitalize(), default=0.5, min=0.0, max=1.0,
                                   description=f"Smoothing of the {what}: 0 off, 1 strongest (no lag)")


class SHEAP_SceneSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Footage",
        items=[("CLIP", "Movie clip", "The active movie clip (video or image sequence)"),
               ("FILE", "File", "A video file, an image folder or one image")],
        default="CLIP",
    )
    clip: bpy.props.PointerProperty(name="Clip", type=bpy.types.MovieClip)
    file: bpy.props.StringProperty(name="File", subtype="FILE_PATH")
    start: bpy.props.IntProperty(name="First frame", default=0, min=0, description="First footage frame (0-based)")
    end: bpy.props.IntProperty(name="End frame", default=0, min=0,
                               description="Footage frame after the last; 0: to the end of the clip")
    smooth: bpy.props.FloatProperty(name="Temporal smoothing", default=0.0, min=0.0, max=1.0,
                                    description="0: the raw per-frame prediction; 1: strongest (no lag)")
    smooth_per_group: bpy.props.BoolProperty(name="Per group", default=False,
                                             description="Set the smoothing strength of each group on its own")
    smooth_expression: _group_strength("expression")
    smooth_eyelids: _group_strength("eyelids")
    smooth_jaw: _group_strength("jaw")
    smooth_head: _group_strength("head pose")
    smooth_eyes: _group_strength("eye gaze")
    smooth_translation: _group_strength("head translation")
    gaussians: bpy.props.BoolProperty(name="Gaussian preview", default=False, update=_show_gaussians,
                                      description="Show the head's Gaussian point cloud attached to the rig, "
                                                  "and make one when reconstructing")
    gaussian_count: bpy.props.IntProperty(name="Gaussians", default=60_000, min=1, max=2_000_000,
                                          description="How many Gaussians a reconstruction binds to the head")
    face_rule: bpy.props.EnumProperty(
        name="Face",
        items=[("LARGEST", "Largest face", "Follow the largest face"),
               ("POINT", "Point", "Follow the person nearest a point on the first frame of the range"),
               ("PERSON", "A person", "Follow one of the people Find People found (click their picture)"),
               ("EVERYONE", "Everyone", "A rig for every person who appears, each in its own collection")],
        default="LARGEST",
    )
    people_file: bpy.props.StringProperty(name="People found", subtype="FILE_PATH", options={"HIDDEN"},
                                          description="The people file Find People wrote (NAME.people.json)")
    people_footage: bpy.props.StringProperty(options={"HIDDEN"}, description="The footage the people were found in")
    people_start: bpy.props.IntProperty(options={"HIDDEN"}, description="... from this footage frame")
    people_end: bpy.props.IntProperty(options={"HIDDEN"}, description="... to this one (0: the clip's end)")
    person: bpy.props.IntProperty(name="Person", default=0, min=0,
                                  description="The person to follow, as Find People numbers them (0: none chosen)")
    face_point: bpy.props.FloatVectorProperty(
        name="Point", size=2, default=(0.5, 0.5), min=0.0, max=1.0, subtype="XYZ",
        description="The face to follow, on the first frame of the range: fractions 0..1 of the frame's width "
                    "(X) and height (Y) measured from its TOP-LEFT corner")
    render_over_footage: bpy.props.BoolProperty(
        name="Render over footage", get=_render_over_footage, set=_set_render_over_footage,
        description="Renders show the head over the footage (the scene camera's background, composited behind the "
                    "render; film transparent, Standard view transform). Off: the compositing is left to you")
    cancel_requested: bpy.props.BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def face(self) -> tuple[float, float] | None:
        """The face to follow for the request: a top-left point, or None for the largest face."""
        return (float(self.face_point[0]), float(self.face_point[1])) if self.face_rule == "POINT" else None

    def people_found_for(self, footage: str, start: int, end: int | None) -> bool:
        """The people shown were found in this footage and frame range (their numbers hold for it)."""
        same = os.path.normcase(os.path.abspath(footage)) == os.path.normcase(self.people_footage)
        return bool(self.people_file) and same and (self.people_start, self.people_end) == (start, end or 0)

    def smooth_groups(self) -> dict[str, float]:
        """Per-group strengths for the request; empty unless "Per group" is on."""
        if not self.smooth_per_group:
            return {}
        return {group: getattr(self, f"smooth_{group}") for group in SMOOTHING_GROUPS}

    def chosen_clip(self, context) -> bpy.types.MovieClip | None:
        if self.clip is not None:
            return self.clip
        space = context.space_data
        if space is not None and space.type == "CLIP_EDITOR" and space.clip is not None:
            return space.clip
        return context.scene.active_clip

    def footage_path(self, context) -> str:
        """The footage a run would read, or '' when none is chosen."""
        if self.source == "FILE":
            return bpy.path.abspath(self.file) if self.file else ""
        from .reconstruct.operator import footage_of_clip

        clip = self.chosen_clip(context)
        return footage_of_clip(clip) if clip is not None else ""


class SHEAP_OT_face_from_clip_cursor(bpy.types.Operator):
    """Follow the face under the Movie Clip editor's 2D cursor (put it on the face, on the first frame of the range)"""

    bl_idname = "sheap.face_from_clip_cursor"
    bl_label = "Face from 2D Cursor"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space is not None and space.type == "CLIP_EDITOR"

    @staticmethod
    def _other_footage(context, clip: bpy.types.MovieClip) -> str | None:
        """What the reconstruction reads when it is not the clip the editor shows (None: the same)."""
        from .reconstruct.operator import footage_of_clip

        settings = context.scene.sheap
        if settings.source == "CLIP":
            run_clip = settings.chosen_clip(context)
            return None if run_clip == clip else (run_clip.name if run_clip is not None else "no clip")
        reads = settings.footage_path(context)
        if reads and os.path.normcase(os.path.abspath(reads)) == os.path.normcase(footage_of_clip(clip)):
            return None
        return os.path.basename(reads.rstrip("/\\")) or "no footage"

    def execute(self, context):
        settings, space, scene = context.scene.sheap, context.space_data, context.scene
        clip = space.clip
        if clip is None:
            self.report({"ERROR"}, "SHeaP: the Movie Clip editor shows no clip")
            return {"CANCELLED"}
        other = self._other_footage(context, clip)
        if other is not None:
            self.report({"ERROR"}, f"SHeaP: the editor shows {clip.name}, but the reconstruction reads {other}: "
                                   f"choose that footage first")
            return {"CANCELLED"}
        # the footage frame the editor shows (Blender's movie clip code: scene frame - frame_start + frame_offset)
        shown = scene.frame_current - clip.frame_start + clip.frame_offset
        if shown != settings.start:
            scene.frame_current = settings.start + clip.frame_start - clip.frame_offset
            self.report({"ERROR"}, f"SHeaP: the face is chosen on the first frame of the range (footage frame "
                                   f"{settings.start}), the editor showed frame {shown}; it now shows frame "
                                   f"{settings.start}: put the 2D cursor on the face there and click again")
            return {"CANCELLED"}
        try:
            x, y = clip_cursor_to_point(space.cursor_location)
        except ValueError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        settings.face_rule = "POINT"
        settings.face_point = (x, y)
        self.report({"INFO"}, f"SHeaP: following the face nearest ({x:.3f}, {y:.3f}) from the top-left")
        return {"FINISHED"}


class _SheapPanel:
    bl_label = "SHeaP"
    bl_category = "SHeaP"
    bl_region_type = "UI"

    def draw(self, context):
        from .reconstruct.job_modal import active_run

        layout = self.layout
        settings = context.scene.sheap
        layout.prop(settings, "source", expand=True)
        if settings.source == "CLIP":
            layout.prop(settings, "clip")
        else:
            layout.prop(settings, "file")
        row = layout.row(align=True)
        row.prop(settings, "start")
        row.prop(settings, "end")
        row = layout.row(align=True)
        row.prop(settings, "face_rule", text="Follow")
        if SHEAP_OT_face_from_clip_cursor.poll(context):  # the panel is in the Movie Clip editor
            row.operator("sheap.face_from_clip_cursor", text="", icon="PIVOT_CURSOR")
        if settings.face_rule == "POINT":
            layout.row(align=True).prop(settings, "face_point", text="")
        elif settings.face_rule in ("PERSON", "EVERYONE"):
            from .people.panel import draw_people

            draw_people(layout, context, settings)
        row = layout.row(align=True)
        row.prop(settings, "smooth", slider=True)
        row.prop(settings, "smooth_per_group", text="", icon="PREFERENCES")
        if settings.smooth_per_group:
            column = layout.column(align=True)
            for group in SMOOTHING_GROUPS:
                column.prop(settings, f"smooth_{group}", slider=True)
        row = layout.row(align=True)
        row.prop(settings, "gaussians")
        count = row.row(align=True)
        count.active = settings.gaussians
        count.prop(settings, "gaussian_count", text="")
        layout.prop(settings, "render_over_footage")

        prefs = preferences.get_preferences(context)
        if prefs is not None:
            flame = bpy.path.abspath(prefs.flame_path) if prefs.flame_path else ""
            weights = prefs.weights_path()
            for problem, step in preferences.readiness(prefs.python_path(), flame, weights):
                box = layout.box()
                box.label(text=problem, icon="ERROR")
                box.label(text=step)
            if preferences.is_demo_file(weights) or preferences.is_demo_file(flame):
                layout.label(text="demo weights: not a real reconstruction", icon="INFO")

        run = active_run()
        if run is not None and not run.finished:  # Reconstruct Head or Find People
            layout.progress(factor=run.progress, text=run.status_line)  # UILayout.progress: Blender 4.0+
            layout.operator("sheap.cancel", icon="CANCEL")
        else:
            footage = settings.footage_path(context)
            row = layout.row()
            row.enabled = bool(footage) and (os.path.exists(footage) or "%" in footage)
            row.scale_y = 1.5
            row.operator("sheap.reconstruct_head", icon="USER")
        layout.operator("sheap.import_result", icon="IMPORT")
        layout.operator("sheap.import_people", icon="IMPORT")
        layout.operator("sheap.export_head", icon="EXPORT")


class SHEAP_PT_view3d(_SheapPanel, bpy.types.Panel):
    bl_idname = "SHEAP_PT_view3d"
    bl_space_type = "VIEW_3D"


class SHEAP_PT_clip(_SheapPanel, bpy.types.Panel):
    bl_idname = "SHEAP_PT_clip"
    bl_space_type = "CLIP_EDITOR"


classes = (SHEAP_SceneSettings, SHEAP_OT_face_from_clip_cursor, SHEAP_PT_view3d, SHEAP_PT_clip)


def register_properties() -> None:
    bpy.types.Scene.sheap = bpy.props.PointerProperty(type=SHEAP_SceneSettings)


def unregister_properties() -> None:
    del bpy.types.Scene.sheap
