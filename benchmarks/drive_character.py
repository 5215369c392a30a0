"""Benchmark: Drive Character on a 10,000-frame result, against a keyframe_insert loop; a multi-mesh rig with and
without the animator's controls.

    .venv-bpy45/bin/python benchmarks/drive_character.py [--frames 10000] [--repeats 5] [--slice 300]

The character is ICT-FaceKit's ARKit head (11,248 vertices, 53 shape keys) with a head bone; the
FLAME is the demo stand-in (made by `.venv/bin/python -m backend make-demo`), the result synthetic.
Times, as medians of `--repeats` runs onto a character without animation: the whole drive
(`character.drive_with_result`: read the result and FLAME, solve the take, key 53 shape keys and the
bone on every frame, markers, scene) with the solve already built (the first drive builds it once per
FLAME file; printed apart), and the keying alone (`character.key_take` on a solved take). Baseline:
one `keyframe_insert` per key and frame on the first `--slice` frames of the same take, into empty
curves, scaled to every frame (a lower bound: each insert costs more as its curve grows). Then a Ready-Player-Me-
like rig (tests/blender/face_rigs.py: four meshes with 67 keys each, Head and eye bones): the whole drive without
controls and with them all on (a neutral range, per-channel smoothing, rotation smoothing, interpolated gaps),
and finding the eye meshes by skin weights on ICT's 11,248-vertex head skinned like a glTF import. Goals (met /
MISS; the exit code counts them): each whole drive in <= 2 s. Exits with os._exit: bpy can hang in interpreter
shutdown.
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


def clear(*owners) -> None:
    """Take the characters' and the bones' animation away (their actions removed)."""
    import bpy

    for owner in owners:
        owner = owner.data.shape_keys if owner.type == "MESH" else owner
        if owner.animation_data is not None and owner.animation_data.action is not None:
            action = owner.animation_data.action
            owner.animation_data_clear()
            bpy.data.actions.remove(action)


def loop_seconds_a_key(obj, rig, take, mapping, n: int) -> float:
    """Seconds a key for keyframe_insert on frames 1..n, shape keys and the bone's quaternion, into empty curves."""
    from sheap_blender.core.arkit.names import ARKIT_INDEX
    from sheap_blender.core.character.head_rotation import head_turn_in_blender, in_rest_frame, rotation_channels

    blocks = [(obj.data.shape_keys.key_blocks[key], ARKIT_INDEX[channel]) for key, channel in mapping.items()]
    bone = rig.pose.bones["head"]
    rest = [list(row) for row in rig.data.bones["head"].matrix_local.to_3x3()]
    _, quaternions = rotation_channels(in_rest_frame(head_turn_in_blender(take.head[:n]), rest), "QUATERNION")
    started = time.perf_counter()
    count = 0
    for row in range(n):
        frame = float(take.frames[row])
        for block, channel in blocks:
            block.value = take.weights[row, channel]
            block.keyframe_insert("value", frame=frame)
        bone.rotation_quaternion = quaternions[row]
        bone.keyframe_insert("rotation_quaternion", frame=frame)
        count += len(blocks) + 4
    return (time.perf_counter() - started) / count


def rig_drives(context, source, args, goals) -> None:
    """The Ready-Player-Me-like rig driven whole, without and with every control on (interleaved runs)."""
    import bpy
    from face_rigs import ready_player_me

    from sheap_blender.character import drive as character

    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm = ready_player_me()
    owners = [arm, *(obj for obj in bpy.data.objects if obj.type == "MESH")]
    settings = arm.sheap_character
    times: dict[str, list[float]] = {"no controls": [], "every control on": []}
    for _ in range(args.repeats):
        for label, controls in (("no controls", False), ("every control on", True)):
            settings.use_neutral, settings.neutral_start, settings.neutral_end = controls, 1, 10
            settings.gap_policy = "INTERPOLATE" if controls else "HOLD"
            settings.rotation_smoothing = 1.0 if controls else 0.0
            character_mapping_channels(arm, 1.5 if controls else 0.0)
            clear(*owners)
            started = time.perf_counter()
            driven = character.drive_with_result(context, arm, source, set_scene=True)
            times[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, values in times.items():
        print(f"rig of {len(driven.reports)} meshes + bones {sorted(driven.bones.values())}, {label}: "
              f"median {medians[label]:.3f} s ({min(values):.3f}-{max(values):.3f}), {driven.n_keys:,} keys")
        goals.check(medians[label] <= 2.0, f"the rig's whole drive ({label}): {medians[label]:.2f} s (goal <= 2 s)")
    print(f"controls on / off: {medians['every control on'] / medians['no controls']:.2f}x")


def character_mapping_channels(owner, smoothing: float) -> None:
    from sheap_blender.character import mapping as character_mapping

    character_mapping.ensure_channels(owner)
    for item in owner.sheap_character.channels:
        item.smoothing = smoothing


def eye_mesh_search(_unused) -> None:
    """Finding the eye meshes (skin weights read vertex by vertex) on ICT's head skinned like a glTF import."""
    import bpy
    from ict_character import build_character

    from sheap_blender.character.character_rig import Rig, eye_meshes

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = build_character()
    arm = bpy.data.objects.new("Armature", bpy.data.armatures.new("Armature"))
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("Head", "LeftEye", "RightEye"):
        arm.data.edit_bones.new(name).tail = (0.0, 0.0, 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    for name in ("Head", "LeftEye", "RightEye"):
        obj.vertex_groups.new(name=name)
    obj.vertex_groups["Head"].add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
    rig = Rig("Armature", arm, [obj], arm, {"left_eye": "LeftEye", "right_eye": "RightEye"})
    times = []
    for _ in range(5):
        started = time.perf_counter()
        found = eye_meshes(rig)
        times.append(time.perf_counter() - started)
    print(f"eye meshes by skin weight, {len(obj.data.vertices):,}-vertex head (not an eye: {not found}): "
          f"median {statistics.median(times) * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slice", type=int, default=300, help="frames of the keyframe_insert loop (scaled up)")
    args = parser.parse_args()
    goals = Goals()

    import bpy
    from helpers import synthetic_result, write
    from ict_character import build_character

    import sheap_blender
    from sheap_blender.character import drive as character
    from sheap_blender.character import mapping as character_mapping
    from sheap_blender.core.flame.model import load_flame

    sheap_blender.register()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "backend", "make-demo", str(tmp)], cwd=REPO,
                       check=True, capture_output=True)
        flame = tmp / "flame.safetensors"
        result = synthetic_result(args.frames, flame_sha=load_flame(flame).source_sha256, demo=True,
                                  valid_ratio=0.95)
        result.params["expr"] *= 0.5
        result_path = write(tmp / "bench.sheap.safetensors", result)

        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = build_character(habit="cc")
        rig = bpy.data.objects.new("Body", bpy.data.armatures.new("Body"))
        bpy.context.scene.collection.objects.link(rig)
        bpy.context.view_layer.objects.active = rig
        bpy.ops.object.mode_set(mode="EDIT")
        bone = rig.data.edit_bones.new("head")
        bone.head, bone.tail = (0.0, 0.0, -0.05), (0.0, 0.0, 0.1)
        bpy.ops.object.mode_set(mode="OBJECT")
        obj.sheap_character.head_armature, obj.sheap_character.head_bone = rig, "head"
        character_mapping.store_mapping(obj, character_mapping.automatic_mapping(obj))
        source = character.Source(result_path, str(flame), 1)
        context = bpy.context

        started = time.perf_counter()
        driven = character.drive_with_result(context, obj, source, set_scene=True)
        first = time.perf_counter() - started
        n_keys = driven.n_keys
        n_shape_keys = sum(len(report.driven_keys) for report in driven.reports.values())
        print(f"Blender {bpy.app.version_string}, {args.frames} frames, {n_shape_keys} shape keys "
              f"+ a head bone, {n_keys:,} keys; {machine_line()}")
        print(f"first drive (builds or loads the solve for this FLAME): {first:.3f} s")

        whole, keying = [], []
        take = character.take_from_result(source)
        for _ in range(args.repeats):
            clear(obj, rig)
            started = time.perf_counter()
            character.drive_with_result(context, obj, source, set_scene=True)
            whole.append(time.perf_counter() - started)
            clear(obj, rig)
            started = time.perf_counter()
            character.key_take(context, obj, take, set_scene=True)
            keying.append(time.perf_counter() - started)
        started = time.perf_counter()
        character.drive_with_result(context, obj, source, set_scene=True)  # again, onto the take already there
        redrive = time.perf_counter() - started
        median, keys_median = statistics.median(whole), statistics.median(keying)
        spread = f"{min(whole):.3f}-{max(whole):.3f}"
        print(f"Drive Character, whole (read, solve, key): median {median:.3f} s over {args.repeats} runs ({spread})")
        print(f"keying alone: median {keys_median:.3f} s ({keys_median / n_keys * 1e6:.3f} us a key); "
              f"re-driving onto the previous take {redrive:.3f} s")

        clear(obj, rig)
        n = min(args.slice, args.frames)
        per_key = loop_seconds_a_key(obj, rig, take, character_mapping.stored_mapping(obj), n)
        scaled = per_key * n_keys
        print(f"keyframe_insert loop, first {n} frames into empty curves: {per_key * 1e6:.1f} us a key, "
              f"{scaled:.1f} s scaled to {args.frames} frames (a lower bound)")
        print(f"speed-up: at least {scaled / median:.0f}x the whole drive, {scaled / keys_median:.0f}x the keying")
        goals.check(median <= 2.0, f"the whole drive of {args.frames} frames: {median:.2f} s (goal <= 2 s)")
        rig_drives(context, source, args, goals)
        eye_mesh_search(obj)
    sys.stdout.flush()
    return goals.exit_code()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
