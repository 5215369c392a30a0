"""Benchmark: Export Head in each format, against Blender's exporter called plainly on the same objects.

    .venv-bpy45/bin/python benchmarks/export_head.py [--frames 1000] [--repeats 3]

The rig is the demo stand-in FLAME (made by `.venv/bin/python -m backend make-demo`) keyed from a moving head
(tests/blender/helpers.py: turned, nodding, jaw, ten expressions, a blink) on `--frames` frames at 24 fps.
For each format, medians (and spread) of `--repeats` runs each, taking turns after a warm-up: `export_head`
(the settings, the [0, 1]-weight stand-in for glTF and USD, the hidden folder and the move), and the baseline: the same
exporter on the same selected objects at its defaults (USD with its Animation option on, else it writes
one frame). Goal (met / MISS; the exit code counts them): Export Head within 2x the baseline in every format.
Exits with os._exit: bpy can hang in interpreter shutdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "blender"))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)

EXTENSIONS = (".glb", ".fbx", ".abc", ".usdc")


def plain_export(extension: str, path: Path) -> None:
    """Blender's exporter at its defaults, on the selected objects."""
    import bpy

    if extension == ".glb":
        bpy.ops.export_scene.gltf(filepath=str(path), use_selection=True)
    elif extension == ".fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True)
    elif extension == ".abc":
        bpy.ops.wm.alembic_export(filepath=str(path), selected=True)
    else:
        bpy.ops.wm.usd_export(filepath=str(path), selected_objects_only=True, export_animation=True)


def timed_pair(first, second, repeats: int) -> tuple[list[float], list[float]]:
    """Both after a warm-up each, taking turns (a changing load on a shared machine falls on both alike)."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, out in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            run()
            out.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    goals = Goals()

    import bpy
    from helpers import moving_head_result, write

    import sheap_blender
    from sheap_blender.core.flame.model import load_flame
    from sheap_blender.export.head import export_head
    from sheap_blender.reconstruct.importer import import_result

    sheap_blender.register()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "backend", "make-demo", str(tmp)], cwd=REPO,
                       check=True, capture_output=True)
        flame = tmp / "flame.safetensors"
        result = write(tmp / "bench.sheap.safetensors",
                       moving_head_result(args.frames, flame_sha=load_flame(flame).source_sha256))
        bpy.ops.wm.read_factory_settings(use_empty=True)
        rig = import_result(None, result, flame, render_over_footage=False)
        print(f"Blender {bpy.app.version_string}, {args.frames} frames, the demo head (5,023 vertices, "
              f"{len(rig.head.data.shape_keys.key_blocks) - 1} shape keys, 5 bones); {machine_line()}")
        for extension in EXTENSIONS:
            def ours(e=extension):
                export_head(None, tmp / f"head{e}", rig.root)

            def plain(e=extension):
                for obj in bpy.context.view_layer.objects:
                    obj.select_set(obj in (rig.root, rig.armature, rig.head))
                plain_export(e, tmp / f"plain{e}")

            ours, plain = timed_pair(ours, plain, args.repeats)
            size = (tmp / f"head{extension}").stat().st_size / 1e6
            mine, base = statistics.median(ours), statistics.median(plain)
            print(f"{extension}: Export Head median {mine:.2f} s ({min(ours):.2f}-{max(ours):.2f}, "
                  f"{mine / args.frames * 1000:.1f} ms a frame, {size:.1f} MB); the exporter at its defaults "
                  f"{base:.2f} s ({min(plain):.2f}-{max(plain):.2f}); ratio {mine / base:.2f}")
            goals.check(mine <= 2.0 * base, f"{extension}: Export Head {mine:.2f} s within 2x the plain exporter "
                                            f"({base:.2f} s)")
    sys.stdout.flush()
    return goals.exit_code()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
