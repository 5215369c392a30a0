"""SHeaP for Blender: reconstruct an animated FLAME head from footage.

`bpy` is imported only inside register()/unregister(), so `sheap_blender.core` (pure NumPy)
imports anywhere, the backend's Python included. docs/architecture.md maps the packages.
"""


def register() -> None:
    from . import registration

    registration.register()


def unregister() -> None:
    from . import registration

    registration.unregister()
