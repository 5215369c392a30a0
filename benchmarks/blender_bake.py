"""Benchmark: import a 10,000-frame result onto the full FLAME rig, against a keyframe_insert loop.

    .venv-bpy45/bin/python benchmarks/blender_bake.py [--frames 10000] [--slice 100]

Builds a FLAME-sized synthetic model and result (no licensed files), times
`importer.import_result` end to end (read, math, rig, 179 F-curves x frames keys, camera, scene)
and the part spent writing keys, then times the plain way, one `keyframe_insert` per property and
frame (vector properties in one call: the loop's most favourable form), on the first `--slice`
frames of the same data, and scales it to all frames. Goals (met / MISS; the exit code counts the
misses): <= 2 s for 10,000 frames, and >= 30x faster than the loop. Exits with os._exit: bpy can
hang in interpreter shutdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "blender"))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)


def loop_cost(imported, anim, names, values, camera_values, start: int, n: int) -> float:
    """Seconds a key for `keyframe_insert` on frames start+1 .. start+n, into fresh actions whose
    curves already hold keys on frames 1 .. start."""
    import numpy as np

    from sheap_blender.core.flame.model import JOINT_NAMES
    from sheap_blender.rig import animation

    arm, keys, camera = imported.armature, imported.head.data.shape_keys, imported.camera.data
    blocks = [keys.key_blocks[name] for name in names]
    bones = [arm.pose.bones[name] for name in JOINT_NAMES]
    for owner in (arm, keys, camera):
        owner.animation_data.action = None

    def insert(row: int) -> int:
        frame = 1 + row
        arm.location = anim.translation[row]
        arm.keyframe_insert("location", frame=frame)
        count = 3
        for joint, bone in enumerate(bones):
            bone.rotation_quaternion = anim.bone_quaternions[row, joint]
            bone.location = anim.bone_locations[row, joint]
            bone.keyframe_insert("rotation_quaternion", frame=frame)
            bone.keyframe_insert("location", frame=frame)
            count += 7
        for k, block in enumerate(blocks):
            block.value = values[row, k]
            block.keyframe_insert("value", frame=frame)
            count += 1
        for prop in ("lens", "shift_x", "shift_y"):
            setattr(camera, prop, camera_values[prop][row])
            camera.keyframe_insert(prop, frame=frame)
            count += 1
        return count

    if start:
        insert(0)  # creates the actions and curves the way the loop does
        frames = np.arange(1, start + 1, dtype=np.float32)
        for owner in (arm, keys, camera):
            for curve in animation.fcurves_of(owner):
                value = curve.keyframe_points[0].co[1]
                curve.keyframe_points.add(start - 1)
                co = np.empty(2 * start, dtype=np.float32)
                co[0::2], co[1::2] = frames, value
                curve.keyframe_points.foreach_set("co", co)
                curve.update()
    started = time.perf_counter()
    count = sum(insert(row) for row in range(start, start + n))
    return (time.perf_counter() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--slice", type=int, default=100, help="frames of the keyframe_insert loop (scaled up)")
    args = parser.parse_args()
    goals = Goals()

    import bpy
    import numpy as np
    from helpers import synthetic_flame, synthetic_result, write, write_flame

    from sheap_blender.core.camera import blender_camera
    from sheap_blender.core.flame.model import load_flame
    from sheap_blender.core.result.result_format import read_result
    from sheap_blender.core.result.rig_math import eyelid_key_names, rig_animation
    from sheap_blender.reconstruct.importer import import_result
    from sheap_blender.rig import animation

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        flame = write_flame(tmp / "flame.safetensors", synthetic_flame())
        result_path = write(tmp / "bench.sheap.safetensors", synthetic_result(args.frames, valid_ratio=0.95))
        bpy.ops.wm.read_factory_settings(use_empty=True)

        key_seconds = [0.0]
        original = animation.write_channels

        def timed(*a, **k):
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                key_seconds[0] += time.perf_counter() - started

        animation.write_channels = timed
        started = time.perf_counter()
        imported = import_result(None, result_path, flame)
        bulk = time.perf_counter() - started
        animation.write_channels = original
        n_keys = imported.n_keys
        print(f"Blender {bpy.app.version_string}, {args.frames} frames, {n_keys:,} keys "
              f"({n_keys // args.frames} per frame); {machine_line()}")
        print(f"import_result: {bulk:.3f} s in all; writing keys {key_seconds[0]:.3f} s "
              f"({key_seconds[0] / n_keys * 1e6:.3f} us a key)")

        # The keyframe_insert loop over the same data. Its cost per key grows with the length of
        # the F-curve (every insert recomputes the curve's handles), so it is timed on slices at
        # several points of the clip, each into curves already holding the frames before it (as
        # the loop would have left them; filled in bulk here), and integrated over the clip.
        model = load_flame(flame)
        result = read_result(result_path)
        anim = rig_animation(model, result)
        names, values = anim.shape_key_values(eyelid_key_names(model))
        camera_values = blender_camera(result.params["crop_box"], result.width, result.height, result.fov_deg)
        n = min(args.slice, args.frames)
        positions = sorted({int(p) for p in np.linspace(0, args.frames - n, 5)})
        costs = [loop_cost(imported, anim, names, values, camera_values, start, n) for start in positions]
        for start, cost in zip(positions, costs):
            print(f"keyframe_insert loop, frames {start + 1}-{start + n}: {cost * 1e6:.1f} us a key")
        if len(costs) > 1:  # trapezoid rule over the clip
            x, y = np.array(positions, dtype=float), np.array(costs)
            per_key = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))
        else:
            per_key = costs[0]
        scaled = per_key * n_keys
        print(f"keyframe_insert loop over {args.frames} frames (integrated): {scaled:.1f} s "
              f"({per_key * 1e6:.1f} us a key on average)")
        print(f"speed-up: {scaled / bulk:.0f}x the whole import, {scaled / key_seconds[0]:.0f}x key writing alone; "
              f"against the first slice alone (empty curves): {costs[0] * n_keys / bulk:.0f}x")
        goals.check(bulk <= 2.0, f"import_result of {args.frames} frames: {bulk:.2f} s (goal <= 2 s)")
        goals.check(scaled / bulk >= 30, f"against the keyframe_insert loop: {scaled / bulk:.0f}x (goal >= 30x)")
    sys.stdout.flush()
    return goals.exit_code()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
