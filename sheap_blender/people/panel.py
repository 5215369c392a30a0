"""The people in the SHeaP tab: Find People, then each person's thumbnail to click (loaded with bpy.utils.previews)."""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from ..backend_client.find_people import FindPeople
from ..core.errors import InputError
from ..core.result.people_file import read_people
from ..reconstruct.job_modal import active_run, job_running

_previews = None  # bpy.utils.previews collection of the people's thumbnails
_shown: tuple[str, int] | None = None  # (people file, its mtime) the previews were loaded from
_numbers: dict[int, int] = {}  # person number -> icon id


def thumbnails(people_file: str) -> dict[int, int]:
    """Person number -> icon id of their thumbnail (loaded once per version of the file; {} when unreadable)."""
    global _previews, _shown, _numbers
    try:
        key = (people_file, os.stat(people_file).st_mtime_ns)
    except OSError:
        return {}
    if key == _shown:
        return _numbers
    import bpy.utils.previews

    if _previews is None:
        _previews = bpy.utils.previews.new()
    _previews.clear()
    _shown, _numbers = key, {}
    try:
        listing = read_people(people_file)
    except InputError:
        return _numbers
    for person in listing.people:
        path = listing.path_of(Path(people_file), person.thumbnail)
        if path.is_file():
            _numbers[person.number] = _previews.load(f"person{person.number}", os.fspath(path), "IMAGE",
                                                     force_reload=True).icon_id
    return _numbers


def free_thumbnails() -> None:
    """Release the previews (unregister)."""
    global _previews, _shown, _numbers
    if _previews is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_previews)
    _previews, _shown, _numbers = None, None, {}


def draw_people(layout: bpy.types.UILayout, context, settings) -> None:
    """The panel's people: Find People, then a thumbnail per person to click (A person) or all of them (Everyone)."""
    box = layout.box()
    run = active_run()
    if not job_running():
        row = box.row()
        footage = settings.footage_path(context)
        row.enabled = bool(footage) and (os.path.exists(footage) or "%" in footage)
        row.operator("sheap.find_people", icon="COMMUNITY")
    elif isinstance(run, FindPeople):
        box.label(text="finding people...", icon="TIME")
    if not settings.people_file:
        if settings.face_rule == "PERSON":
            box.label(text="Find People, then click the person to follow")
        return
    footage = settings.footage_path(context)
    if not settings.people_found_for(footage, settings.start, settings.end or None):
        box.label(text="found in other footage or frames: Find People again", icon="ERROR")
        return
    icons = thumbnails(bpy.path.abspath(settings.people_file))
    if not icons:
        box.label(text="nobody found", icon="ERROR")
        return
    grid = box.grid_flow(row_major=True, columns=3, even_columns=True, align=True)
    for number, icon in icons.items():
        column = grid.column(align=True)
        column.template_icon(icon_value=icon, scale=4.0)
        if settings.face_rule == "PERSON":
            column.operator("sheap.choose_person", text=f"Person {number}",
                            depress=settings.person == number).number = number
        else:
            column.label(text=f"Person {number}")
    if settings.face_rule == "EVERYONE":
        box.label(text=f"a rig for each of the {len(icons)} people")
