"""A stand-in for the SHeaP weights: same TorchScript input/output contract, random small network.

Its outputs follow the image (a fixed random CNN), in ranges a real head takes, so every stage
downstream sees plausible numbers. It marks itself with `sheap_demo = True`; the backend and the
Blender side say "demo weights" wherever it is used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from sheap_blender.core.atomic_file import replacing

DEMO_WEIGHTS_NAME = "demo_sheap_model.pt"
FULL_SIZE_WEIGHTS_NAME = "demo_sheap_vit_b16.pt"  # release-sized: ~350 MB, never in git


class DemoSheap(nn.Module):
    def __init__(self, features: nn.Module | None = None, n_features: int = 512):
        """`features` maps (N, 3, 224, 224) to (N, n_features); by default a small random CNN."""
        super().__init__()
        self.sheap_demo = True
        width = 32
        self.features = features if features is not None else nn.Sequential(
            nn.Conv2d(3, width, 5, stride=4, padding=2), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.head = nn.Linear(n_features, 300 + 100 + 5 * 3 + 2 + 3)
        # scales that put each output in the range a real head takes
        scale = torch.cat([
            torch.full((300,), 0.3),  # identity
            torch.full((100,), 1.5),  # expression
            torch.tensor([0.05, 0.05, 0.05]),  # torso
            torch.tensor([0.25, 0.35, 0.10]),  # neck: nod, turn, tilt (radians)
            torch.tensor([0.12, 0.01, 0.01]),  # jaw: mostly opening about x
            torch.full((6,), 0.15),  # eyes
            torch.full((2,), 0.5),  # eyelids
            torch.tensor([0.01, 0.01, 0.03]),  # translation
        ])
        offset = torch.zeros_like(scale)
        offset[300 + 100 + 6] = 0.10  # a slightly open jaw on average
        offset[300 + 100 + 15 : 300 + 100 + 17] = 0.3  # eyelids partly down
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(images * 2.0 - 1.0)
        out = torch.tanh(self.head(h) * 4.0) * self.scale + self.offset
        return {
            "shape_from_facenet": out[:, :300],
            "expr": out[:, 300:400],
            "torso_pose": out[:, 400:403],
            "neck_pose": out[:, 403:406],
            "jaw_pose": out[:, 406:409],
            "eye_l_pose": out[:, 409:412],
            "eye_r_pose": out[:, 412:415],
            "eyelids": out[:, 415:417],
            "cam_trans": out[:, 417:420],
        }


class _Block(nn.Module):
    """A pre-norm transformer block as in timm's ViT: attention (fused qkv) then a GELU MLP."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(functional.gelu(self.fc1(self.norm2(x))))


class ViTB16(nn.Module):
    """A ViT-B/16 encoder at 224 (patch 16, width 768, depth 12, 12 heads), then a 1024-wide GELU layer:
    with DemoSheap's head, ~87 M parameters, the size and architecture class of the release's predictor."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, out: int = 1024):
        super().__init__()
        self.patches = nn.Conv2d(3, dim, 16, 16)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.position = nn.Parameter(torch.randn(1, 197, dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.position
        return functional.gelu(self.out(self.norm(self.blocks(tokens))[:, 0]))


def write_full_size_predictor(directory: str | Path, seed: int = 0) -> Path:
    """The release-sized stand-in (ViT-B/16, random weights, SHeaP's contract, `sheap_demo`), for benchmarks."""
    torch.manual_seed(seed)
    path = Path(directory) / FULL_SIZE_WEIGHTS_NAME
    with replacing(path) as temporary:
        torch.jit.save(torch.jit.script(DemoSheap(ViTB16(), 1024).eval()), str(temporary))
    return path


def write_demo_predictor(directory: str | Path, seed: int = 0) -> Path:
    """Script the stand-in network with fixed random weights and save it as a TorchScript archive."""
    torch.manual_seed(seed)
    path = Path(directory) / DEMO_WEIGHTS_NAME
    torch.jit.save(torch.jit.script(DemoSheap().eval()), str(path))
    return path
