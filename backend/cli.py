"""`python -m backend COMMAND`: the backend's command line (names are a contract; see the README).

Bad input exits with code 2 and one to three lines on stderr naming the file and the problem,
never a traceback; outputs are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from sheap_blender.core.atomic_file import check_output
from sheap_blender.core.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130
EXIT_INTERNAL = 1


def _absolute(path: str | None) -> Path | None:
    """A user's path made absolute where it is read (the backend may run from another folder)."""
    return None if path is None else Path(path).expanduser().absolute()


def cmd_make_demo(args: argparse.Namespace) -> None:
    from .make_demo import make_demo

    for line in make_demo(Path(args.directory), full_size=args.full_size):
        print(line, flush=True)


def cmd_convert_flame(args: argparse.Namespace) -> None:
    from .model.flame_convert import convert_flame

    out = check_output(args.output, args.pkl, args.eyelids)
    model = convert_flame(_absolute(args.pkl), _absolute(args.eyelids), out)
    print(f"wrote {out} (source SHA-256 {model.source_sha256[:12]}...)", flush=True)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from sheap_blender.core.result.result_format import write_result

    from .model.precision import precision_line
    from .model.temporal import Smoothing
    from .pipeline import prepare_job, reconstruct
    from .progress import Progress, emit_json
    from .request import strength

    output = check_output(args.output, args.footage, args.flame, args.weights)
    try:
        groups = {name: strength(float(value), f"--smooth-group {name}")
                  for name, value in (item.split("=", 1) for item in args.smooth_group)}
        smoothing = Smoothing.parse(strength(args.smooth, "--smooth"), groups)
    except ValueError as exc:
        raise InputError(None, f"{exc} (--smooth S, --smooth-group NAME=S)") from None
    if args.gaussians:
        from .gaussians.head import check_count

        check_count(args.gaussian_count)
    face_point = None if args.face is None else args.face.split(",")
    people = parse_people(args.people, args.face)
    if args.people_file is not None and not isinstance(people, int):
        raise InputError(Path(args.people_file), "--people-file goes with --people N (a person's number)")
    job = prepare_job(_absolute(args.footage), output, _absolute(args.flame), _absolute(args.weights), args.device,
                      args.start,
                      args.end, args.batch_size, args.per_frame_shape, smoothing, face_point, args.precision)
    progress = Progress(args.progress, total=job.end - job.start)
    if job.is_demo:
        progress.message("using demo weights (stand-ins, not SHeaP/FLAME): the head is not a real reconstruction")
    progress.message(f"{job.describe()}; {precision_line(job.predictor, args.precision)}")

    def finish(result, path: Path) -> None:
        if args.gaussians:
            from .gaussians.head import add_gaussians

            add_gaussians(job.flame, result, job.footage, path, args.gaussian_count, job.predictor.device,
                          log=progress.message)
        write_result(path, result)

    try:
        if people == "all":
            from .people_job import reconstruct_everyone

            listing, found = reconstruct_everyone(job, output, finish, progress.update, log=progress.message)
        else:
            if people is not None:
                from .people_job import choose_person

                choose_person(job, people, people_file=None if args.people_file is None else
                              _absolute(args.people_file))
                progress.message(f"following person {people}")
            result = reconstruct(job, on_progress=lambda done, total: progress.update(done))
    finally:
        progress.close()
    if people == "all":
        if args.progress == "json":
            emit_json("done", people=os.fspath(listing.resolve()), count=len(found), demo=job.is_demo)
        else:
            print(f"wrote {listing}: {len(found)} {'person' if len(found) == 1 else 'people'}, a result and a "
                  "thumbnail each", flush=True)
        return
    finish(result, output)
    n_invalid = int((~result.valid).sum())
    if args.progress == "json":
        emit_json("done", result=os.fspath(output.resolve()), frames=result.n_frames, invalid=n_invalid,
                  demo=result.is_demo)
    else:
        print(f"wrote {output}: {result.n_frames} frames, {n_invalid} without a face (interpolated)", flush=True)


def parse_people(value: str | None, face: str | None) -> str | int | None:
    """--people: None (one person, the largest or --face), "all", or a person's number (1, 2, ...)."""
    if value is None:
        return None
    if face is not None:
        raise InputError(None, "--people and --face both say whom to follow: give one of them")
    if value == "all":
        return "all"
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(None, f"--people {value}: give all, or a person's number (1, 2, ... as `people` lists them)")
    return number


def cmd_people(args: argparse.Namespace) -> None:
    import threading

    from .footage.reader import open_footage
    from .people_job import write_people_only
    from .progress import Progress, emit_json

    output = check_output(args.output, args.footage)
    if not output.name.endswith(".people.json"):
        raise InputError(output, "the people file's name must end in .people.json")
    footage = open_footage(_absolute(args.footage))
    end = footage.frame_count if args.end is None else min(args.end, footage.frame_count)
    if not 0 <= args.start < end:
        raise InputError(footage.path, f"frames {args.start}-{end - 1}: no frames in that range "
                                       f"({footage.frame_count} frames)")
    progress = Progress(args.progress, total=end - args.start, description="people")
    try:
        found = write_people_only(footage, args.start, end, output, threading.Event(),
                                  lambda done, total: progress.update(done))
    finally:
        progress.close()
    if args.progress == "json":
        emit_json("done", people=os.fspath(output.resolve()), count=len(found))
    else:
        print(f"wrote {output}: {len(found)} {'person' if len(found) == 1 else 'people'}", flush=True)


def cmd_flame(args: argparse.Namespace) -> None:
    import numpy as np

    from sheap_blender.core.atomic_file import replacing
    from sheap_blender.core.flame.model import load_flame
    from sheap_blender.core.result.result_format import read_result

    from .model.flame_eval import evaluate_result

    output = check_output(args.output, args.result, args.flame)
    result = read_result(_absolute(args.result))
    flame = load_flame(_absolute(args.flame))
    with replacing(output) as tmp:
        shape = (result.n_frames, flame.n_vertices, 3)
        verts = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        evaluate_result(flame, result, verts, device=args.device)
        verts.flush()
        del verts
    print(f"wrote {output}: ({result.n_frames}, {flame.n_vertices}, 3) float32", flush=True)


def cmd_arkit(args: argparse.Namespace) -> None:
    from sheap_blender.core.arkit.live_link_csv import write_live_link_csv
    from sheap_blender.core.arkit.solve import lost_blinks, take_for_result
    from sheap_blender.core.flame.model import load_flame
    from sheap_blender.core.result.result_format import read_result

    output = check_output(args.output, args.result, args.flame)
    result = read_result(_absolute(args.result))
    flame = load_flame(_absolute(args.flame))
    cache = _absolute(args.cache) if args.cache else default_cache_dir()
    warning = lost_blinks(result, flame)
    if warning:
        print(f"warning: {args.flame}: {warning}", file=sys.stderr, flush=True)
    take = take_for_result(result, flame, cache)
    write_live_link_csv(output, take, result.fps)
    demo = " (demo weights: the FLAME stand-in, not FLAME)" if flame.is_demo or result.is_demo else ""
    print(f"wrote {output}: {result.n_frames} frames of ARKit-52 at {result.fps:g} fps (timecode at 60 fps, as Live "
          f"Link Face writes it){demo}", flush=True)


def cmd_mesh_landmarks(args: argparse.Namespace) -> None:
    import json

    import cv2
    import numpy as np

    from sheap_blender.core.atomic_file import replacing

    from .mesh_landmarks import find_mesh_landmarks, read_mesh

    output = check_output(args.output, args.mesh)
    picture_path = check_output(args.picture, args.mesh) if args.picture else None
    vertices, triangles = read_mesh(_absolute(args.mesh))
    landmarks, confidence, picture = find_mesh_landmarks(vertices, triangles, args.mesh)
    with replacing(output) as tmp:
        tmp.write_text(json.dumps({"landmarks68": landmarks.tolist(), "confidence": confidence}))
    if picture_path is not None:
        with replacing(picture_path) as tmp:
            tmp.write_bytes(cv2.imencode(".png", np.ascontiguousarray(picture[..., ::-1]))[1].tobytes())
    print(f"wrote {output}: 68 landmarks (face confidence {confidence:.2f})", flush=True)


def default_cache_dir() -> Path:
    """Where built solves are kept: $XDG_CACHE_HOME/sheap-blender (~/.cache/sheap-blender)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sheap-blender"


def cmd_export_ply(args: argparse.Namespace) -> None:
    from .gaussians.splat_ply import export_ply

    output = check_output(args.output, args.result, args.flame)
    count = export_ply(_absolute(args.result), _absolute(args.flame), args.frame, output, args.device)
    print(f"wrote {args.output}: {count} Gaussians at footage frame {args.frame}", flush=True)


def cmd_preview(args: argparse.Namespace) -> None:
    from sheap_blender.core.atomic_file import check_output

    from .progress import Progress
    from .review.preview import write_preview

    output = check_output(args.output, args.result, args.flame)
    result, flame = (Path(p).expanduser().absolute() for p in (args.result, args.flame))
    progress = None

    def on_progress(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(args.progress, total=total, description="preview")
        progress.update(done)

    try:
        stats = write_preview(result, flame, output, args.style, args.opacity, args.device, on_progress)
    finally:
        if progress is not None:
            progress.close()
    print(f"wrote {output}: {stats.frames} frames, {stats.invalid} without a face (marked), {args.style}",
          flush=True)


def cmd_serve(args: argparse.Namespace) -> None:
    from .server import Server

    Server().serve()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="SHeaP backend: footage -> FLAME.")
    parser.add_argument("--debug", action="store_true", help="show the full trace of an internal error")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("make-demo", help="write the demo stand-ins (FLAME, predictor, astronaut clip)")
    demo.add_argument("directory")
    demo.add_argument("--full-size", action="store_true",
                      help="also write a release-sized predictor stand-in (ViT-B/16, ~350 MB) for benchmarks")
    demo.set_defaults(run=cmd_make_demo)

    convert = commands.add_parser("convert-flame", help="convert FLAME's generic_model.pkl to safetensors")
    convert.add_argument("pkl")
    convert.add_argument("--eyelids", help="SHeaP's eyelids.pt (optional)")
    convert.add_argument("-o", "--output", required=True)
    convert.set_defaults(run=cmd_convert_flame)

    rec = commands.add_parser("reconstruct", help="footage -> per-frame FLAME parameters (.safetensors)")
    rec.add_argument("footage", help="video file, image folder, printf pattern (frames/%%04d.png) or one image")
    rec.add_argument("-o", "--output", required=True)
    rec.add_argument("--flame", required=True, help="generic_model.pkl or its converted .safetensors")
    rec.add_argument("--weights", required=True, help="SHeaP TorchScript archive (model_paper.pt, ...)")
    rec.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    rec.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                     help="the network's precision; auto: bfloat16 where the CPU or GPU has it natively and a "
                          "self-check finds the FLAME vertices within limits, else float32")
    rec.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    rec.add_argument("--end", type=int, default=None, help="frame after the last (default: the clip's end)")
    rec.add_argument("--batch-size", type=int, default=16)
    rec.add_argument("--smooth", type=float, default=0.0,
                     help="temporal smoothing from 0 (off, the raw prediction) to 1 (strongest); zero lag")
    rec.add_argument("--smooth-group", action="append", default=[], metavar="GROUP=S",
                     help="per-group strength: expression, eyelids, jaw, head, eyes, translation (repeatable)")
    rec.add_argument("--face", metavar="X,Y",
                     help="follow the person nearest this point of the first frame (fractions of its width and "
                          "height from the top-left corner, e.g. 0.7,0.4); default: the largest face")
    rec.add_argument("--people", metavar="all|N",
                     help="all: one result per person who appears (NAME.personN.sheap.safetensors beside -o, with "
                          "NAME.people.json and a thumbnail each); N: follow person N as the `people` command "
                          "numbers them; default: one person, the largest face or --face")
    rec.add_argument("--people-file", metavar="NAME.people.json",
                     help="with --people N: the people as the `people` command found them for this footage and "
                          "frame range (their looks are read, the search is not run again)")
    rec.add_argument("--per-frame-shape", action="store_true",
                     help="keep each frame's identity instead of one per clip (research use)")
    rec.add_argument("--gaussians", action="store_true",
                     help="add 2D Gaussians bound to the head's triangles, coloured from the footage")
    rec.add_argument("--gaussian-count", type=int, default=60_000, metavar="N", help="how many (default 60000)")
    rec.add_argument("--progress", choices=["bar", "json", "none"], default="bar" if sys.stderr.isatty() else "none")
    rec.set_defaults(run=cmd_reconstruct)

    people = commands.add_parser("people", help="who appears in the footage -> NAME.people.json and a thumbnail "
                                                "per person (no FLAME or weights needed)")
    people.add_argument("footage")
    people.add_argument("-o", "--output", required=True, help="the people file (NAME.people.json)")
    people.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    people.add_argument("--end", type=int, default=None, help="frame after the last (default: the clip's end)")
    people.add_argument("--progress", choices=["bar", "json", "none"],
                        default="bar" if sys.stderr.isatty() else "none")
    people.set_defaults(run=cmd_people)

    flame = commands.add_parser("flame", help="evaluate FLAME for every frame of a result -> (F, V, 3) .npy")
    flame.add_argument("result")
    flame.add_argument("--flame", required=True)
    flame.add_argument("-o", "--output", required=True)
    flame.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    flame.set_defaults(run=cmd_flame)
    arkit = commands.add_parser("arkit", help="a result's every frame as ARKit-52 coefficients -> Live Link Face CSV")
    arkit.add_argument("result")
    arkit.add_argument("--flame", required=True, help="the FLAME file the solve is built from (cached per file)")
    arkit.add_argument("-o", "--output", required=True, help="the take (.csv)")
    arkit.add_argument("--cache", help="folder for the built solve (default $XDG_CACHE_HOME/sheap-blender)")
    arkit.set_defaults(run=cmd_arkit)

    marks = commands.add_parser("mesh-landmarks", help="a head mesh's 68 face landmarks, found on a front render")
    marks.add_argument("mesh", help=".safetensors with vertices (V, 3; +Y up, the face toward +Z) and triangles")
    marks.add_argument("-o", "--output", required=True, help="the landmarks (.json: landmarks68, confidence)")
    marks.add_argument("--picture", help="also write the render the face was found on (.png)")
    marks.set_defaults(run=cmd_mesh_landmarks)

    ply = commands.add_parser("export-ply", help="a result's Gaussians at one footage frame -> 3DGS splat PLY")
    ply.add_argument("result")
    ply.add_argument("--frame", type=int, required=True, help="footage frame (frame_index of a result row)")
    ply.add_argument("--flame", required=True)
    ply.add_argument("-o", "--output", required=True)
    ply.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ply.set_defaults(run=cmd_export_ply)
    preview = commands.add_parser("preview", help="a review video: the posed head drawn over every footage frame")
    preview.add_argument("result")
    preview.add_argument("--flame", required=True)
    preview.add_argument("-o", "--output", required=True, help="the video (.mp4, .mov, .m4v, .avi or .mkv)")
    preview.add_argument("--style", default="shaded", choices=["shaded", "wireframe"])
    preview.add_argument("--opacity", type=float, default=0.75, help="of the head over the footage (0..1]")
    preview.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    preview.add_argument("--progress", choices=["bar", "json", "none"],
                         default="bar" if sys.stderr.isatty() else "none")
    preview.set_defaults(run=cmd_preview)
    serve = commands.add_parser("serve", help="stay running, take JSON-line requests on stdin (for Blender)")
    serve.set_defaults(run=cmd_serve)
    return parser


def _terminate(signum, frame) -> None:
    """SIGTERM ends a command the way Ctrl+C does, so its temporary files are removed on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.run(args)
    except InputError as exc:
        if getattr(args, "progress", None) == "json":
            from .progress import emit_json

            emit_json("error", message=str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr, flush=True)
        sys.exit(EXIT_CANCELLED)
    except Exception as exc:  # a bug, not bad input: one line, the trace only when asked for
        if args.debug:
            raise
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"error: internal error in {args.command}: {type(exc).__name__}: {reason} (run again with --debug "
              "for the trace, and please report it)", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERNAL)
