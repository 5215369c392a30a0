"""The Gaussian preview: a point cloud bound to the head's triangles, following it exactly.

`build_preview` makes "<clip> Gaussians": a mesh of loose vertices, one per Gaussian, whose point
attributes (core/gaussian_points.py) hold the bound triangle's three vertex indices, the
barycentric weights, the normal offset and the radius in units of the triangle's size, opacity
and linear colour. A geometry-nodes modifier (its own node group, named like the object) reads
the head's evaluated geometry (shape keys and skinning applied) through Object Info, samples the
three corners' positions by index, and turns the vertices into points at

    centre = b0 v0 + b1 v1 + b2 v2 + offset * s * n,   radius = radius_factor * s

(s = sqrt(|e1 x e2|), n = unit normal: `core.gaussians.pose_gaussians`), with the material
"SHeaP Gaussians" (emission of the colour, transparent by 1 - opacity) for EEVEE and Cycles.
The object sits beside the head (same parent, the head's transform) and Object Info is relative,
so the points follow the head however the rig is moved.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
import numpy as np

from ..core.gaussian_points import ATTRIBUTES, point_attributes
from ..core.gaussians import GaussianBinding
from ..rig.build import ROLE

PREVIEW_ROLE = "gaussians"
MATERIAL_NAME = "SHeaP Gaussians"
MODIFIER_NAME = "SHeaP Gaussians"

_FOREACH_KEY = {"INT": "value", "FLOAT": "value", "FLOAT2": "vector", "FLOAT_VECTOR": "vector",
                "FLOAT_COLOR": "color"}


# ---------------------------------------------------------------------------------------- finding


def is_preview(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.get(ROLE) == PREVIEW_ROLE


def scene_previews(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """Every Gaussian preview in the scene."""
    return [obj for obj in scene.objects if is_preview(obj)]


def rig_previews(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The Gaussian previews of one rig (children of its root, at any depth)."""
    return [obj for obj in root.children_recursive if is_preview(obj)]


# ---------------------------------------------------------------------------------------- visibility


def set_visible(obj: bpy.types.Object, visible: bool) -> None:
    """Show or hide a preview in the viewport (hidden: not evaluated at all) and in renders."""
    obj.hide_viewport = not visible
    obj.hide_render = not visible


def show_previews(scene: bpy.types.Scene, visible: bool) -> int:
    """Show or hide every Gaussian preview of the scene; returns how many there are."""
    previews = scene_previews(scene)
    for obj in previews:
        set_visible(obj, visible)
    return len(previews)


# ---------------------------------------------------------------------------------------- node tree


def _socket(sockets, name: str, index: int = 0):
    """The `index`-th available socket with identifier or label `name`.

    Nodes can keep unavailable sockets of other types, and some labels changed in 5.0 ("Fac" is
    shown as "Factor") while the identifiers stayed.
    """
    matches = [s for s in sockets if name in (s.identifier, s.name) and s.enabled]
    if len(matches) <= index:
        raise LookupError(f"no socket {name!r} #{index}")
    return matches[index]


class _Builder:
    """Small helpers to lay out a node tree from Python."""

    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree
        self.column = 0

    def node(self, kind: str, **settings) -> bpy.types.Node:
        node = self.tree.nodes.new(kind)
        for key, value in settings.items():
            setattr(node, key, value)
        node.location = (200 * (self.column // 8), -160 * (self.column % 8))
        self.column += 1
        return node

    def link(self, output, node: bpy.types.Node, name: str, index: int = 0) -> None:
        self.tree.links.new(output, _socket(node.inputs, name, index))

    def attribute(self, name: str, data_type: str):
        node = self.node("GeometryNodeInputNamedAttribute", data_type=data_type)
        _socket(node.inputs, "Name").default_value = name
        return _socket(node.outputs, "Attribute")

    def vector(self, operation: str, a, b=None):
        """Vector Math on sockets `a` (and `b`: a vector, or a float for SCALE); its main output."""
        node = self.node("ShaderNodeVectorMath", operation=operation)
        self.link(a, node, "Vector")
        if b is not None:
            if operation == "SCALE":
                self.link(b, node, "Scale")
            else:
                self.link(b, node, "Vector", 1)
        return _socket(node.outputs, "Value" if operation == "LENGTH" else "Vector")

    def math(self, operation: str, a, b=None):
        node = self.node("ShaderNodeMath", operation=operation)
        self.link(a, node, "Value")
        if b is not None:
            self.link(b, node, "Value", 1)
        return _socket(node.outputs, "Value")


def _new_tree(name: str, head: bpy.types.Object, material: bpy.types.Material) -> bpy.types.NodeTree:
    """Vertices of the preview mesh -> points at their Gaussians' centres on `head`'s current state.

    The head is set in the Object Info node, not passed as a modifier input: a modifier's inputs
    are ID properties up to 4.x and are not settable that way from Python in 5.x.
    """
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    try:
        tree.interface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        tree.interface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        b = _Builder(tree)
        group_in = b.node("NodeGroupInput")
        group_out = b.node("NodeGroupOutput")
        info = b.node("GeometryNodeObjectInfo", transform_space="RELATIVE")
        _socket(info.inputs, "Object").default_value = head
        head = _socket(info.outputs, "Geometry")
        position = _socket(b.node("GeometryNodeInputPosition").outputs, "Position")

        corners = []
        for k in range(3):
            sample = b.node("GeometryNodeSampleIndex", data_type="FLOAT_VECTOR", domain="POINT")
            b.link(head, sample, "Geometry")
            b.link(position, sample, "Value")
            b.link(b.attribute(f"sheap_v{k}", "INT"), sample, "Index")
            corners.append(_socket(sample.outputs, "Value"))
        v0, v1, v2 = corners

        separate = b.node("ShaderNodeSeparateXYZ")
        b.link(b.attribute("sheap_bary", "FLOAT_VECTOR"), separate, "Vector")
        weighted = [b.vector("SCALE", v, _socket(separate.outputs, axis)) for v, axis in zip(corners, "XYZ")]
        on_triangle = b.vector("ADD", b.vector("ADD", weighted[0], weighted[1]), weighted[2])

        cross = b.vector("CROSS_PRODUCT", b.vector("SUBTRACT", v1, v0), b.vector("SUBTRACT", v2, v0))
        size = b.math("SQRT", b.vector("LENGTH", cross))  # s = sqrt(|e1 x e2|)
        # offset * s * n = offset * s * cross / s^2 = cross * (offset / s); Math's divide by 0 gives 0
        along_normal = b.vector("SCALE", cross, b.math("DIVIDE", b.attribute("sheap_offset", "FLOAT"), size))
        centre = b.vector("ADD", on_triangle, along_normal)
        radius = b.math("MULTIPLY", b.attribute("sheap_radius", "FLOAT"), size)

        to_points = b.node("GeometryNodeMeshToPoints", mode="VERTICES")
        b.link(_socket(group_in.outputs, "Geometry"), to_points, "Mesh")
        b.link(centre, to_points, "Position")
        b.link(radius, to_points, "Radius")
        set_material = b.node("GeometryNodeSetMaterial")
        b.link(_socket(to_points.outputs, "Points"), set_material, "Geometry")
        _socket(set_material.inputs, "Material").default_value = material
        b.link(_socket(set_material.outputs, "Geometry"), group_out, "Geometry")
    except BaseException:
        bpy.data.node_groups.remove(tree)
        raise
    tree["sheap_gaussians"] = 1
    return tree


def _new_material() -> bpy.types.Material:
    """Emission of the point's colour, mixed with transparency by its opacity (EEVEE and Cycles)."""
    material = bpy.data.materials.new(MATERIAL_NAME)
    try:
        if material.node_tree is None:
            material.use_nodes = True
        nodes, links = material.node_tree.nodes, material.node_tree.links
        nodes.clear()
        colour = nodes.new("ShaderNodeAttribute")
        colour.attribute_type = "GEOMETRY"
        colour.attribute_name = "sheap_colour"
        opacity = nodes.new("ShaderNodeAttribute")
        opacity.attribute_type = "GEOMETRY"
        opacity.attribute_name = "sheap_opacity"
        emission = nodes.new("ShaderNodeEmission")
        _socket(emission.inputs, "Strength").default_value = 1.0
        transparent = nodes.new("ShaderNodeBsdfTransparent")
        mix = nodes.new("ShaderNodeMixShader")
        output = nodes.new("ShaderNodeOutputMaterial")
        links.new(_socket(colour.outputs, "Color"), _socket(emission.inputs, "Color"))
        links.new(_socket(opacity.outputs, "Fac"), _socket(mix.inputs, "Fac"))
        links.new(_socket(transparent.outputs, "BSDF"), _socket(mix.inputs, "Shader", 0))
        links.new(_socket(emission.outputs, "Emission"), _socket(mix.inputs, "Shader", 1))
        links.new(_socket(mix.outputs, "Shader"), _socket(output.inputs, "Surface"))
        for k, node in enumerate((colour, opacity, emission, transparent, mix, output)):
            node.location = (220 * (k // 2), -200 * (k % 2))
        material.diffuse_color = (0.8, 0.6, 0.5, 1.0)  # solid-mode colour
    except BaseException:
        bpy.data.materials.remove(material)
        raise
    material["sheap_gaussians"] = 1
    return material


def _shared_material() -> bpy.types.Material | None:
    for material in bpy.data.materials:
        if material.get("sheap_gaussians") == 1 and material.library is None:
            return material
    return None


# ---------------------------------------------------------------------------------------- building


def build_preview(
    name: str,
    head: bpy.types.Object,
    faces: np.ndarray,
    binding: GaussianBinding,
    rest_centres: np.ndarray,
    collection: bpy.types.Collection,
    add: Callable[[bpy.types.ID], bpy.types.ID] = lambda datablock: datablock,
) -> bpy.types.Object:
    """The preview object for `binding` on `head`, linked to `collection`, visible.

    `rest_centres` (G, 3) are the mesh's own vertex positions (what shows with the modifier off);
    `add` is called with every datablock made here as soon as it exists (the importer's undo list).
    """
    material = _shared_material() or add(_new_material())
    tree = add(_new_tree(name, head, material))

    mesh = add(bpy.data.meshes.new(name))
    mesh.vertices.add(binding.count)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(rest_centres, dtype=np.float32).ravel())
    for attribute, values in point_attributes(faces, binding).items():
        kind = ATTRIBUTES[attribute]
        layer = mesh.attributes.new(attribute, kind, "POINT")
        layer.data.foreach_set(_FOREACH_KEY[kind], values)
    mesh.update()

    obj = add(bpy.data.objects.new(name, mesh))
    obj[ROLE] = PREVIEW_ROLE
    obj["sheap_gaussian_count"] = binding.count
    obj.parent = head.parent
    obj.matrix_parent_inverse = head.matrix_parent_inverse.copy()
    obj.matrix_basis = head.matrix_basis.copy()
    modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = tree
    collection.objects.link(obj)
    set_visible(obj, True)
    return obj


def remove_previews(previews: list[bpy.types.Object]) -> None:
    """Delete previews with their meshes and node groups; the shared material once nothing uses it."""
    if not previews:
        return
    doomed = []
    for obj in previews:
        doomed.append(obj)
        if obj.data is not None and obj.data.users <= 1:
            doomed.append(obj.data)
        for modifier in obj.modifiers:
            tree = getattr(modifier, "node_group", None)
            if tree is not None and tree.get("sheap_gaussians") is not None and tree.users <= 1:
                doomed.append(tree)
    bpy.data.batch_remove(doomed)
    for material in [m for m in bpy.data.materials if m.get("sheap_gaussians") is not None]:
        if material.users == 0:
            bpy.data.materials.remove(material)
