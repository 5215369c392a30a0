"""Synthetic FLAME models and result files, a plain NumPy FLAME forward model, evaluation helpers.

The reference forward model here is written from FLAME's definition on its own: it shares no code with the
rig (sheap_blender.core.result.rig_math), so agreement between the two is evidence, not tautology.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from sheap_blender.core.flame.model import FlameModel, save_flame
from sheap_blender.core.result.result_format import PER_FRAME, Result, write_result

PARENTS = np.array([-1, 0, 1, 1, 1])
FOV = 14.2539
# The closing lines of a script run by a child Blender process (its body sets up `status = 1` and
# `try:`): exit 0 only when the body finished, print the traceback otherwise, and leave at once.
CHILD_SCRIPT_END = """    status = 0
except BaseException:
    import traceback
    traceback.print_exc()
finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
"""


def synthetic_flame(seed: int = 0, eyelids: bool = True, sha: str = "synthetic-flame") -> FlameModel:
    """FLAME-sized random arrays with a head-like layout (metres, +Y up)."""
    rng = np.random.default_rng(seed)
    v = 5023
    direction = rng.normal(size=(v, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    template = direction * np.array([0.08, 0.11, 0.1]) + np.array([0.0, 0.0, 0.0])
    # joints near plausible places: torso low, neck, jaw, eyes
    anchors = np.array([[0, -0.15, -0.02], [0, -0.08, -0.02], [0, -0.03, 0.02], [0.03, 0.03, 0.07],
                        [-0.03, 0.03, 0.07]])
    regressor = np.zeros((5, v))
    for j in range(5):
        nearest = np.argsort(np.linalg.norm(template - anchors[j], axis=1))[:12]
        w = rng.random(12) + 0.1
        regressor[j, nearest] = w / w.sum()
    weights = np.zeros((v, 5))
    closest = np.argmin(np.linalg.norm(template[:, None] - anchors[None], axis=2), axis=1)
    for i in range(v):
        k = rng.integers(1, 4)
        joints = np.unique(np.concatenate([[closest[i]], rng.integers(0, 5, size=k - 1)]))
        w = rng.random(len(joints)) + 0.05
        weights[i, joints] = w / w.sum()
    weights[: v // 4] = 0.0
    weights[: v // 4, 1] = 1.0  # many exactly-1 weights, like FLAME's
    faces = np.empty((9976, 3), dtype=np.int64)
    for f in range(9976):
        faces[f] = rng.choice(v, 3, replace=False)
    return FlameModel(
        v_template=template,
        shapedirs=rng.normal(size=(v, 3, 400)) * 6e-4,
        posedirs=rng.normal(size=(v, 3, 36)) * 2e-3,
        j_regressor=regressor,
        weights=weights,
        faces=faces,
        parents=PARENTS.copy(),
        # as in SHeaP's release: channel 0 moves the subject's right eyelid (-X), channel 1 the left
        eyelid_dirs=(rng.normal(size=(v, 3, 2)) * 1e-3 * np.stack([template[:, 0] < 0, template[:, 0] > 0], axis=1)[
            :, None, :]) if eyelids else None,
        source_sha256=sha,
    )


def write_flame(path: Path, model: FlameModel) -> Path:
    save_flame(model, path)
    return path


def synthetic_result(n: int, seed: int = 1, width: int = 640, height: int = 480, footage: str = "clip.mp4",
                     flame_sha: str = "synthetic-flame", demo: bool = False, valid_ratio: float = 0.85,
                     fps: str = "29.97002997") -> Result:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    shape = np.repeat(rng.normal(size=(1, 300)) * 0.8, n, axis=0)
    params = {
        "shape": shape,
        "expr": rng.normal(size=(n, 100)) * 0.8 + np.sin(t / 7.0),
        "torso_pose": rng.normal(size=(n, 3)) * 0.08,
        "neck_pose": rng.normal(size=(n, 3)) * 0.25,
        "jaw_pose": np.abs(rng.normal(size=(n, 3))) * np.array([0.25, 0.03, 0.03]),
        "eye_l_pose": rng.normal(size=(n, 3)) * 0.2,
        "eye_r_pose": rng.normal(size=(n, 3)) * 0.2,
        "eyelids": rng.random((n, 2)),
        "cam_trans": rng.normal(size=(n, 3)) * np.array([0.01, 0.01, 0.05]),
    }
    # also a large rotation: exercises the quaternion path beyond small angles
    params["neck_pose"][0] = [0.0, 2.5, 0.0]
    size = rng.uniform(0.35, 0.6, size=n) * min(width, height)
    cx = width / 2 + rng.uniform(-0.2, 0.2, size=n) * width
    cy = height / 2 + rng.uniform(-0.15, 0.15, size=n) * height
    params["crop_box"] = np.stack([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], axis=1)
    params = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    assert set(params) == set(PER_FRAME)
    valid = rng.random(n) < valid_ratio
    valid[0] = True
    metadata = {"footage": footage, "width": str(width), "height": str(height), "fps": fps, "frame_count": str(n),
                "model_file": "synthetic.pt", "model_sha256": "0", "flame_sha256": flame_sha, "fov_deg": str(FOV),
                "backend_version": "test", "demo": "true" if demo else "false", "identity": "clip"}
    extra = {"confidence": valid.astype(np.float32)}
    return Result(np.arange(n, dtype=np.int64), valid, params, extra, metadata)


def write(path: Path, result: Result) -> Path:
    write_result(path, result)
    return path


# ------------------------------------------------------------------------------ reference FLAME


def rodrigues(r: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def flame_forward(model: FlameModel, result: Result, frame: int) -> np.ndarray:
    """FLAME's five steps (docs/result-format.md, Geometry) for one result row, float64."""
    p = {k: v[frame].astype(np.float64) for k, v in result.params.items()}
    coeffs = np.concatenate([p["shape"], p["expr"]])
    shaped = model.v_template + np.einsum("vck,k->vc", model.shapedirs, coeffs)
    if model.eyelid_dirs is not None:
        shaped = shaped + np.einsum("vck,k->vc", model.eyelid_dirs, p["eyelids"])
    joints = model.j_regressor @ shaped
    poses = [p["torso_pose"], p["neck_pose"], p["jaw_pose"], p["eye_l_pose"], p["eye_r_pose"]]
    rots = [rodrigues(r) for r in poses]
    features = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, 5)])
    posed = shaped + np.einsum("vck,k->vc", model.posedirs, features)
    world = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[PARENTS[j]] if PARENTS[j] >= 0 else 0)
        world.append(local if PARENTS[j] < 0 else world[PARENTS[j]] @ local)
    skin = []
    for j in range(5):
        a = world[j].copy()
        a[:3, 3] -= world[j][:3, :3] @ joints[j]
        skin.append(a)
    skin = np.stack(skin)  # (5, 4, 4)
    blended = np.einsum("vj,jab->vab", model.weights, skin)
    homogeneous = np.concatenate([posed, np.ones((len(posed), 1))], axis=1)
    verts = np.einsum("vab,vb->va", blended, homogeneous)[:, :3]
    return verts + p["cam_trans"]


def reference_pixels(verts: np.ndarray, box: np.ndarray, fov: float = FOV) -> np.ndarray:
    """docs/result-format.md's projection: SHeaP's camera, then the crop box."""
    f = 112 / np.tan(np.radians(fov) / 2)
    depth = 1 - verts[:, 2]
    u = 112 + f * verts[:, 0] / depth
    v = 112 - f * verts[:, 1] / depth
    x0, y0, x1, y1 = box.astype(np.float64)
    return np.stack([x0 + u * (x1 - x0) / 224, y0 + v * (y1 - y0) / 224], axis=1)


# ------------------------------------------------------------------------------ Blender side


def evaluated_flame_vertices(bpy, head, frame: int) -> np.ndarray:
    """The head's evaluated vertices at a scene frame, in world space turned back to FLAME axes."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = head.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    co = co.reshape(-1, 3).astype(np.float64)
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    world = co @ matrix[:3, :3].T + matrix[:3, 3]
    # Blender (x, y, z) = FLAME (x, -z, y)  =>  FLAME = (x, z, -y)
    return np.stack([world[:, 0], world[:, 2], -world[:, 1]], axis=1)


def datablock_counts(bpy) -> dict[str, int]:
    data = bpy.data
    names = ("objects", "meshes", "actions", "cameras", "images", "movieclips", "armatures", "collections",
             "shape_keys")
    counts = {name: len(getattr(data, name)) for name in names}
    counts["markers"] = len(bpy.context.scene.timeline_markers)
    return counts


def scene_settings(bpy) -> dict:
    scene = bpy.context.scene
    r = scene.render
    return {"fps": r.fps, "fps_base": r.fps_base, "res": (r.resolution_x, r.resolution_y), "start": scene.frame_start,
            "end": scene.frame_end, "camera": scene.camera.name if scene.camera else None}


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A minimal 8-bit RGB PNG writer (no dependency)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_frames(folder: Path, n: int, width: int, height: int, first_number: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        rgb[..., 0] = (i * 37) % 256
        write_png(folder / f"frame_{first_number + i:04d}.png", rgb)
    return folder


def moving_head_result(n: int, fps: str = "24", seed: int = 3, flame_sha: str = "") -> Result:
    """A head that moves as a person does: turned +-0.4 rad, nodding, the jaw opening, ten expressions, a blink,
    the eyes looking around, the head moving in the frame (a demo result, valid on every frame)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    zeros = np.zeros((n, 3))
    neck, torso, jaw, eyes = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    neck[:, 1] = 0.4 * np.sin(2 * np.pi * t)  # turned left and right
    neck[:, 0] = 0.25 * np.sin(4 * np.pi * t)  # nodding
    torso[:, 2] = 0.05 * np.sin(2 * np.pi * t)
    jaw[:, 0] = 0.3 * np.clip(np.sin(6 * np.pi * t), 0.0, None)
    eyes[:, 1] = 0.2 * np.sin(2 * np.pi * t)
    expr = np.zeros((n, 100))
    expr[:, :10] = 2.0 * np.sin(2 * np.pi * np.outer(t, np.arange(1, 11)) / 3 + np.arange(10))
    blink = np.exp(-(((np.arange(n) - n / 2) / 2.0) ** 2))
    cam = np.stack([0.01 * np.sin(2 * np.pi * t), 0.005 * np.cos(2 * np.pi * t), 0.02 * t - 0.3], axis=1)
    params = {"shape": np.repeat(rng.normal(size=(1, 300)) * 0.8, n, axis=0), "expr": expr, "torso_pose": torso,
              "neck_pose": neck, "jaw_pose": jaw, "eye_l_pose": eyes, "eye_r_pose": eyes,
              "eyelids": np.repeat(blink[:, None], 2, axis=1), "cam_trans": cam,
              "crop_box": np.tile([220.0, 140.0, 420.0, 340.0], (n, 1))}
    params = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    metadata = {"footage": "clip.mp4", "width": "640", "height": "480", "fps": fps, "frame_count": str(n),
                "model_file": "demo.pt", "model_sha256": "0", "flame_sha256": flame_sha, "fov_deg": str(FOV),
                "backend_version": "test", "demo": "true", "identity": "clip"}
    return Result(np.arange(n, dtype=np.int64), np.ones(n, dtype=bool), params,
                  {"confidence": np.ones(n, dtype=np.float32)}, metadata)


def render_still(bpy, frame: int, path: Path) -> np.ndarray:
    """A scene frame rendered with Cycles (CPU, 8 samples, no denoising) to a PNG, read back: (H, W, 3) 0..255."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(path)
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return (pixels.reshape(height, width, 4)[::-1, :, :3] * 255.0).round()  # Blender's rows run bottom-up
