"""Finding SHeaP rigs in a scene: an object's rig, a rig's parts by role, the selected rig, the rig of a result."""

from __future__ import annotations

import bpy

from .build import ROLE


def rig_root(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The root of the SHeaP rig `obj` belongs to (itself, a parent, or None)."""
    while obj is not None:
        if obj.get(ROLE) == "root" and obj.get("sheap_rig"):
            return obj
        obj = obj.parent
    return None


def rig_parts(root: bpy.types.Object) -> dict[str, bpy.types.Object]:
    """role -> object of a rig ("root", "armature", "head", "camera")."""
    parts = {"root": root}
    for child in root.children_recursive:
        role = child.get(ROLE)
        if role in ("armature", "head", "camera") and role not in parts:
            parts[role] = child
    return parts


def selected_rig(context: bpy.types.Context, rig_object: bpy.types.Object | None) -> bpy.types.Object | None:
    """The rig of `rig_object`, else of the active object, else of a selected object, else the
    scene's only SHeaP rig (a .blend holding one rig, opened by a script)."""
    if rig_object is not None:
        return rig_root(rig_object)
    for obj in [context.active_object, *getattr(context, "selected_objects", ())]:
        root = rig_root(obj)
        if root is not None:
            return root
    roots = [o for o in context.scene.objects if o.get(ROLE) == "root" and o.get("sheap_rig")]
    return roots[0] if len(roots) == 1 else None


def find_rig_for(scene: bpy.types.Scene, result_path: str) -> bpy.types.Object | None:
    for obj in scene.objects:
        if obj.get(ROLE) == "root" and obj.get("sheap_rig") and obj.get("sheap_result") == result_path:
            return obj
    return None
