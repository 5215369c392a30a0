"""2D Gaussians on the head: `reconstruct --gaussians`, their colours from the footage, `export-ply`, the server
key, and the CUDA refinement where a GPU and gsplat are present. Real subprocesses on the demo stand-ins
(the session's `demo` folder from conftest)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_command import REPO, backend

from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.gaussians import TENSORS, binding_from_tensors, pose_gaussians
from sheap_blender.core.result.result_format import read_result

START, END, COUNT = 2, 30, 20_000


def reconstruct(demo: Path, out: Path, *extra, check: bool = False, device: str = "cpu") -> subprocess.CompletedProcess:
    return backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "generic_model.pkl",
                   "--weights", demo / "demo_sheap_model.pt", "--device", device, *extra, check=check)


@pytest.fixture(scope="module")
def with_gaussians(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gaussians") / "astronaut.sheap.safetensors"
    reconstruct(demo, out, "--start", START, "--end", END, "--gaussians", "--gaussian-count", COUNT, check=True)
    return out


@pytest.fixture(scope="module")
def model(demo):
    return load_flame(demo / "generic_model.pkl")


@pytest.fixture(scope="module")
def vertices(demo, with_gaussians) -> np.ndarray:
    """Every row's posed vertices through the `flame` command (the torch forward model)."""
    out = with_gaussians.with_name("verts.npy")
    backend("flame", with_gaussians, "--flame", demo / "generic_model.pkl", "-o", out, check=True)
    return np.load(out)


@pytest.fixture(scope="module")
def views(model, with_gaussians):
    from backend.footage.reader import open_footage
    from backend.gaussians.views import choose_rows, load_views

    result = read_result(with_gaussians)
    chosen = choose_rows(result, 8)
    held_out = np.setdiff1d(np.arange(result.n_frames), chosen)[::6]
    footage = open_footage(result.metadata["footage"])
    return load_views(model, result, footage, chosen), load_views(model, result, footage, held_out)


def test_binding_is_written_and_valid(with_gaussians, model):
    result = read_result(with_gaussians)
    assert result.frame_index.tolist() == list(range(START, END))
    binding = binding_from_tensors(with_gaussians, result.extra, n_faces=len(model.faces))
    assert binding is not None and binding.count == COUNT
    for name, (width, dtype) in TENSORS.items():
        assert result.extra[name].dtype == dtype and result.extra[name].shape == ((COUNT,) if not width else
                                                                                  (COUNT, width))
    assert np.allclose(binding.bary.sum(1), 1, atol=1e-6) and (binding.bary >= 0).all()
    assert binding.face.min() >= 0 and binding.face.max() < len(model.faces)
    assert ((binding.opacity >= 0) & (binding.opacity <= 1)).all()
    assert ((binding.colour >= 0) & (binding.colour <= 1)).all()
    assert np.allclose(np.linalg.norm(binding.rotation, axis=1), 1, atol=1e-5) and (binding.scale > 0).all()
    # most of the head's front is seen (opaque); the never-seen back of the head is faint and grey
    seen = binding.opacity > 0.5
    assert 0.2 < seen.mean() < 0.9
    assert np.allclose(binding.colour[~seen], 0.5) and (binding.opacity[~seen] < 0.2).all()


def test_no_gaussians_inside_the_head(with_gaussians, model):
    """The demo's eyeballs are spheres behind the eyelids: their back halves lie inside the head."""
    from backend.standins.flame import EYE_XY, HEAD_COLUMNS, HEAD_RINGS

    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)
    first_eye_vertex = HEAD_RINGS * HEAD_COLUMNS + 1
    corners = model.faces[binding.face]
    on_eyes = (corners >= first_eye_vertex).all(1)
    eye_centre_z = model.v_template[first_eye_vertex:].mean(0)[2]
    back = on_eyes & (model.v_template[corners][..., 2] < eye_centre_z - 0.004).all(1)
    assert len(EYE_XY) == 2 and on_eyes.any()  # the front of the eyes is seen, so Gaussians sit there
    assert not back.any()


def test_posing_matches_the_torch_flame_mesh(with_gaussians, model, vertices):
    """Core NumPy posing at frame k = the same surfels built on the torch FLAME vertices with torch ops."""
    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)
    k = 11
    centres, axes, scales = pose_gaussians(vertices[k], model.faces, binding)
    v = torch.from_numpy(vertices[k]).double()
    tri = v[torch.from_numpy(model.faces[binding.face])]  # (G, 3, 3)
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal = cross / cross.norm(dim=1, keepdim=True)
    size = cross.norm(dim=1).sqrt()
    expected = (torch.from_numpy(binding.bary).double()[..., None] * tri).sum(1)
    expected += (torch.from_numpy(binding.offset).double() * size)[:, None] * normal
    assert np.abs(centres - expected.numpy()).max() < 1e-5
    assert np.abs(axes[:, :, 2] - normal.numpy()).max() < 1e-4
    assert np.allclose(scales, binding.scale * size.numpy()[:, None], rtol=1e-4)


def test_colours_come_from_the_footage(with_gaussians, model, views):
    from backend.gaussians.splat_render import reprojection_error

    chosen, held_out = views
    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)
    seen = binding.opacity > 0.5
    footage_mean = np.concatenate([view.image[view.head_mask] for view in chosen]).mean(0)
    gaussian_mean = binding.colour[seen].mean(0)
    assert np.abs(gaussian_mean - footage_mean).max() < 0.06, (gaussian_mean, footage_mean)
    assert gaussian_mean[0] > gaussian_mean[1] > gaussian_mean[2]  # warm (skin, hair), not the neutral grey
    # drawn back into the footage, the projected colours fit far better than the same colours shuffled
    # or one flat colour, on the frames they came from and on frames they did not
    shuffled = binding.colour[np.random.default_rng(0).permutation(binding.count)]
    flat = np.tile(footage_mean, (binding.count, 1))
    for group in (chosen, held_out):
        error = reprojection_error(group, binding, model.faces)
        assert error < 0.5 * reprojection_error(group, binding, model.faces, shuffled)
        assert error < 0.6 * reprojection_error(group, binding, model.faces, flat)


def test_default_count_and_bad_count(demo, tmp_path):
    out = tmp_path / "default.safetensors"
    reconstruct(demo, out, "--end", 6, "--gaussians", check=True)
    assert read_result(out).extra["gaussian_face"].shape == (60_000,)
    assert not (tmp_path / "default.gaussians.png").exists()  # the preview comes with the CUDA refinement
    bad = reconstruct(demo, tmp_path / "bad.safetensors", "--end", 6, "--gaussians", "--gaussian-count", "0")
    assert bad.returncode == 2 and "Gaussian count" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.safetensors").exists()


def read_ply_header(path: Path) -> tuple[list[str], int, int]:
    blob = path.read_bytes()
    end = blob.index(b"end_header\n") + len(b"end_header\n")
    lines = blob[:end].decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    count = int(next(line for line in lines if line.startswith("element vertex")).split()[-1])
    names = [line.split()[-1] for line in lines if line.startswith("property float")]
    return names, count, end


def test_export_ply(demo, with_gaussians, model, vertices, tmp_path):
    import trimesh

    frame = 10  # footage frame; the result starts at START, so this is row 8
    out = tmp_path / "head.ply"
    completed = backend("export-ply", with_gaussians, "--frame", frame, "--flame", demo / "generic_model.pkl",
                        "-o", out, "--device", "auto", check=True)
    assert str(COUNT) in completed.stdout
    names, count, end = read_ply_header(out)
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert count == COUNT and out.stat().st_size == end + COUNT * 17 * 4
    data = np.frombuffer(out.read_bytes()[end:], dtype="<f4").reshape(COUNT, 17)
    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)
    centres, axes, scales = pose_gaussians(vertices[frame - START], model.faces, binding)
    cloud = trimesh.load(out)
    assert len(cloud.vertices) == COUNT
    assert np.abs(np.asarray(cloud.vertices) - centres).max() < 1e-5
    assert np.abs(data[:, 3:6] - axes[:, :, 2]).max() < 1e-4  # float32 normals of mm-sized triangles
    assert np.allclose(data[:, 6:9] * 0.28209479177387814 + 0.5, binding.colour, atol=1e-5)
    assert np.allclose(1 / (1 + np.exp(-data[:, 9])), binding.opacity, atol=1e-5)
    assert np.allclose(np.exp(data[:, 10:12]), scales, rtol=1e-4)
    assert (data[:, 12] < data[:, 10:12].min(1) - 4).all()  # the flat third axis
    assert np.allclose(np.linalg.norm(data[:, 13:17], axis=1), 1, atol=1e-5)
    # the quaternion turns (1, 0, 0) into the surfel's first axis
    w, x, y, z = data[:, 13:17].T
    first_axis = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], 1)
    assert np.abs(first_axis - axes[:, :, 0]).max() < 1e-4


def test_export_ply_bad_input(demo, with_gaussians, tmp_path):
    plain = tmp_path / "plain.safetensors"
    reconstruct(demo, plain, "--end", 6, check=True)
    cases = [(plain, 1, "no Gaussians"), (with_gaussians, 0, "not in the result"),
             (with_gaussians, END, "not in the result"), (tmp_path / "missing.safetensors", 3, "not found")]
    for result, frame, message in cases:
        out = tmp_path / "bad.ply"
        completed = backend("export-ply", result, "--frame", frame, "--flame", demo / "flame.safetensors", "-o", out)
        assert completed.returncode == 2, completed.stderr
        assert message in completed.stderr and len(completed.stderr.strip().splitlines()) == 1
        assert not out.exists() and not list(tmp_path.glob(".bad.ply*"))


def test_server_takes_the_gaussian_keys(demo, tmp_path):
    out = tmp_path / "served.safetensors"
    request = {"cmd": "reconstruct", "id": 7, "footage": str(demo / "astronaut.mp4"), "output": str(out),
               "flame": str(demo / "flame.safetensors"), "weights": str(demo / "demo_sheap_model.pt"),
               "device": "cpu", "end": 6, "gaussians": True, "gaussian_count": 3000}
    lines = json.dumps(request) + "\n" + json.dumps({"cmd": "ping"}) + "\n"
    process = subprocess.Popen([sys.executable, "-m", "backend", "serve"], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    watchdog = threading.Timer(120, process.kill)  # a hung backend fails the test instead of blocking it
    watchdog.start()
    try:
        process.stdin.write(lines)
        process.stdin.flush()
        events = []
        while not events or events[-1]["event"] not in ("done", "error", "cancelled"):
            line = process.stdout.readline()
            assert line, "the backend closed its output"
            events.append(json.loads(line))
    finally:
        watchdog.cancel()
        process.stdin.close()
        process.wait(timeout=30)
    assert events[-1]["event"] == "done", events[-1]
    assert any("Gaussians" in e.get("message", "") for e in events if e["event"] == "log")
    assert read_result(out).extra["gaussian_colour"].shape == (3000, 3)


def test_gsplat_camera_matches_the_result_camera(views, model, with_gaussians):
    """What the CUDA path hands gsplat (view matrix, window intrinsics, quaternions) images the surfels exactly
    where the result's camera (project_to_footage + the view's window) puts them: checked on any machine."""
    from backend.gaussians.refine import VIEW_MATRIX, _posed
    from sheap_blender.core.rotation import quaternion_to_matrix

    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)
    for view in views[0][:3]:
        posed = _posed(binding, model.faces, view, torch.device("cpu"))
        means = posed["means"].double().numpy()
        camera = means @ VIEW_MATRIX[:3, :3].T.astype(np.float64) + VIEW_MATRIX[:3, 3]
        pixels = camera @ view.intrinsics().T
        expected, depth = view.project(means)
        assert np.abs(pixels[:, :2] / pixels[:, 2:] - expected).max() < 1e-3
        assert np.allclose(camera[:, 2], depth, atol=1e-6)
        axes = pose_gaussians(view.vertices.astype(np.float64), model.faces, binding)[1]
        assert np.abs(quaternion_to_matrix(posed["quats"].double().numpy()) - axes).max() < 1e-5
        assert (posed["scales"][:, 2] < 0.02 * posed["scales"][:, :2].min(1).values).all()


def test_cuda_refinement(demo, model, with_gaussians, views, tmp_path):
    from backend.gaussians.refine import gsplat_available

    if not gsplat_available():
        pytest.skip("needs CUDA and gsplat")
    from backend.gaussians.refine import refine, render_views

    chosen, _ = views
    device = torch.device("cuda")
    binding = binding_from_tensors(with_gaussians, read_result(with_gaussians).extra)

    def error(b) -> float:
        renders = render_views(b, model.faces, chosen, device)
        return float(np.mean([np.abs(r - v.image)[v.head_mask].mean() for r, v in zip(renders, chosen)]))

    before = error(binding)
    refined = refine(binding, model.faces, chosen, device, steps=150)
    assert error(refined) < 0.9 * before
    assert ((refined.colour >= 0) & (refined.colour <= 1)).all()
    # the command line on CUDA refines and writes the side-by-side preview
    out = tmp_path / "cuda.sheap.safetensors"
    reconstruct(demo, out, "--end", 10, "--gaussians", "--gaussian-count", 5000, device="cuda", check=True)
    import cv2

    preview = cv2.imread(str(tmp_path / "cuda.sheap.gaussians.png"))  # footage | Gaussians | overlay
    assert preview is not None and preview.shape[1] % 3 == 0 and preview.std() > 5
