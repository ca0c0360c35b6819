"""Read dlib's serialized networks without dlib, and cache their conversion for PyTorch.

dlib writes a network as nested layers: each `add_layer` first writes its version and its
subnetwork, so the file holds the loss layer (with its options), a run of version numbers
(one per layer, outer to inner), the input layer (mean colour, then its size or pyramid
padding), then each layer's details from the input outwards - name string, parameters,
three flags and three (empty) tensors. Integers are dlib's packed format (a length/sign
byte, then little-endian bytes), floats are a packed mantissa and exponent, tensors are raw
little-endian float32.

Only the layer kinds of face-recognition-models' face ResNet
(`dlib_face_recognition_resnet_model_v1.dat`) and MMOD face detector
(`mmod_human_face_detector.dat`) are understood; any other content is refused with the byte
offset where reading stopped.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.fileio import atomic_write

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SIZED_INPUT = "input_rgb_image_sized"
PYRAMID_INPUTS = ("input_rgb_image_pyramid", "input_rgb_image_pyramid2")
# dlib's (padding, outer padding) for pyramid files older than the version that stores them
DEFAULT_PYRAMID_PADDING = (10, 11)
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


@dataclass(frozen=True)
class MMODOptions:
    """What `loss_mmod_` needs at detection time: its sliding windows (width, height) in
    pyramid pixels and its non-max suppression (a box is dropped when its IoU with a kept
    box exceeds `nms_iou`, or either covers more than `nms_covered` of the other)."""

    windows: tuple[tuple[int, int], ...]
    nms_iou: float
    nms_covered: float


@dataclass
class DlibNet:
    """The whole file: input layer kind and mean (RGB, 0-255), the input size (a sized
    input) or the pyramid's (padding, outer padding) (a pyramid input), the layers
    input -> output, and the loss layer (with its options for MMOD)."""

    input_kind: str
    mean_rgb: tuple[float, float, float]
    layers: list[DlibLayer]
    loss: str
    input_size: tuple[int, int] | None = None
    pyramid_padding: tuple[int, int] | None = None
    mmod: MMODOptions | None = None


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

    def peek_string(self, texts: Iterable[str]) -> bool:
        start = self.pos
        try:
            return self.string() in texts
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


def _batch_norm(r: _Reader) -> DlibLayer:
    """A batch norm saved in training, folded into the affine layer dlib runs in its place:
    scale = gamma / sqrt(running variance + eps), shift = beta - scale * running mean."""
    params = r.tensor().ravel()
    r.alias()
    r.alias()
    for _ in range(2):  # the last batch's means and inverse deviations: training only
        r.tensor()
    running_mean, running_var = r.tensor().ravel(), r.tensor().ravel()
    r.integer(), r.integer()  # updates so far and the running-statistics window
    _multipliers(r)
    eps = np.float32(r.real())
    half = params.size // 2
    r.expect((running_mean.size, running_var.size), (half, half), "batch norm statistics size")
    scale = params[:half] / np.sqrt(running_var + eps)
    return DlibLayer("affine", (), {"gamma": scale, "beta": params[half:] - scale * running_mean})


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
    "bn_con2": _batch_norm,
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


def _metric_loss(r: _Reader) -> None:
    r.real(), r.real()  # margin and distance threshold used in training


def _mmod_loss(r: _Reader) -> MMODOptions:
    r.expect(r.integer(), 1, "mmod options version (only 1: one detector window)")
    window = (r.integer(), r.integer())
    for _ in range(3):  # loss per false alarm and per miss, truth-match IoU: training only
        r.real()
    nms_iou, nms_covered = r.real(), r.real()
    r.real(), r.real()  # the overlap that ignores truth boxes: training only
    return MMODOptions((window,), nms_iou, nms_covered)


_LOSSES: dict[str, Callable[[_Reader], MMODOptions | None]] = {
    "loss_metric_2": _metric_loss,
    "loss_mmod_": _mmod_loss,
}


def _input_layer(r: _Reader) -> dict[str, object]:
    kind = r.string()
    fields: dict[str, object] = {"input_kind": kind, "mean_rgb": (r.real(), r.real(), r.real())}
    if kind == SIZED_INPUT:
        fields["input_size"] = (r.integer(), r.integer())
    elif kind == PYRAMID_INPUTS[1]:
        fields["pyramid_padding"] = (r.integer(), r.integer())
    else:
        fields["pyramid_padding"] = DEFAULT_PYRAMID_PADDING
    return fields


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse the bytes of a dlib network file (see the module docstring)."""
    r = _Reader(data)
    r.expect(r.integer(), 1, "loss layer version")
    loss = r.string()
    if loss not in _LOSSES:
        raise DlibFormatError(f"unsupported dlib loss layer {loss!r} at byte {r.pos}")
    mmod = _LOSSES[loss](r)
    for _ in range(MAX_LAYERS):  # one version number per layer, outermost first
        r.integer()
        if r.peek_string((SIZED_INPUT, *PYRAMID_INPUTS)):
            break
    else:
        raise DlibFormatError("no input layer found")
    fields = _input_layer(r)
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
    return DlibNet(layers=layers, loss=loss, mmod=mmod, **fields)


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


def cache_path(source: Path, kind: str) -> Path:
    """Where the `kind` conversion (e.g. "resnet", "mmod") of the dlib model file `source` is
    cached: facecnn's cache directory (never beside the code), keyed by the file's name, size
    and mtime."""
    from facecnn.data.cache import default_cache_dir

    stamp = source_stamp(source)
    return default_cache_dir() / "dlib" / f"{source.stem}-{kind}-{stamp}.safetensors"


def cached_conversion(source: Path, kind: str, convert: Callable[[], dict[str, Any]],
                      framework: str = "torch") -> dict[str, Any]:
    """`convert()`'s tensors (PyTorch's, or numpy arrays with `framework="numpy"`) for the
    model file `source`, computed once and cached as safetensors, so later runs read no
    .dat. A damaged cache is rebuilt from the source; a read-only cache directory only costs
    converting again next time."""
    module = importlib.import_module(f"safetensors.{framework}")
    load_file, save_file = module.load_file, module.save_file

    cached = cache_path(source, kind)
    if cached.is_file():
        try:
            return load_file(str(cached))
        except Exception:  # a damaged cache is rebuilt from the source below
            cached.unlink(missing_ok=True)
    tensors = convert()
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda tmp: save_file(tensors, str(tmp)))
    return tensors
