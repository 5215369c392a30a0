"""dlib's face-recognition ResNet (128-d descriptors) as a torch module, fast on one CPU core.

The architecture is `anet_type` of dlib's examples/dnn_face_recognition_ex.cpp: a 150x150 RGB
face chip, conv 7x7/2 (32) + affine + relu, max pool 3x3/2, then 3 residual blocks of 32
filters, 4 of 64, 3 of 128, 3 of 256 and 1 of 256, the first of each width after 32 halving the
resolution, an average over the whole map and a 128x256 matrix without bias. dlib's padding:
a convolution or pool with stride 1 pads size // 2, one with stride 2 pads nothing (so the map
goes 150 -> 72 -> 35 -> 17 -> 8 -> 4 -> 2). Each affine layer (batch norm frozen at training)
is folded into the convolution before it when the weights are converted (`face_net_convert`).

A down-sampling block adds its input, averaged 2x2/2, to the output of its two convolutions.
Their shapes can differ (fewer channels; at 8 -> 3 vs 4 and 4 -> 1 vs 2 pixels, more rows and
columns in the pooled input): dlib's add_prev layer takes the larger of each dimension and
counts what is missing in either as zero, and so does `_padded_sum`.

Descriptors are dlib's output as is (not normalised): dlib's own rule calls two faces the same
person when their Euclidean distance is below 0.6.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHIP_SIZE = 150
INPUT_SCALE = 256.0  # dlib's input_rgb_image: (value - average) / 256
# (filters, halves the resolution) for each residual block, input first: dlib's alevel4 ... alevel0
BLOCKS: list[tuple[int, bool]] = (
    [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2
    + [(256, True)] + [(256, False)] * 2 + [(256, True)]
)
SAME_PERSON_DISTANCE = 0.6  # dlib's threshold on the Euclidean distance of two descriptors


def _padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b over the larger of each shape, what either lacks (trailing channels, rows, columns) as zero."""
    channels, rows, cols = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))
    a = F.pad(a, (0, cols - a.shape[3], 0, rows - a.shape[2], 0, channels - a.shape[1]))
    b = F.pad(b, (0, cols - b.shape[3], 0, rows - b.shape[2], 0, channels - b.shape[1]))
    return a + b


class ResidualBlock(nn.Module):
    """relu(shortcut + conv3x3(relu(conv3x3(x)))); the shortcut is x, or x averaged 2x2/2 when down-sampling."""

    def __init__(self, in_channels: int, filters: int, down: bool):
        super().__init__()
        self.down = down
        # stride 2: no padding (dlib's default for strided layers), stride 1: padding 1
        self.conv1 = nn.Conv2d(in_channels, filters, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            return F.relu(_padded_sum(F.avg_pool2d(x, 2, 2), y))
        return F.relu(x + y)


class FaceRecognitionNet(nn.Module):
    """(N, 3, 150, 150) float RGB face chips, values 0..255 (dlib's chip, channels first) -> (N, 128) descriptors."""

    def __init__(self):
        super().__init__()
        # dlib's input layer subtracts this average colour (stored in the model file) and divides by 256
        self.register_buffer("input_mean", torch.tensor([122.782, 117.001, 104.298]))
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        channels = [32] + [filters for filters, _ in BLOCKS]
        self.blocks = nn.ModuleList(
            ResidualBlock(channels[i], filters, down) for i, (filters, down) in enumerate(BLOCKS))
        self.fc = nn.Linear(BLOCKS[-1][0], 128, bias=False)

    @staticmethod
    def conv_names() -> list[str]:
        """The convolutions in dlib's order (input first), each followed by an affine layer in dlib."""
        return ["stem"] + [f"blocks.{i}.conv{j}" for i in range(len(BLOCKS)) for j in (1, 2)]

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips - self.input_mean.view(1, 3, 1, 1)) / INPUT_SCALE
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    def optimised(self, batch: int = 1) -> torch.jit.ScriptModule:
        """This network traced, frozen and optimised for CPU inference in channels_last (any batch size)."""
        self.eval().to(memory_format=torch.channels_last)
        example = torch.zeros(batch, 3, CHIP_SIZE, CHIP_SIZE).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the residual sums' padding is read from shapes, fixed by the 150x150 chip: constants are right
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(self, example)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def chips_tensor(chips: np.ndarray) -> torch.Tensor:
    """(N, 150, 150, 3) uint8 RGB chips -> the network's (N, 3, 150, 150) float input, channels_last in memory."""
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"face chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) RGB, got {chips.shape}")
    # NHWC memory viewed as NCHW is exactly channels_last: no copy beyond the float conversion
    return torch.from_numpy(np.ascontiguousarray(chips, dtype=np.float32)).permute(0, 3, 1, 2)


def descriptors(net: nn.Module, chips: np.ndarray) -> np.ndarray:
    """(N, 128) float32 descriptors of (N, 150, 150, 3) uint8 RGB chips (from `face_chip`)."""
    with torch.inference_mode():
        return net(chips_tensor(chips)).numpy()
