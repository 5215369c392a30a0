"""Make ARKit's 52 shape keys for a head mesh in a .blend, headless (the panel's Make ARKit Shape Keys).

    blender -b -P scripts/make_arkit_keys.py -- HEAD.blend -o OUT.blend [--object NAME] [--replace]
            [--naming arkit|upper_camel|suffix] [--backend-python P]
    python scripts/make_arkit_keys.py HEAD.blend -o OUT.blend ...     # where bpy is installed as a module

The head's landmarks are its markers, its `sheap_landmark_vertices`, else found by the backend on a front
render (README, "Make ARKit shape keys for any head"). OUT.blend is HEAD.blend with the keys (and the
landmark markers) on the object; HEAD.blend is never changed. Without --object: the only mesh in the file
(none or several: name one). Bad input: one line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="make_arkit_keys.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("blend", type=Path, help="the .blend holding the head mesh")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .blend to write")
    parser.add_argument("--object", default="", help="the head mesh's name (default: the only mesh)")
    parser.add_argument("--replace", action="store_true", help="overwrite keys of the same names")
    parser.add_argument("--naming", default="arkit", choices=["arkit", "upper_camel", "suffix"])
    parser.add_argument("--backend-python", default="", help="finds the landmarks (default: .venv/bin/python)")
    return parser.parse_args(argv)


def make_keys(args: argparse.Namespace) -> str:
    """The keys made and the file written; an error line (raised as SystemExit's message) otherwise."""
    import bpy

    source, output = args.blend.expanduser().absolute(), args.output.expanduser().absolute()
    if not source.is_file():
        raise SystemExit(f"{source}: .blend not found")
    if output == source:
        raise SystemExit(f"{output}: would overwrite the input: choose another name")
    if not output.parent.is_dir():
        raise SystemExit(f"{output}: folder {output.parent} does not exist")
    bpy.ops.wm.open_mainfile(filepath=str(source))
    name = args.object
    if not name:
        meshes = [obj.name for obj in bpy.data.objects if obj.type == "MESH"]
        if len(meshes) != 1:
            raise SystemExit(f"{source}: {len(meshes)} meshes ({', '.join(meshes[:5])}): name the head with --object")
        name = meshes[0]
    python = args.backend_python or str(REPO / ".venv" / "bin" / "python")
    try:
        bpy.ops.sheap.make_arkit_keys(object=name, replace=args.replace, naming=args.naming,
                                      backend_python=os.path.abspath(python))
    except RuntimeError as exc:
        raise SystemExit(f"{source}: {str(exc).strip().splitlines()[-1]}") from None
    temporary = output.with_name(f".{output.name}.tmp.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True)
        os.replace(temporary, output)
    except (RuntimeError, OSError) as exc:
        temporary.unlink(missing_ok=True)
        raise SystemExit(f"{output}: cannot save it ({str(exc).strip().splitlines()[-1]})") from None
    return f"make_arkit_keys: 52 ARKit shape keys on {name!r}: wrote {output}"


def main() -> int:
    if str(REPO) not in sys.path:  # a script, not the extension: it may use the repository's package
        sys.path.insert(0, str(REPO))
    args = parse_args(sys.argv)
    import bpy

    import sheap_blender

    registered = not hasattr(bpy.types.Scene, "sheap")
    if registered:
        sheap_blender.register()
    try:
        print(make_keys(args), flush=True)
        return 0
    except SystemExit as exc:
        print(f"make_arkit_keys: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if registered:
            sheap_blender.unregister()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # bpy can hang in interpreter shutdown: leave at once
