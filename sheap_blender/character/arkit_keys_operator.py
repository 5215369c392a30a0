"""Make ARKit Shape Keys: the 52 ARKit keys made for a head mesh that has none (core/arkit/keys.py).

The face's 68 landmarks (Multi-PIE layout) come from, in this order: the head's markers (empties parented
to it, `sheap_landmark` = their number, which the user may move before making the keys again); the
mesh's `sheap_landmark_vertices` property (68 vertex ids); else the backend finds them on a render of
the head as Blender's Front view shows it (the face toward -Y, +Z up; then from its sides and back:
backend_client/mesh_landmarks.py), and they are then left as markers. Where no face is seen, Place Landmarks lays them
roughly over the head's front for the user to move; Make ARKit Shape Keys refuses. The base shape and
the keys the mesh had stay as they were; a name clash is refused unless `replace`; all or nothing; one
undo step.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..core.arkit.keys import NAMING_HABITS, key_name, make_arkit_keys
from ..core.arkit.mesh_transfer import closest_surface_points
from ..core.arkit.names import ARKIT_NAMES
from ..core.arkit.reference import load_reference
from ..core.errors import InputError

MARKER = "sheap_landmark"
VERTEX_IDS = "sheap_landmark_vertices"
HABIT_ITEMS = [(habit, label, f"Shape keys named like {label}") for habit, label in
               zip(NAMING_HABITS, ("eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L"))]


def panel_head(context) -> bpy.types.Object | None:
    """The panel's character when it is a mesh, else the active mesh, else the largest mesh under its armature."""
    target, active = context.scene.sheap_character.target, context.view_layer.objects.active
    if target is not None and target.type == "MESH":
        return target
    if active is not None and active.type == "MESH":
        return active
    meshes = [child for child in target.children_recursive if child.type == "MESH"] if target is not None else []
    return max(meshes, key=lambda mesh: len(mesh.data.vertices)) if meshes else target or active


def head_object(context, name: str) -> bpy.types.Object:
    """The named mesh, else the panel's head (panel_head) (InputError when none is a mesh)."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(None, f"no object named {name!r}")
    else:
        obj = panel_head(context)
    if obj is None or obj.type != "MESH" or not len(obj.data.vertices) or not len(obj.data.polygons):
        raise InputError(None, f"{obj.name if obj else 'nothing'!r} is not a head mesh: choose a mesh object")
    if obj.mode == "EDIT":  # its mesh data lags behind the edit, and keys cannot be added there
        raise InputError(None, f"{obj.name!r} is in Edit Mode: leave it first (Tab)")
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


TO_FACE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # Blender (x, y, z) -> face (x, z, -y)


def found_landmarks(context, obj: bpy.types.Object, vertices: np.ndarray, triangles: np.ndarray,
                    python: str = "", rough: bool = False) -> tuple[np.ndarray, bool]:
    """(68, 3) in the object's space: the backend's, on renders of the head as Blender's Front view shows it
    (then its sides and back); with `rough`, where it sees no face, the reference's laid over the head's front
    (and True: a rough guess)."""
    from ..backend_client.mesh_landmarks import NoFaceFound, find_landmarks, rough_landmarks
    from ..settings import preferences

    prefs = preferences.get_preferences(context)
    python = python or (prefs.python_path() if prefs else str(preferences.default_backend_python()))
    world = np.array(obj.matrix_world)
    in_face_frame = (vertices @ world[:3, :3].T + world[:3, 3]) @ TO_FACE.T
    guessed = False
    try:
        marks = find_landmarks(python, in_face_frame, triangles, obj.name)
    except NoFaceFound:
        if not rough:
            raise
        reference = load_reference()
        face = reference.neutral[:reference.face_vertices]
        marks, guessed = rough_landmarks(in_face_frame, face, face[reference.landmarks68]), True
    local = (marks @ TO_FACE - world[:3, 3]) @ np.linalg.inv(world[:3, :3]).T
    return closest_surface_points(local, vertices, triangles).sample(triangles, vertices[None])[0], guessed


def landmark_points(context, obj: bpy.types.Object, vertices: np.ndarray, triangles: np.ndarray,
                    python: str = "") -> tuple[np.ndarray, str]:
    """(68, 3) the landmarks in the object's space, on its surface, and where they came from: the markers,
    else the mesh's `sheap_landmark_vertices`, else found by the backend on a render."""
    placed = markers(obj)
    if placed:
        if [int(m[MARKER]) for m in placed] != list(range(68)):
            raise InputError(None, f"{obj.name!r} has {len(placed)} landmark markers, not the 68 numbered 0-67: "
                                   "Place Landmarks again")
        inverse = obj.matrix_world.inverted()
        points = np.array([(inverse @ m.matrix_world.translation)[:] for m in placed])
        surface = closest_surface_points(points, vertices, triangles)  # a moved marker is put back on the skin
        return surface.sample(triangles, vertices[None])[0], "markers"
    ids = landmark_vertex_ids(obj)
    if ids is not None:
        return vertices[ids], "vertex ids"
    return found_landmarks(context, obj, vertices, triangles, python)[0], "found"


def landmark_vertex_ids(obj: bpy.types.Object) -> np.ndarray | None:
    """The mesh's `sheap_landmark_vertices` (68 vertex ids), None where it has no valid one."""
    ids = np.asarray(obj.data.get(VERTEX_IDS, []), dtype=np.int64).ravel()
    if ids.shape != (68,) or ids.min() < 0 or ids.max() >= len(obj.data.vertices):
        return None
    return ids


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
    backend_python: StringProperty(name="Backend Python", default="", options={"SKIP_SAVE"},
                                   description="Finds the landmarks; empty: the preferences'")

    def execute(self, context):
        try:
            obj = head_object(context, self.object)
            vertices, triangles = base_mesh(obj)
            ids = landmark_vertex_ids(obj)
            points, guessed = (vertices[ids], False) if ids is not None else found_landmarks(
                context, obj, vertices, triangles, self.backend_python, rough=True)
        except InputError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        place_markers(obj, points)
        if guessed:
            self.report({"WARNING"}, f"SHeaP: {obj.name}: no face found on its renders: 68 landmarks roughly over "
                                     "its front, move each onto its feature, then Make ARKit Shape Keys")
        else:
            where = "its landmark vertices" if ids is not None else "found on a render"
            self.report({"INFO"}, f"SHeaP: 68 landmarks on {obj.name} ({where}): move any that are off, then "
                                  "make the keys again")
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
    backend_python: StringProperty(name="Backend Python", default="", options={"SKIP_SAVE"},
                                   description="Finds the landmarks where the head has none; empty: the preferences'")

    def execute(self, context):
        try:
            obj = head_object(context, self.object)
            vertices, triangles = base_mesh(obj)
            names = [key_name(channel, self.naming) for channel in ARKIT_NAMES]
            keys = obj.data.shape_keys
            clash = [name for name in names if keys is not None and name in keys.key_blocks]
            if clash and not self.replace:
                raise InputError(None, f"{obj.name!r} already has {len(clash)} of the keys ({', '.join(clash[:3])}"
                                       f"{' ...' if len(clash) > 3 else ''}): tick Replace to overwrite them")
            landmarks, source = landmark_points(context, obj, vertices, triangles, self.backend_python)
            try:
                made = make_arkit_keys(vertices, triangles, landmarks)
            except ValueError as exc:
                raise InputError(None, f"{obj.name!r}: {exc}") from None
            write_keys(obj, vertices, made.offsets, names)
        except InputError as exc:
            self.report({"ERROR"}, f"SHeaP: {exc}")
            return {"CANCELLED"}
        if source != "markers":  # shown, to be moved and the keys made again
            place_markers(obj, made.landmarks)
        self.report({"INFO"}, f"SHeaP: made {len(names)} ARKit shape keys on {obj.name}"
                              f"{f' ({len(clash)} replaced)' if clash else ''}")
        if made.other_parts:
            self.report({"WARNING"}, f"SHeaP: {obj.name}: {made.other_parts} separate part(s) of the mesh off the "
                                     "face (eyeballs, teeth?) left as they are: eyes turn with eye bones, the lower "
                                     "teeth follow the jaw bone (docs/arkit.md)")
        return {"FINISHED"}


def made_habit(obj: bpy.types.Object) -> str | None:
    """The naming habit of the 52 keys the mesh has (all of them, in one habit), None when it has not."""
    keys = obj.data.shape_keys
    for habit in NAMING_HABITS if keys is not None else ():
        if all(key_name(channel, habit) in keys.key_blocks for channel in ARKIT_NAMES):
            return habit
    return None


def draw_make_keys(layout, context) -> None:
    """The panel's row: Place Landmarks and Make ARKit Shape Keys, for the character or the active mesh."""
    obj = panel_head(context)
    box = layout.column(align=True)
    if obj is None or obj.type != "MESH":
        box.label(text="Select a head mesh to make ARKit shape keys", icon="INFO")
        return
    placed = len(markers(obj))
    box.label(text=f"{obj.name}: {placed} landmarks placed" if placed else f"{obj.name}: no landmarks yet",
              icon="EMPTY_DATA")
    row = box.row(align=True)
    row.operator("sheap.place_arkit_landmarks", icon="EMPTY_DATA")
    habit = made_habit(obj) if placed else None
    props = row.operator("sheap.make_arkit_keys", icon="SHAPEKEY_DATA",
                         text="Make Again (Replace)" if habit else "Make ARKit Shape Keys")
    if habit:  # keys made here before, markers moved since: made again over the old ones, named alike
        props.replace, props.naming = True, habit


classes = (SHEAP_OT_place_arkit_landmarks, SHEAP_OT_make_arkit_keys)
