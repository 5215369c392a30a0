"""FLAME's forward model in torch: parameters -> posed vertices and joints, batched, on CPU or CUDA.

Per frame (FLAME, Li et al. 2017, as its 2020 release defines it): blendshapes (identity,
expression, SHeaP's eyelids), joints regressed from the shaped mesh, pose correctives from
(R_j - I) of joints 1..4, linear blend skinning through the kinematic chain, then `cam_trans` added.
"""

from __future__ import annotations

import numpy as np
import torch

from sheap_blender.core.flame.model import N_EXPR, N_SHAPE, FlameModel
from sheap_blender.core.flame.params import FlameParams


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices; exact and differentiable at and near zero."""
    theta2 = (axis_angle * axis_angle).sum(-1)[..., None, None]
    small = theta2 < 1e-6
    safe = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    # sin(t)/t and (1 - cos(t))/t^2, with their Taylor series below t = 1e-3 (error < 1e-13 there)
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(safe) / safe)
    half = torch.sin(safe / 2) / (safe / 2)  # (1 - cos t) / t^2 = sinc(t/2)^2 / 2 keeps float32 precision
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, 0.5 * half * half)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * skew + b * (skew @ skew)


class Flame(torch.nn.Module):
    """FLAME as a module: `forward` gives posed vertices (N, V, 3), `posed_joints` the joints (N, 5, 3).

    Inputs: shape (N, 300), expr (N, 100), poses (N, 5, 3) axis-angle of joints 0..4, eyelids (N, 2) or
    None, cam_trans (N, 3) or None. They are cast to the module's dtype and device. Eyelid weights are
    applied only when the model has eyelid blendshapes; for a model without them they are ignored.
    """

    def __init__(self, model: FlameModel, dtype: torch.dtype = torch.float32):
        super().__init__()
        n = model.n_vertices

        def buffer(name: str, array) -> None:
            self.register_buffer(name, torch.as_tensor(array).to(dtype), persistent=False)

        buffer("v_template", model.v_template)
        buffer("shapedirs", model.shapedirs.reshape(n * 3, -1).T)  # (400, V*3)
        buffer("posedirs", model.posedirs.reshape(n * 3, -1).T)  # (36, V*3)
        buffer("j_regressor", model.j_regressor)  # (5, V)
        buffer("weights", model.weights)  # (V, 5)
        if model.eyelid_dirs is not None:
            buffer("eyelid_dirs", model.eyelid_dirs.reshape(n * 3, -1).T)  # (2, V*3)
        else:
            self.eyelid_dirs = None
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.int64), persistent=False)
        self.parents = tuple(int(p) for p in model.parents)

    @property
    def has_eyelids(self) -> bool:
        return self.eyelid_dirs is not None

    def vertices(self, params: FlameParams) -> torch.Tensor:
        """Posed vertices (N, V, 3) of N frames' parameters (NumPy, on the host), on this model's device."""
        device = self.v_template.device

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

        return self(tensor(params.shape), tensor(params.expr), tensor(params.poses()), tensor(params.eyelids),
                    tensor(params.cam_trans))

    def forward(self, shape: torch.Tensor, expr: torch.Tensor, poses: torch.Tensor,
                eyelids: torch.Tensor | None = None, cam_trans: torch.Tensor | None = None) -> torch.Tensor:
        """Posed vertices (N, V, 3) in metres, `cam_trans` included."""
        return self.pose(shape, expr, poses, eyelids, cam_trans)[0]

    def posed_joints(self, shape: torch.Tensor, expr: torch.Tensor, poses: torch.Tensor,
                     eyelids: torch.Tensor | None = None, cam_trans: torch.Tensor | None = None) -> torch.Tensor:
        """Posed joint positions (N, 5, 3), `cam_trans` included (the joints the vertices are skinned to)."""
        return self.pose(shape, expr, poses, eyelids, cam_trans)[1]

    def pose(self, shape: torch.Tensor, expr: torch.Tensor, poses: torch.Tensor,
             eyelids: torch.Tensor | None = None, cam_trans: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed vertices (N, V, 3) and posed joints (N, 5, 3)."""
        ref = self.v_template
        shape, expr, poses = (t.to(ref) for t in (shape, expr, poses))
        n, v, k = shape.shape[0], ref.shape[0], len(self.parents)
        if shape.shape != (n, N_SHAPE) or expr.shape != (n, N_EXPR) or poses.shape != (n, k, 3):
            raise ValueError(f"expected shape (N, {N_SHAPE}), expr (N, {N_EXPR}), poses (N, {k}, 3); got "
                             f"{tuple(shape.shape)}, {tuple(expr.shape)}, {tuple(poses.shape)}")
        offsets = torch.cat([shape, expr], -1) @ self.shapedirs
        if eyelids is not None and self.eyelid_dirs is not None:
            offsets = offsets + eyelids.to(ref).reshape(n, -1) @ self.eyelid_dirs
        shaped = ref + offsets.view(n, v, 3)
        joints = torch.einsum("jv,nvc->njc", self.j_regressor, shaped)

        rotations = rodrigues(poses)  # (N, 5, 3, 3)
        features = (rotations[:, 1:] - torch.eye(3, dtype=ref.dtype, device=ref.device)).reshape(n, -1)  # row-major
        shaped = shaped + (features @ self.posedirs).view(n, v, 3)

        # Down the chain (5 joints: a loop over joints, not vertices): each joint's world rotation W_j and the
        # translation u_j of its skinning transform x -> W_j x + u_j, u_j = t_j - W_j J_j (t_j the posed joint).
        # With t_j = t_p + W_p (J_j - J_p): u_0 = (I - W_0) J_0 and u_j = u_p + (W_p - W_j) J_j.
        eye = torch.eye(3, dtype=ref.dtype, device=ref.device)
        world_r = [rotations[:, 0]]
        skin_t = [((eye - rotations[:, 0]) @ joints[:, 0, :, None])[..., 0]]
        for j in range(1, k):
            p = self.parents[j]
            world_r.append(world_r[p] @ rotations[:, j])
            skin_t.append(skin_t[p] + ((world_r[p] - world_r[j]) @ joints[:, j, :, None])[..., 0])
        world_r = torch.stack(world_r, 1)  # (N, 5, 3, 3)
        skin_t = torch.stack(skin_t, 1)  # (N, 5, 3)
        world_t = skin_t + (world_r @ joints[..., None])[..., 0]
        # Linear blend skinning, written as x + sum_j w_j ((W_j - I) x + u_j): the same as sum_j w_j (W_j x + u_j)
        # for weights summing to 1 (FLAME's do), and the rest pose returns the template bit for bit.
        blended_r = torch.einsum("vj,njab->nvab", self.weights, world_r - eye)
        blended_t = torch.einsum("vj,nja->nva", self.weights, skin_t)
        vertices = shaped + (blended_r @ shaped[..., None])[..., 0] + blended_t
        if cam_trans is not None:
            cam = cam_trans.to(ref).reshape(n, 1, 3)
            vertices, world_t = vertices + cam, world_t + cam
        return vertices, world_t
