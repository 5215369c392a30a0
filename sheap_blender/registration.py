"""Registering the extension: every class in order (preferences first, panels last), the File menu entries.

`register()` / `unregister()` for the package's `__init__`; docs/architecture.md maps the packages.
"""

from __future__ import annotations

import bpy


def menu_import(self, context):
    self.layout.operator("sheap.import_result", text="SHeaP Result (.safetensors)")
    self.layout.operator("sheap.import_people", text="SHeaP People (.people.json)")


def _modules():
    """Every module with classes to register, in order (preferences first, panels last)."""
    from . import panel
    from .character import arkit_keys_operator
    from .character import mapping as character_mapping
    from .character import operator as character_operator
    from .character import panel as character_panel
    from .export import operator as export_operator
    from .people import operator as people_operator
    from .reconstruct import import_operator
    from .reconstruct import operator as reconstruct_operator
    from .settings import backend_setup, preferences

    return (preferences, backend_setup, import_operator, reconstruct_operator, people_operator, character_mapping,
            character_operator, arkit_keys_operator, export_operator, panel, character_panel)


def _classes() -> list:
    return [cls for module in _modules() for cls in module.classes]


def register() -> None:
    from . import panel
    from .character import mapping as character_mapping
    from .export import operator as export_operator

    for cls in _classes():
        bpy.utils.register_class(cls)
    panel.register_properties()
    character_mapping.register_properties()
    bpy.types.TOPBAR_MT_file_import.append(menu_import)
    bpy.types.TOPBAR_MT_file_export.append(export_operator.menu_export)


def unregister() -> None:
    from . import panel
    from .character import mapping as character_mapping
    from .export import operator as export_operator
    from .people import panel as people_panel

    people_panel.free_thumbnails()
    bpy.types.TOPBAR_MT_file_export.remove(export_operator.menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    character_mapping.unregister_properties()
    panel.unregister_properties()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
