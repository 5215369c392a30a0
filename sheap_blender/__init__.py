"""SHeaP for Blender: reconstruct an animated FLAME head from footage.

`bpy` is imported only inside register()/unregister(), so `sheap_blender.core` (pure NumPy)
imports anywhere, the backend's Python included.
"""


def register() -> None:
    from . import blender_ui

    blender_ui.register()


def unregister() -> None:
    from . import blender_ui

    blender_ui.unregister()
