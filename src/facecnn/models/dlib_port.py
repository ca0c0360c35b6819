"""Read dlib's serialized face recognition ResNet without dlib, and convert it for PyTorch.

dlib writes a network as nested layers: each `add_layer` first writes its version and its
subnetwork, so the file holds the loss layer, a run of version numbers (one per layer, outer
to inner), the input layer (mean colour, size), then each layer's details from the input
outwards - name string, parameters, three flags and three (empty) tensors. Integers are
dlib's packed format (a length/sign byte, then little-endian bytes), floats are a packed
mantissa and exponent, tensors are raw little-endian float32.

Only the layer kinds of `dlib_face_recognition_resnet_model_v1.dat` are understood; any other
content is refused with the byte offset where reading stopped.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facecnn.errors import FacecnnError

INPUT_LAYER = "input_rgb_image_sized"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install dlib-bin face-recognition-models"
MAX_LAYERS = 10_000


class DlibFormatError(FacecnnError):
    """The file is not a dlib network of the kinds this reader knows."""


@dataclass
class DlibLayer:
    """One computational layer: its dlib name, geometry integers and parameter arrays."""

    kind: str
    geometry: tuple[int, ...] = ()
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """The whole file: input mean (RGB, 0-255), input size and the layers input -> output."""

    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    layers: list[DlibLayer]
    loss: str


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"truncated at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        head = self.take(1)[0]
        size = head & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer at byte {self.pos - 1}")
        value = int.from_bytes(self.take(size), "little")
        return -value if head & 0x80 else value

    def string(self) -> str:
        size = self.integer()
        if size > 256:
            raise DlibFormatError(f"bad string at byte {self.pos}")
        return self.take(size).decode("latin-1")

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def flags(self, count: int) -> None:
        for _ in range(count):
            if self.take(1) not in (b"0", b"1"):
                raise DlibFormatError(f"bad flag at byte {self.pos - 1}")

    def tensor(self) -> np.ndarray:
        self.expect(self.integer(), 2, "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), "<f4").reshape(shape)

    def alias(self) -> tuple[int, ...]:
        self.expect(self.integer(), 1, "alias version")
        return tuple(self.integer() for _ in range(4))

    def expect(self, got: object, want: object, what: str) -> None:
        if got != want:
            raise DlibFormatError(f"unexpected {what} {got!r} at byte {self.pos}")

    def peek_string(self, text: str) -> bool:
        start = self.pos
        try:
            return self.string() == text
        except DlibFormatError:
            return False
        finally:
            self.pos = start


def _multipliers(r: _Reader) -> None:
    """Learning-rate and weight-decay multipliers: training settings, not needed here."""
    for _ in range(4):
        r.real()


def _con(r: _Reader) -> DlibLayer:
    params = r.tensor().ravel()
    filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(7))
    shape = r.alias()
    r.alias()
    _multipliers(r)
    weight_size = int(np.prod(shape))
    r.expect(params.size, weight_size + filters, "convolution parameter count")
    return DlibLayer("con", (nr, nc, stride_y, stride_x, pad_y, pad_x),
                     {"weight": params[:weight_size].reshape(shape),
                      "bias": params[weight_size:]})


def _affine(r: _Reader) -> DlibLayer:
    params = r.tensor().ravel()
    r.alias()
    r.alias()
    r.expect(r.integer(), 0, "affine mode (only per-channel)")
    half = params.size // 2
    return DlibLayer("affine", (), {"gamma": params[:half], "beta": params[half:]})


def _pool(kind: str) -> Callable[[_Reader], DlibLayer]:
    def read(r: _Reader) -> DlibLayer:
        return DlibLayer(kind, tuple(r.integer() for _ in range(6)))
    return read


def _fc(r: _Reader) -> DlibLayer:
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor()
    r.alias()
    r.alias()
    r.expect(r.integer(), 1, "fc bias mode (only no-bias)")
    _multipliers(r)
    r.expect(params.size, outputs * inputs, "fc parameter count")
    return DlibLayer("fc", (inputs, outputs), {"weight": params.reshape(inputs, outputs).T})


_DETAILS = {
    "con_4": _con,
    "affine_": _affine,
    "relu_": lambda r: DlibLayer("relu"),
    "add_prev_": lambda r: DlibLayer("add_prev"),
    "max_pool_2": _pool("max_pool"),
    "avg_pool_2": _pool("avg_pool"),
    "fc_2": _fc,
}


def _layer(r: _Reader) -> DlibLayer:
    name = r.string()
    if name not in _DETAILS:
        raise DlibFormatError(f"unsupported dlib layer {name!r} at byte {r.pos}")
    return _DETAILS[name](r)


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse the bytes of a dlib metric-learning network file (see the module docstring)."""
    r = _Reader(data)
    r.expect(r.integer(), 1, "loss layer version")
    loss = r.string()
    if not loss.startswith("loss_metric_"):
        raise DlibFormatError(f"not a dlib face embedding network (loss {loss!r})")
    r.real(), r.real()  # margin and distance threshold used in training
    for _ in range(MAX_LAYERS):  # one version number per layer, outermost first
        r.integer()
        if r.peek_string(INPUT_LAYER):
            break
    else:
        raise DlibFormatError("no input layer found")
    r.string()
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    layers = [_layer(r)]
    r.flags(3)
    for _ in range(3):
        r.tensor()
    r.integer()  # sample expansion factor
    while r.pos < len(data):
        layers.append(_layer(r))
        r.flags(3)
        for _ in range(3):
            r.tensor()
    return DlibNet(mean, size, layers, loss)


def read_dlib_net(path: Path) -> DlibNet:
    """`parse_dlib_net` of a file, with the file's name in every error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FacecnnError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return parse_dlib_net(data)
    except DlibFormatError as exc:
        raise DlibFormatError(f"{path} is not a readable dlib network: {exc}") from None


def model_file(name: str = MODEL_FILE) -> Path:
    """Path of one of face-recognition-models' .dat files, found without importing that
    package (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FacecnnError(f"face-recognition-models is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FacecnnError(f"{name} is missing from face-recognition-models at {path.parent}")
    return path


def source_stamp(path: Path) -> str:
    """Size and modification time: enough to notice a replaced model file."""
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"
