"""Render as it looks: the footage composited behind the render, a light rig, a neutral head material.

The viewport shows the footage as the camera's background image, which a render never sees. "Render
over footage" makes the render show it too: film transparent, and in the compositor the footage (the
scene camera's background: the same movie clip or image sequence with the same start frame and
offset, so it matches frame by frame) scaled to the render size behind whatever fed the output,
through an Alpha Over node. The view transform is set to Standard so the footage comes out as it
went in. Only nodes named "SHeaP ..." are ours: turning it off takes them out, links the output back
to what fed it, and puts the render settings it changed back, so the user's own compositing is left
as it was.

Blender 4.2-4.5 keep the compositor in `scene.node_tree` (`scene.use_nodes`); 5.0 made it a
compositor node group of its own, `scene.compositing_node_group`, with a Group Output node.
"""

from __future__ import annotations

import math

import bpy

PREFIX = "SHeaP "
OVER_NODE = "SHeaP over footage"
FOOTAGE_NODE = "SHeaP footage"
SCALE_NODE = "SHeaP footage to render size"
GROUP_NAME = "SHeaP compositing"
SAVED = "sheap_render_saved"  # scene custom property: the render settings we changed, to put back
MADE_TREE = "sheap_made_compositor"  # scene custom property: the compositor was ours to begin with
HEAD_MATERIAL = "SHeaP head"
WORLD_NAME = "SHeaP world"
HEAD_COLOUR = (0.62, 0.6, 0.58, 1.0)  # a light neutral clay, linear
# (name, rotation about FLAME X and Y in degrees, strength W/m^2) of sun lights in FLAME axes (children
# of the rig's root): a sun at rotation 0 shines along -Z, from SHeaP's camera at (0, 0, 1) onto the face
LIGHTS = (("key light", -30.0, -35.0, 3.0), ("fill light", -10.0, 40.0, 1.0), ("rim light", 40.0, 160.0, 1.5))


# ---------------------------------------------------------------------------------------- compositor


def _is_node_group_compositor(scene: bpy.types.Scene) -> bool:
    return hasattr(scene, "compositing_node_group")  # Blender 5.0+


def compositor_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The node tree the scene composites with, or None when it composites nothing."""
    if _is_node_group_compositor(scene):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def _make_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """Make the scene composite (Render Layers -> output), remembering that we did."""
    scene[MADE_TREE] = True
    if _is_node_group_compositor(scene):
        tree = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("NodeGroupOutput")
        layers.location, output.location = (-300, 0), (300, 0)
        tree.links.new(layers.outputs["Image"], output.inputs[0])
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True  # a fresh tree holds Render Layers -> Composite
    return scene.node_tree


def _output_socket(scene: bpy.types.Scene, tree: bpy.types.NodeTree) -> bpy.types.NodeSocket | None:
    """The image input of the node the compositor's result leaves through."""
    kind = "GROUP_OUTPUT" if _is_node_group_compositor(scene) else "COMPOSITE"
    outputs = [n for n in tree.nodes if n.type == kind and n.inputs and not n.name.startswith(PREFIX)]
    if not outputs:
        return None
    active = [n for n in outputs if getattr(n, "is_active_output", False)]
    return (active or outputs)[0].inputs[0]


def _render_layers(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    layers = next((n for n in tree.nodes if n.type == "R_LAYERS"), None) or tree.nodes.new("CompositorNodeRLayers")
    return layers.outputs["Image"]


def _alpha_over_inputs(node: bpy.types.Node) -> tuple[bpy.types.NodeSocket, bpy.types.NodeSocket]:
    """(background, foreground): named in 5.x, the 2nd and 3rd 'Image' inputs before."""
    if "Background" in node.inputs:
        return node.inputs["Background"], node.inputs["Foreground"]
    return node.inputs[1], node.inputs[2]


def _scale_to_render(node: bpy.types.Node) -> None:
    if hasattr(node, "space"):  # 4.x
        node.space = "RENDER_SIZE"
        node.frame_method = "STRETCH"
    else:  # 5.x: menu sockets
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Stretch"


def scene_footage(scene: bpy.types.Scene) -> bpy.types.CameraBackgroundImage | None:
    """The scene camera's first background with a clip or image: the footage the viewport shows."""
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        return None
    for background in camera.data.background_images:
        if (background.source == "MOVIE_CLIP" and background.clip is not None) or \
                (background.source == "IMAGE" and background.image is not None):
            return background
    return None


def _footage_node(tree: bpy.types.NodeTree, background: bpy.types.CameraBackgroundImage) -> bpy.types.Node:
    if background.source == "MOVIE_CLIP":
        node = tree.nodes.new("CompositorNodeMovieClip")
        node.clip = background.clip  # plays by the clip's own frame_start / frame_offset, as the background
    else:
        node = tree.nodes.new("CompositorNodeImage")
        node.image = background.image
        if background.image.source in {"SEQUENCE", "MOVIE"}:
            user = background.image_user
            node.frame_start, node.frame_offset = user.frame_start, user.frame_offset
            node.frame_duration, node.use_auto_refresh = user.frame_duration, True
            node.use_cyclic = user.use_cyclic
    return node


def is_enabled(scene: bpy.types.Scene) -> bool:
    """Whether the scene renders over the footage (our Alpha Over node is in its compositor)."""
    tree = compositor_tree(scene)
    return tree is not None and OVER_NODE in tree.nodes


def enable(scene: bpy.types.Scene) -> bool:
    """Composite the scene camera's footage behind the render (again, when already on: it follows the
    camera's current footage). Returns False when the scene camera shows no footage (then the render
    is only made transparent)."""
    saved = scene.get(SAVED)
    if saved is None:
        view = scene.view_settings
        scene[SAVED] = {"film_transparent": scene.render.film_transparent, "view_transform": view.view_transform,
                        "look": view.look}
    disable(scene, restore=False)
    scene.render.film_transparent = True
    try:
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
    except TypeError:  # a colour configuration without these: leave it
        pass
    background = scene_footage(scene)
    if background is None:
        return False
    tree = compositor_tree(scene) or _make_tree(scene)
    target = _output_socket(scene, tree)
    if target is None:  # a compositor without an output: give it one
        if _is_node_group_compositor(scene):
            if not any(s.in_out == "OUTPUT" for s in tree.interface.items_tree if s.item_type == "SOCKET"):
                tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            target = tree.nodes.new("NodeGroupOutput").inputs[0]
        else:
            target = tree.nodes.new("CompositorNodeComposite").inputs[0]
    source = target.links[0].from_socket if target.is_linked else _render_layers(tree)
    footage = _footage_node(tree, background)
    scale = tree.nodes.new("CompositorNodeScale")
    over = tree.nodes.new("CompositorNodeAlphaOver")
    for node, name, dx, dy in ((footage, FOOTAGE_NODE, -500, -300), (scale, SCALE_NODE, -250, -300),
                               (over, OVER_NODE, 0, -100)):
        node.name = node.label = name
        node.location = (target.node.location.x - 250 + dx, target.node.location.y + dy)
    _scale_to_render(scale)
    background_in, foreground_in = _alpha_over_inputs(over)
    tree.links.new(footage.outputs["Image"], scale.inputs[0])
    tree.links.new(scale.outputs[0], background_in)
    tree.links.new(source, foreground_in)
    tree.links.new(over.outputs[0], target)
    return True


def disable(scene: bpy.types.Scene, restore: bool = True) -> None:
    """Take our nodes out (the output is fed again by what fed our Alpha Over); with `restore`, put back
    the render settings and the compositing state we changed. Anything else is left alone."""
    tree = compositor_tree(scene)
    if tree is not None:
        over = tree.nodes.get(OVER_NODE)
        if over is not None:
            source = _alpha_over_inputs(over)[1]
            source = source.links[0].from_socket if source.is_linked else None
            targets = [link.to_socket for link in over.outputs[0].links]
            for node in [n for n in tree.nodes if n.name.startswith(PREFIX)]:
                tree.nodes.remove(node)
            if source is not None:
                for target in targets:
                    tree.links.new(source, target)
        else:
            for node in [n for n in tree.nodes if n.name.startswith(PREFIX)]:
                tree.nodes.remove(node)
    if not restore:
        return
    if scene.get(MADE_TREE):
        del scene[MADE_TREE]
        if _is_node_group_compositor(scene):
            if tree is not None and tree.name.startswith(GROUP_NAME):
                scene.compositing_node_group = None
                if tree.users == 0:
                    bpy.data.node_groups.remove(tree)
        else:
            scene.use_nodes = False
    saved = scene.get(SAVED)
    if saved is not None:
        scene.render.film_transparent = bool(saved["film_transparent"])
        try:
            scene.view_settings.view_transform = saved["view_transform"]
            scene.view_settings.look = saved["look"]
        except TypeError:
            pass
        del scene[SAVED]


# ---------------------------------------------------------------------------------------- lights, material


def head_material(add) -> bpy.types.Material:
    """A neutral, slightly rough clay (Principled BSDF), shared by every SHeaP head; `add` records it
    when it is made (the importer's transaction)."""
    material = bpy.data.materials.get(HEAD_MATERIAL)
    if material is not None:
        return material
    material = add(bpy.data.materials.new(HEAD_MATERIAL))
    material.diffuse_color = HEAD_COLOUR  # the viewport's solid mode
    material.roughness = 0.6
    if material.node_tree is None:  # before 5.0 a new material has no nodes until asked
        material.use_nodes = True
    bsdf = next((n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = HEAD_COLOUR
        bsdf.inputs["Roughness"].default_value = 0.6
    return material


def build_lights(stem: str, root: bpy.types.Object, collection: bpy.types.Collection, add) -> list[bpy.types.Object]:
    """Key, fill and rim sun lights as children of the rig's root (FLAME axes, so they stay put with
    SHeaP's camera). `add` records each datablock made (the importer's transaction)."""
    lights = []
    for name, about_x, about_y, strength in LIGHTS:
        data = add(bpy.data.lights.new(f"{stem} {name}", "SUN"))
        data.energy = strength
        data.angle = math.radians(10.0)  # soft shadows
        obj = add(bpy.data.objects.new(f"{stem} {name}", data))
        obj.rotation_mode = "XYZ"
        obj.rotation_euler = (math.radians(about_x), math.radians(about_y), 0.0)
        obj.location = (0.0, 0.0, 0.6)
        obj.parent = root
        obj["sheap_role"] = "light"
        collection.objects.link(obj)
        lights.append(obj)
    return lights


def ensure_world(scene: bpy.types.Scene, add) -> None:
    """A dim grey world (soft ambient light) when the scene has none; a scene's own world is kept."""
    if scene.world is not None:
        return
    world = add(bpy.data.worlds.new(WORLD_NAME))
    world.color = (0.05, 0.05, 0.05)
    if world.node_tree is None:
        world.use_nodes = True
    background = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
    if background is not None:
        background.inputs["Color"].default_value = (0.05, 0.05, 0.05, 1.0)
        background.inputs["Strength"].default_value = 1.0
    scene.world = world
