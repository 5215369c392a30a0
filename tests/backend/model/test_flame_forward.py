"""The torch FLAME forward model against a plain NumPy/SciPy implementation written from FLAME's definition."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from backend.model.flame import Flame, rodrigues


def reference_flame(model, shape, expr, poses, eyelids, cam_trans) -> tuple[np.ndarray, np.ndarray]:
    """FLAME's forward model, one frame at a time, one joint at a time, float64."""
    all_vertices, all_joints = [], []
    for i in range(len(shape)):
        betas = np.concatenate([shape[i], expr[i]])
        shaped = model.v_template + model.shapedirs @ betas
        if model.eyelid_dirs is not None and eyelids is not None:
            shaped = shaped + model.eyelid_dirs @ eyelids[i]
        joints = model.j_regressor @ shaped
        rotations = Rotation.from_rotvec(poses[i]).as_matrix()
        features = np.concatenate([(rotations[j] - np.eye(3)).ravel() for j in range(1, 5)])
        shaped = shaped + model.posedirs @ features
        world = []
        for j in range(5):
            local = np.eye(4)
            local[:3, :3] = rotations[j]
            parent = model.parents[j]
            local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
            world.append(local if parent < 0 else world[parent] @ local)
        posed = np.zeros_like(shaped)
        for j in range(5):
            unpose = np.eye(4)
            unpose[:3, 3] = -joints[j]
            skin = world[j] @ unpose
            posed += model.weights[:, j:j + 1] * (shaped @ skin[:3, :3].T + skin[:3, 3])
        all_vertices.append(posed + cam_trans[i])
        all_joints.append(np.array([w[:3, 3] for w in world]) + cam_trans[i])
    return np.array(all_vertices), np.array(all_joints)


def random_parameters(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 5, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return {
        "shape": rng.normal(size=(n, 300)),
        "expr": rng.normal(size=(n, 100)),
        "poses": axes * rng.uniform(0, 0.5, size=(n, 5, 1)),
        "eyelids": rng.uniform(0, 1, size=(n, 2)),
        "cam_trans": rng.normal(0, 0.1, size=(n, 3)),
    }


def run(flame: Flame, params: dict[str, np.ndarray], joints: bool = False) -> np.ndarray:
    tensors = [torch.from_numpy(params[k]) for k in ("shape", "expr", "poses", "eyelids", "cam_trans")]
    out = flame.posed_joints(*tensors) if joints else flame(*tensors)
    return out.detach().cpu().double().numpy()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_zero_parameters_give_the_template_exactly(demo_flame_model, dtype):
    flame = Flame(demo_flame_model, dtype=dtype)
    zeros = torch.zeros
    verts = flame(zeros(2, 300), zeros(2, 100), zeros(2, 5, 3), zeros(2, 2), zeros(2, 3))
    template = torch.as_tensor(demo_flame_model.v_template).to(dtype)
    assert verts.dtype == dtype and verts.shape == (2, 5023, 3)
    assert torch.equal(verts[0], template) and torch.equal(verts[1], template)
    joints = flame.posed_joints(zeros(1, 300), zeros(1, 100), zeros(1, 5, 3))
    assert np.allclose(joints[0].double().numpy(), demo_flame_model.j_regressor @ demo_flame_model.v_template,
                       atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_matches_the_plain_reference(demo_flame_model, dtype, tolerance):
    params = random_parameters(4, seed=7)
    expected_verts, expected_joints = reference_flame(demo_flame_model, **params)
    flame = Flame(demo_flame_model, dtype=dtype)
    verts, joints = run(flame, params), run(flame, params, joints=True)
    assert np.abs(verts - expected_verts).max() < tolerance
    assert np.abs(joints - expected_joints).max() < tolerance
    # The parameters really move the head (centimetres), so agreement to 1e-5 m is not agreement on nothing.
    assert np.abs(expected_verts - demo_flame_model.v_template).max() > 0.01


def test_each_parameter_group_matters(demo_flame_model):
    """Switching off one group changes the result: the reference comparison covers every term."""
    params = random_parameters(1, seed=11)
    flame = Flame(demo_flame_model, dtype=torch.float64)
    full = run(flame, params)
    for key in params:
        changed = {**params, key: np.zeros_like(params[key])}
        assert np.abs(run(flame, changed) - full).max() > 1e-4, key


def test_eyelids_ignored_without_eyelid_blendshapes(demo_flame_model):
    params = random_parameters(2, seed=3)
    plain = Flame(dataclasses.replace(demo_flame_model, eyelid_dirs=None), dtype=torch.float64)
    assert not plain.has_eyelids
    without = run(plain, {**params, "eyelids": np.zeros_like(params["eyelids"])})
    assert np.array_equal(run(plain, params), without)
    expected, _ = reference_flame(dataclasses.replace(demo_flame_model, eyelid_dirs=None), **params)
    assert np.abs(without - expected).max() < 1e-10


def test_batch_rows_are_independent(demo_flame_model):
    params = random_parameters(5, seed=5)
    flame = Flame(demo_flame_model, dtype=torch.float64)
    batch = run(flame, params)
    single = run(flame, {k: v[2:3] for k, v in params.items()})
    assert np.abs(batch[2] - single[0]).max() < 1e-12


def test_inputs_are_cast_and_checked(demo_flame_model):
    flame = Flame(demo_flame_model)  # float32 by default; float64 inputs are cast
    params = random_parameters(1, seed=1)
    assert run(flame, params).shape == (1, 5023, 3)
    with pytest.raises(ValueError, match="expected shape"):
        flame(torch.zeros(1, 100), torch.zeros(1, 100), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="expected shape"):
        flame(torch.zeros(1, 300), torch.zeros(1, 100), torch.zeros(1, 15))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rodrigues_matches_scipy_including_tiny_angles(dtype):
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(6, 4, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-7, 1e-4, 1e-3, 0.3, 1.5, 3.1])[:, None, None, None]
    rotvecs = (axes[None] * angles).reshape(-1, 4, 3)  # any leading batch shape
    got = rodrigues(torch.from_numpy(rotvecs).to(dtype)).double().numpy()
    expected = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(got.shape)
    assert np.abs(got - expected).max() < (1e-6 if dtype == torch.float32 else 1e-14)
    assert torch.equal(rodrigues(torch.zeros(3, dtype=dtype)), torch.eye(3, dtype=dtype))


def test_rodrigues_gradient_is_finite_at_zero():
    rotvec = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    rodrigues(rotvec).sum().backward()
    assert torch.isfinite(rotvec.grad).all()
    # d(R)/d(rotvec) at zero is the skew generator: sum over entries of R is constant to first order.
    assert torch.allclose(rotvec.grad, torch.zeros_like(rotvec.grad))
    small = torch.tensor([[1e-5, -2e-5, 3e-5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rodrigues, (small,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(demo_flame_model):
    params = random_parameters(8, seed=9)
    cpu = run(Flame(demo_flame_model), params)
    cuda = Flame(demo_flame_model).to("cuda")
    tensors = [torch.from_numpy(params[k]).cuda() for k in ("shape", "expr", "poses", "eyelids", "cam_trans")]
    verts = cuda(*tensors)
    assert verts.device.type == "cuda"
    assert np.abs(verts.double().cpu().numpy() - cpu).max() < 1e-5
