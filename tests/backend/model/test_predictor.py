"""The SHeaP archive loader: the contract check, demo detection, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.model.predictor import REQUIRED_OUTPUTS, Predictor, resolve_device
from backend.standins.predictor import DemoSheap, write_demo_predictor
from sheap_blender.core.errors import InputError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def demo_weights(tmp_path_factory):
    return write_demo_predictor(tmp_path_factory.mktemp("weights"))


def test_demo_predictor_meets_the_contract(demo_weights):
    predictor = Predictor(demo_weights, CPU)
    assert predictor.is_demo
    crops = np.random.default_rng(0).random((5, 3, 224, 224), dtype=np.float32)
    out = predictor.predict(crops)
    for key, (name, width) in REQUIRED_OUTPUTS.items():
        assert out[name].shape == (5, width), key
        assert out[name].dtype == np.float32
    # a real network: different images give different parameters
    assert np.abs(out["expr"][0] - out["expr"][1]).max() > 1e-4


def test_unknown_outputs_are_carried_along(tmp_path):
    class WithExtra(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = DemoSheap()

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = self.inner(x)
            out["vertex_colours"] = torch.ones(x.shape[0], 7)
            out["shape"] = torch.full((x.shape[0], 5), 7.0)  # collides with the renamed shape_from_facenet
            out["segment"] = torch.full((x.shape[0], 1), 3.0)  # and with a name the result itself uses
            return out

    path = tmp_path / "extra.pt"
    torch.jit.save(torch.jit.script(WithExtra()), str(path))
    predictor = Predictor(path, CPU)
    assert not predictor.is_demo  # only the stand-in says it is one
    out = predictor.predict(np.zeros((2, 3, 224, 224), np.float32))
    assert out["vertex_colours"].shape == (2, 7)
    assert out["shape"].shape == (2, 300)  # shape_from_facenet is stored as `shape`, whatever else comes
    assert np.all(out["model_shape"] == 7.0) and np.all(out["model_segment"] == 3.0)  # carried, never colliding


def test_missing_output_is_refused(tmp_path):
    class NoExpr(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"shape_from_facenet": torch.zeros(x.shape[0], 300)}

    path = tmp_path / "noexpr.pt"
    torch.jit.save(torch.jit.script(NoExpr()), str(path))
    with pytest.raises(InputError, match="lacks 'expr'") as info:
        Predictor(path, CPU)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content, problem", [(None, "not found"), (b"", "empty"),
                                              (b"PK\x03\x04 not a zip at all", "not a TorchScript archive")])
def test_bad_weights_files(tmp_path, content, problem):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=problem) as info:
        Predictor(path, CPU)
    assert "\n" not in str(info.value)


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
