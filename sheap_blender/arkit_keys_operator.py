"""Make ARKit Shape Keys: the 52 ARKit keys made for a head mesh that has none (core/arkit_keys.py).

The face's 68 landmarks are markers (empties parented to the head, `sheap_landmark` = their Multi-PIE
number) that the user can move and make the keys again; `sheap.place_arkit_landmarks` puts them at the
vertices named by the mesh's `sheap_landmark_vertices` property (68 ids) where it has one, else roughly
over the front of the head (the face looking toward -Y, +Z up, as Blender's Front view shows it).
The base shape and the keys the mesh had stay as they were; a name clash is refused unless `replace`;
all or nothing; one undo step.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .core.arkit_keys import NAMING_HABITS, key_name, make_arkit_keys
from .core.arkit_names import ARKIT_NAMES
from .core.arkit_reference import load_reference
from .core.errors import InputError
from .core.mesh_transfer import closest_surface_points, fit_similarity

MARKER = "sheap_landmark"
VERTEX_IDS = "sheap_landmark_vertices"
HABIT_ITEMS = [(habit, label, f"Shape keys named like {label}") for habit, label in
               zip(NAMING_HABITS, ("eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L"))]


def head_object(context, name: str) -> bpy.types.Object:
    """The named mesh, else the panel's character, else the active object (InputError when none is a mesh)."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(None, f"no object named {name!r}")
    else:
        obj = context.scene.sheap_character.target or context.view_layer.objects.active
    if obj is None or obj.type != "MESH" or not len(obj.data.vertices) or not len(obj.data.polygons):
        raise InputError(None, f"{obj.name if obj else 'nothing'!r} is not a head mesh: choose a mesh object")
    return obj


def base_mesh(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """The head's base shape (its Basis key where it has keys) and its triangles, in the object's space."""
    mesh = obj.data
    vertices = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    keys = mesh.shape_keys
    (keys.reference_key.data if keys is not None else mesh.vertices).foreach_get("co", vertices)
    mesh.calc_loop_triangles()
    triangles = np.empty(3 * len(mesh.loop_triangles), dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    return vertices.reshape(-1, 3).astype(np.float64), triangles.reshape(-1, 3).astype(np.int64)


def markers(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The head's landmark markers, by number."""
    return sorted((child for child in obj.children if MARKER in child), key=lambda child: int(child[MARKER]))


def landmark_points(obj: bpy.types.Object, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(68, 3) the landmarks in the object's space, on its surface: the markers', else the vertex ids'."""
    placed = markers(obj)
    if placed:
        if [int(m[MARKER]) for m in placed] != list(range(68)):
            raise InputError(None, f"{obj.name!r} has {len(placed)} landmark markers, not the 68 numbered 0-67: "
                                   "Place Landmarks again")
        inverse = obj.matrix_world.inverted()
        points = np.array([(inverse @ m.matrix_world.translation)[:] for m in placed])
        surface = closest_surface_points(points, vertices, triangles)  # a moved marker is put back on the skin
        return surface.sample(triangles, vertices[None])[0]
    ids = landmark_vertex_ids(obj)
    if ids is None:
        raise InputError(None, f"{obj.name!r} has no face landmarks: Place Landmarks first (68 markers)")
    return vertices[ids]


def landmark_vertex_ids(obj: bpy.types.Object) -> np.ndarray | None:
    """The mesh's `sheap_landmark_vertices` (68 vertex ids), None where it has no valid one."""
    ids = np.asarray(obj.data.get(VERTEX_IDS, []), dtype=np.int64).ravel()
    if ids.shape != (68,) or ids.min() < 0 or ids.max() >= len(obj.data.vertices):
        return None
    return ids


def first_guess(vertices: np.ndarray) -> np.ndarray:
    """The reference's landmarks laid over the front of the mesh's bounding box (Blender's Front view)."""
    reference = load_reference()
    face = reference.neutral[reference.landmarks68] @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T
    ref_box = reference.neutral[:reference.face_vertices] @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T
    low, high = vertices.min(0), vertices.max(0)
    corners = np.array([[low[0], low[1], low[2]], [high[0], low[1], high[2]], [low[0], low[1], high[2]]])
    ref_low, ref_high = ref_box.min(0), ref_box.max(0)
    ref_corners = np.array([[ref_low[0], ref_low[1], ref_low[2]], [ref_high[0], ref_low[1], ref_high[2]],
                            [ref_low[0], ref_low[1], ref_high[2]]])
    return fit_similarity(ref_corners, corners).apply(face)


def place_markers(obj: bpy.types.Object, points: np.ndarray) -> list[bpy.types.Object]:
    """68 small empties on the head at `points` (object space), replacing any it had."""
    old = markers(obj)
    if old:
        bpy.data.batch_remove(old)
    size = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))) * 0.04
    out = []
    for number, point in enumerate(points):
        empty = bpy.data.objects.new(f"{obj.name} landmark {number:02d}", None)
        empty.empty_display_type = "SPHERE"
        empty.empty_display_size = max(size, 1e-4)
        empty[MARKER] = number
        for collection in obj.users_collection:
            collection.objects.link(empty)
        empty.parent = obj
        empty.matrix_parent_inverse.identity()
        empty.location = point.tolist()
        out.append(empty)
    return out


class SHEAP_OT_place_arkit_landmarks(bpy.types.Operator):
    """Put the face's 68 landmarks on the head as markers you can move before making its ARKit keys"""

    bl_idname = "sheap.place_arkit_landmarks"
    bl_label = "Place Landmarks"
    bl_options = {"REGISTER", "UNDO"}

    object: StringProperty(name="Object", default="", options={"SKIP_SAVE"},
                           description="The head mesh's name; empty: the panel's character, else the active object")

    def execute(self, context):
        try:
            obj = head_object(context, self.object)
        except InputError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        vertices, triangles = base_mesh(obj)
        ids = landmark_vertex_ids(obj)
        exact = ids is not None
        points = vertices[ids] if exact else first_guess(vertices)
        if not exact:
            points = closest_surface_points(points, vertices, triangles).sample(triangles, vertices[None])[0]
        place_markers(obj, points)
        self.report({"INFO"} if exact else {"WARNING"},
                    f"SHeaP: 68 landmarks on {obj.name}" + ("" if exact else
                                                            ": a first guess, move them onto the face's features"))
        return {"FINISHED"}


def write_keys(obj: bpy.types.Object, base: np.ndarray, offsets: np.ndarray, names: list[str]) -> None:
    """The keys written on the mesh (Basis added where it has none); on failure the mesh is as it was."""
    had_keys = obj.data.shape_keys is not None
    blocks = obj.data.shape_keys.key_blocks if had_keys else {}
    saved = {}
    added = []
    try:
        if not had_keys:
            added.append(obj.shape_key_add(name="Basis", from_mix=False))
        for name, offset in zip(names, offsets):
            block = obj.data.shape_keys.key_blocks.get(name)
            if block is None:
                block = obj.shape_key_add(name=name, from_mix=False)
                added.append(block)
            else:
                saved[name] = np.empty(3 * len(base), dtype=np.float32)
                block.data.foreach_get("co", saved[name])
            block.data.foreach_set("co", (base + offset).astype(np.float32).ravel())
    except Exception:
        for name, coords in saved.items():
            blocks[name].data.foreach_set("co", coords)
        for block in reversed(added):
            obj.shape_key_remove(block)
        raise
    obj.data.update()


class SHEAP_OT_make_arkit_keys(bpy.types.Operator):
    """Make ARKit's 52 shape keys for a head mesh from its landmarks: blinks close its own lids, jawOpen its mouth"""

    bl_idname = "sheap.make_arkit_keys"
    bl_label = "Make ARKit Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    object: StringProperty(name="Object", default="", options={"SKIP_SAVE"},
                           description="The head mesh's name; empty: the panel's character, else the active object")
    replace: BoolProperty(name="Replace", default=False, options={"SKIP_SAVE"},
                          description="Overwrite keys of the same names (otherwise a clash is refused)")
    naming: EnumProperty(name="Naming", items=HABIT_ITEMS, default="arkit", description="How the keys are named")

    def execute(self, context):
        try:
            obj = head_object(context, self.object)
            vertices, triangles = base_mesh(obj)
            landmarks = landmark_points(obj, vertices, triangles)
            names = [key_name(channel, self.naming) for channel in ARKIT_NAMES]
            keys = obj.data.shape_keys
            clash = [name for name in names if keys is not None and name in keys.key_blocks]
            if clash and not self.replace:
                raise InputError(None, f"{obj.name!r} already has {len(clash)} of the keys ({', '.join(clash[:3])}"
                                       f"{' ...' if len(clash) > 3 else ''}): tick Replace to overwrite them")
            try:
                made = make_arkit_keys(vertices, triangles, landmarks)
            except ValueError as exc:
                raise InputError(None, f"{obj.name!r}: {exc}") from None
            write_keys(obj, vertices, made.offsets, names)
        except InputError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"SHeaP: made {len(names)} ARKit shape keys on {obj.name}"
                              f"{f' ({len(clash)} replaced)' if clash else ''}")
        return {"FINISHED"}


def draw_make_keys(layout, context) -> None:
    """The panel's row: Place Landmarks and Make ARKit Shape Keys, for the character or the active mesh."""
    obj = context.scene.sheap_character.target or context.view_layer.objects.active
    box = layout.box()
    if obj is None or obj.type != "MESH":
        box.label(text="Select a head mesh to make ARKit shape keys", icon="INFO")
        return
    placed = len(markers(obj))
    box.label(text=f"{obj.name}: {placed} landmarks placed" if placed else f"{obj.name}: no landmarks yet",
              icon="EMPTY_DATA")
    row = box.row(align=True)
    row.operator("sheap.place_arkit_landmarks", icon="EMPTY_DATA")
    row.operator("sheap.make_arkit_keys", icon="SHAPEKEY_DATA")


classes = (SHEAP_OT_place_arkit_landmarks, SHEAP_OT_make_arkit_keys)
