"""Batch-bake clips into .blend files, headless.

    blender -b -P scripts/bake.py -- CLIP... --out DIR [--flame F] [--weights W] [--backend-python P]
                                     [--rig FILE.blend | --character FILE.blend [--character-object NAME]
                                      [--set-scene-timing]]
                                     [--device auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]
                                     [--smooth S] [--face X,Y | --people all|N] [--export EXT]
    python scripts/bake.py -- CLIP... --out DIR ...        (where bpy is installed as a module)

Each clip becomes DIR/<clip>.blend: a fresh scene with the FLAME rig, every frame keyed, the
camera matched to the footage; or, with --rig, the given .blend with the animation baked onto
the FLAME rig in it (the selected one, else the first this extension made); or, with --character, the
given character's .blend (opened, never changed on disk) with the clip's ARKit take keyed on the character:
every mesh under its armature with ARKit-named shape keys (each mesh's mapping saved on it, else matched
from the key names), its head, neck, eye and jaw bones (chosen on it, else found by their usual names). The
file's only character is driven, or the one --character-object names (its armature, one of its meshes, or a
collection); the take is retimed to the file's scene fps unless --set-scene-timing sets the scene to the clip.
--face X,Y follows the person nearest that point on each clip's first frame (fractions of the frame's width and height
from its top-left corner); without it, the largest face. --people all gives every person who appears a
rig of their own in the clip's .blend (a collection "SHeaP <clip> person N" each; their results
DIR/<clip>.personN.sheap.safetensors, thumbnails and DIR/<clip>.people.json beside it); a clip where nobody
is found fails like any bad clip. --people N follows person N as the backend's `people` command numbers
them. --preview also writes DIR/<clip>.preview.mp4 (with --people all one per person,
DIR/<clip>.personN.preview.mp4), the head drawn over every footage frame (for review without Blender). --export EXT
(glb, gltf, fbx, abc, usd, usdc, usda) also writes the head (or the driven character) beside each .blend,
DIR/<clip>.EXT (with --people all DIR/<clip>.personN.EXT), as the panel's Export Head does. One backend stays
warm for the whole batch. The import's warnings (e.g. frames that may show another person) are
lines "bake: CLIP: warning: ..." on stderr. A clip that fails gets one line on stderr and the batch
goes on; the exit code is 1 if any clip failed (2, before any clip, when FLAME, the weights or the
backend are missing, or --character's file does not name one character). --ray auto|ADDRESS runs the
batch as one Ray task per clip, on a local Ray instance or a cluster (scripts/ray_batch.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="bake.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", help="video files, image folders or printf patterns")
    parser.add_argument("--out", required=True, type=Path, help="folder for the .blend files")
    parser.add_argument("--flame", help="FLAME .pkl or converted .safetensors (default: weights/flame.safetensors)")
    parser.add_argument("--weights", help="SHeaP archive (default: weights/model_expressive.pt)")
    parser.add_argument("--backend-python", help="the backend's Python (default: .venv/bin/python)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--rig", type=Path, help="a .blend holding a FLAME rig made by this extension")
    target.add_argument("--character", type=Path,
                        help="a .blend holding a character with ARKit-52 shape keys: the take is keyed on it")
    parser.add_argument("--character-object", metavar="NAME",
                        help="the character in --character's file: its armature, one of its meshes or a collection "
                             "(default: the file's only character)")
    parser.add_argument("--set-scene-timing", action="store_true",
                        help="with --character: set the scene's fps and frame range from the clip (default: the take "
                             "is retimed to the scene's fps)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="the network's precision (auto: bfloat16 where native and within the self-check's limits)")
    parser.add_argument("--smooth", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--face", type=_face, default=None, metavar="X,Y",
                        help="follow the person nearest this point on the first frame: fractions 0..1 of the "
                             "frame's width and height from its top-left corner (default: the largest face)")
    parser.add_argument("--people", type=_people, default=None, metavar="all|N",
                        help="all: a rig for every person who appears, each in its own collection of the clip's "
                             ".blend; N: follow person N as `python -m backend people` numbers them")
    parser.add_argument("--preview", action="store_true",
                        help="also write DIR/<clip>.preview.mp4: the head drawn over every footage frame, for review "
                             "without Blender (python -m backend preview)")
    parser.add_argument("--export", type=_export_extension, default=None, metavar="EXT",
                        help="also write the head (or the driven character) beside each .blend as DIR/<clip>.EXT: "
                             "glb, gltf, fbx, abc, usd, usdc or usda (the panel's Export Head)")
    from ray_batch import add_arguments  # scripts/ray_batch.py: --ray auto|ADDRESS and its options

    add_arguments(parser)
    return parser.parse_args(argv)


def _face(text: str) -> tuple[float, float] | None:
    from sheap_blender.core.result.face_choice import parse_face

    try:
        return parse_face(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _export_extension(text: str) -> str:
    from sheap_blender.core.errors import InputError
    from sheap_blender.core.export.export_format import format_for

    extension = "." + text.strip().lstrip(".").lower()
    try:
        format_for(f"head{extension}")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return extension


def _people(text: str) -> str | int:
    if text.strip().lower() == "all":
        return "all"
    if text.strip().isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: give all, or a person's number (1, 2, ... as `people` lists them)")


class BakeFailure(Exception):
    """One clip could not be baked; the message is the one line the user sees."""


def unique_names(clips: list[str]) -> list[str]:
    """Output names from the clips' names, made unique: shotA/face.mp4 and shotB/face.mp4 -> face, face-2."""
    names, seen = [], {}
    for clip in clips:
        path = Path(clip.rstrip("/\\"))
        name = (path.parent.name if "%" in path.name else path.stem) or "clip"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def bake_clip(clip: str, name: str, args: argparse.Namespace, flame: str, weights: str, python: str) -> None:
    """Reconstruct one clip and save its .blend (written to a temporary name, then renamed)."""
    import bpy

    from sheap_blender.backend_client.reconstruction import Reconstruction, Request
    from sheap_blender.core.errors import InputError
    from sheap_blender.reconstruct.importer import import_result

    started = time.perf_counter()
    target = args.out / f"{name}.blend"
    result_path = args.out / f"{name}.sheap.safetensors"
    source = args.rig or args.character
    try:
        if source is not None:
            bpy.ops.wm.open_mainfile(filepath=str(source))
        else:
            bpy.ops.wm.read_factory_settings(use_empty=True)
    except RuntimeError as exc:
        raise BakeFailure(f"{source}: cannot open it ({str(exc).strip().splitlines()[-1]})") from None
    run = Reconstruction(Request(footage=os.path.abspath(clip), output=str(result_path), flame=flame,
                                 weights=weights, backend_python=python, device=args.device, precision=args.precision,
                                 batch_size=args.batch_size, smooth=args.smooth, face=args.face,
                                 people=args.people))

    def show(run: Reconstruction) -> None:
        if run.total:
            print(f"bake: {name}: {run.frame_line}", flush=True)

    run.wait(on_progress=show)
    if run.state != "done":
        raise BakeFailure(run.error)
    try:
        if args.character is not None:
            made = drive_character(args, run.result_path, flame)
        elif args.people == "all":
            from sheap_blender.reconstruct.people_import import import_people

            made = import_people(bpy.context, run.people_path, flame)
        else:
            made = import_result(bpy.context, run.result_path, flame, onto_selected=args.rig is not None)
    except InputError as exc:
        raise BakeFailure(str(exc)) from None
    for warning in made.warnings:  # what the panel reports: a batch user sees it too
        print(f"bake: {clip}: warning: {warning}", file=sys.stderr, flush=True)
    temporary = target.with_name(f".{target.name}.tmp.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True)
        os.replace(temporary, target)
    except (RuntimeError, OSError) as exc:
        temporary.unlink(missing_ok=True)
        raise BakeFailure(f"{target}: cannot save it ({str(exc).strip().splitlines()[-1]})") from None
    if args.export:
        export(made, args, name)
    if args.preview and args.people == "all":
        for number, rig in made.rigs.items():
            write_preview(rig.root["sheap_result"], args.out / f"{name}.person{number}.preview.mp4", flame, python)
    elif args.preview:
        write_preview(run.result_path, args.out / f"{name}.preview.mp4", flame, python)
    demo = " [demo weights]" if run.demo else ""
    if args.character is not None:
        what = made.summary().removeprefix("SHeaP: ")
    elif args.people == "all":
        what = ", ".join(rig.collection.name for rig in made.rigs.values())
    else:
        what = made.collection.name
    frames = next(iter(made.rigs.values())).n_frames if args.people == "all" else run.total
    print(f"bake: {clip} -> {target} ({frames} frames, {what}, {time.perf_counter() - started:.1f} s){demo}",
          flush=True)


def export(made, args: argparse.Namespace, name: str) -> None:
    """The baked head(s) or character beside the .blend (sheap_blender.export.head), each written whole or not."""
    import bpy

    from sheap_blender.core.errors import InputError
    from sheap_blender.export.head import export_head

    if args.character is not None:
        jobs = [(made.obj, args.out / f"{name}{args.export}")]
    elif args.people == "all":
        jobs = [(rig.root, args.out / f"{name}.person{number}{args.export}") for number, rig in made.rigs.items()]
    else:
        jobs = [(made.root, args.out / f"{name}{args.export}")]
    for obj, path in jobs:
        try:
            exported = export_head(bpy.context, path, obj)
        except InputError as exc:
            raise BakeFailure(f"export: {exc}") from None
        for warning in exported.warnings:
            print(f"bake: {path.name}: warning: {warning}", file=sys.stderr, flush=True)


def drive_character(args: argparse.Namespace, result: str, flame: str):
    """Key the result's ARKit take on the character in the open file (sheap_blender.character.drive)."""
    import bpy

    from sheap_blender.character.character_rig import find_character
    from sheap_blender.character.drive import drive_with_result, resolve_source

    target = find_character(str(args.character), args.character_object)
    source = resolve_source(bpy.context, result, flame, frame_start=1)
    return drive_with_result(bpy.context, target, source, set_scene=args.set_scene_timing)


def check_character(args: argparse.Namespace) -> str | None:
    """Before any clip: the character's file opens and names one character (else the one-line reason)."""
    import bpy

    from sheap_blender.character.character_rig import find_character
    from sheap_blender.core.errors import InputError

    if not args.character.is_file():
        return f"{args.character}: character .blend not found"
    try:
        bpy.ops.wm.open_mainfile(filepath=str(args.character))
        find_character(str(args.character), args.character_object)
    except RuntimeError as exc:
        return f"{args.character}: cannot open it ({str(exc).strip().splitlines()[-1]})"
    except InputError as exc:
        return str(exc)
    return None


def write_preview(result: str, video: Path, flame: str, python: str) -> None:
    """The clip's review video, by the backend's `preview` command (written whole or not at all)."""
    import subprocess

    from sheap_blender.backend_client.process import backend_environment, backend_root

    done = subprocess.run([python, "-m", "backend", "preview", str(result), "--flame", flame, "-o", str(video),
                           "--progress", "none"], cwd=backend_root(), env=backend_environment(), capture_output=True,
                          text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise BakeFailure(f"preview: {lines[-1].removeprefix('error: ')}")


def main() -> int:
    if str(REPO) not in sys.path:  # a script, not the extension: it may use the repository's package
        sys.path.insert(0, str(REPO))
    if str(REPO / "scripts") not in sys.path:  # its own folder (blender -P does not add it): ray_batch.py
        sys.path.insert(0, str(REPO / "scripts"))
    args = parse_args(sys.argv)
    if args.people is not None and args.face is not None:
        print("bake: --people and --face both say whom to follow: give one of them", file=sys.stderr, flush=True)
        return 2
    if args.people == "all" and (args.rig is not None or args.character is not None):
        print("bake: --people all makes a rig per person: it does not go with --rig or --character", file=sys.stderr,
              flush=True)
        return 2
    args.out = args.out.expanduser().absolute()  # every path absolute where it is read: the backend runs elsewhere
    args.rig = None if args.rig is None else args.rig.expanduser().absolute()
    args.character = None if args.character is None else args.character.expanduser().absolute()
    import bpy

    import sheap_blender
    from sheap_blender.backend_client.reconstruction import drop_backend

    if not hasattr(bpy.types.Scene, "sheap"):
        sheap_blender.register()
    flame = os.path.abspath(args.flame or REPO / "weights" / "flame.safetensors")
    weights = os.path.abspath(args.weights or REPO / "weights" / "model_expressive.pt")
    python = os.path.abspath(args.backend_python or REPO / ".venv" / "bin" / "python")
    for label, path in (("FLAME", flame), ("SHeaP weights", weights), ("backend Python", python)):
        if not os.path.isfile(path):
            print(f"bake: {path}: {label} not found (see README)", file=sys.stderr, flush=True)
            return 2
    if args.rig is not None and not args.rig.is_file():
        print(f"bake: {args.rig}: rig .blend not found", file=sys.stderr, flush=True)
        return 2
    if (args.character_object or args.set_scene_timing) and args.character is None:
        print("bake: --character-object and --set-scene-timing need --character FILE.blend", file=sys.stderr,
              flush=True)
        return 2
    problem = check_character(args) if args.character is not None else None
    if problem:
        print(f"bake: {problem}", file=sys.stderr, flush=True)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    names = [args.output_name] if args.output_name else unique_names(args.clips)
    from ray_batch import bake_on_ray

    code = bake_on_ray(args, names, flame, weights, python)  # --ray: one Ray task per clip, else None
    if code is not None:
        return code
    failures = 0
    try:
        for clip, name in zip(args.clips, names):
            try:
                bake_clip(clip, name, args, flame, weights, python)
            except BakeFailure as exc:
                print(f"bake: FAILED {clip}: {exc}", file=sys.stderr, flush=True)
                failures += 1
            except Exception as exc:  # noqa: BLE001 - a bug must not cost the rest of the batch either
                print(f"bake: FAILED {clip}: unexpected {type(exc).__name__}: {exc}".splitlines()[0],
                      file=sys.stderr, flush=True)
                failures += 1
    finally:
        drop_backend()
    print(f"bake: {len(args.clips) - failures} baked, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # bpy can hang in interpreter shutdown: leave at once
