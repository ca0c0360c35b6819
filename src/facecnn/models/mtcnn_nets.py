"""MTCNN's three networks: their layout, their weights (the MIT-licensed `mtcnn` package's,
read without its TensorFlow code) and how they run: onnxruntime on the CPU, with no PyTorch
imported, or PyTorch on a CUDA GPU (models/mtcnn_torch.py).

Each network takes raw pixels (N, 3, H, W) float32, 0-255, black outside the image, and
normalises them itself ((x - 127.5) / 128). Outputs: box offsets, (O-Net: ten landmark
coordinates, five x then five y,) and the face probability.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import multiprocessing
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.fileio import write_bytes_atomic
from facecnn.models.dlib_port import cache_path, cached_conversion

INSTALL_HINT = "pip install mtcnn"
REINSTALL_HINT = "pip install --force-reinstall mtcnn"
MEAN, SCALE = 127.5, 128.0
OPSET = 17
GRAPH_VERSION = 1  # bump when onnx_model() changes: cached models are rebuilt
CHANNEL_BLOCK = 16  # onnxruntime's NCHWc block on AVX-512 (a multiple of AVX2's 8)


@dataclass(frozen=True)
class NetSpec:
    """One network: (filters, kernel, max-pool kernel or 0) per convolution, each followed
    by a per-channel PReLU and the pool (stride 2, ceil mode); the width of the PReLU'd dense
    layer (0 for fully convolutional P-Net) and its crop side; the heads' widths, face
    score last."""

    convs: tuple[tuple[int, int, int], ...]
    dense: int
    crop: int
    heads: tuple[int, ...]

    def flat(self) -> int:
        """Values entering the dense layer: the last map's channels x its side squared."""
        side = self.crop
        for _, kernel, pool in self.convs:
            side = side - kernel + 1
            if pool:
                side = math.ceil((side - pool) / 2) + 1
        return self.convs[-1][0] * side * side

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names (PyTorch's, for models/mtcnn_torch.py) and shapes, in the order
        of the Keras weight list."""
        shapes: dict[str, tuple[int, ...]] = {}
        channels, layer = 3, 0
        for filters, kernel, pool in self.convs:
            shapes[f"features.{layer}.weight"] = (filters, channels, kernel, kernel)
            shapes[f"features.{layer}.bias"] = (filters,)
            shapes[f"features.{layer + 1}.weight"] = (filters,)  # PReLU
            channels, layer = filters, layer + (3 if pool else 2)
        if self.dense:
            shapes.update({"dense.0.weight": (self.dense, self.flat()),
                           "dense.0.bias": (self.dense,), "dense.1.weight": (self.dense,)})
        for i, width in enumerate(self.heads):
            shapes[f"heads.{i}.weight"] = ((width, self.dense) if self.dense
                                           else (width, channels, 1, 1))
            shapes[f"heads.{i}.bias"] = (width,)
        return shapes


CELL = 12  # P-Net's window
SPECS = {
    "pnet": NetSpec(((10, 3, 2), (16, 3, 0), (32, 3, 0)), 0, CELL, (4, 2)),
    "rnet": NetSpec(((28, 3, 3), (48, 3, 3), (64, 2, 0)), 128, 24, (4, 2)),
    "onet": NetSpec(((32, 3, 3), (64, 3, 3), (64, 3, 2), (128, 2, 0)), 256, 48, (4, 10, 2)),
}


def weights_dir() -> Path:
    """The `mtcnn` package's weight folder, found without importing it (it needs
    TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FacecnnError(f"the mtcnn package (MTCNN's weights) is not installed: "
                           f"{INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


def _damaged(path: Path, why: str) -> FacecnnError:
    return FacecnnError(f"{path} is not usable MTCNN weights ({why}): {REINSTALL_HINT}")


def _in_our_layout(array: object, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """A Keras array in PyTorch's layout: conv (kh, kw, in, out) -> (out, in, kh, kw),
    dense (in, out) -> (out, in), PReLU (1, 1, C) -> (C,)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise _damaged(path, f"a {type(array).__name__} where float32 weights belong")
    if array.ndim == 4:
        array = array.transpose(3, 2, 0, 1)
    elif array.ndim == 2:
        array = array.T
    if array.squeeze().shape != tuple(d for d in shape if d != 1):
        raise _damaged(path, f"weights of shape {array.shape} where {shape} belong")
    return np.ascontiguousarray(array).reshape(shape)


def _converted(name: str, path: Path) -> dict[str, np.ndarray]:
    import joblib

    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib/lz4/pickle each fail their own way on a bad file
        raise _damaged(path, f"{type(exc).__name__} reading it") from None
    shapes = SPECS[name].shapes()
    if not isinstance(arrays, list) or len(arrays) != len(shapes):
        raise _damaged(path, f"not the {len(shapes)} arrays of {name}")
    return {key: _in_our_layout(array, shape, path)
            for (key, shape), array in zip(shapes.items(), arrays)}


def load_weights(name: str, folder: Path | None = None) -> dict[str, np.ndarray]:
    """The weights of "pnet", "rnet" or "onet" from `folder` (default: the mtcnn package's),
    converted once and cached as safetensors in facecnn's cache directory."""
    path = Path(folder or weights_dir()) / f"{name}.lz4"
    if not path.is_file():
        raise FacecnnError(f"MTCNN weights {path} are missing: {REINSTALL_HINT}")
    return cached_conversion(path, "mtcnn", lambda: _converted(name, path), framework="numpy")


def onnx_model(spec: NetSpec, weights: dict[str, np.ndarray]) -> bytes:
    """The network as an ONNX model, built from its weights (no PyTorch, no export)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, constants = [], [numpy_helper.from_array(np.float32(MEAN), "mean"),
                            numpy_helper.from_array(np.float32(1 / SCALE), "scale")]
    for key, value in _padded(spec, weights).items():
        if key.endswith("weight") and value.ndim == 1:  # PReLU slopes: per channel
            value = value.reshape(-1, 1, 1) if not key.startswith("dense") else value
        constants.append(numpy_helper.from_array(value, key))
    nodes += [helper.make_node("Sub", ["x", "mean"], ["centred"]),
              helper.make_node("Mul", ["centred", "scale"], ["h0"])]
    x, layer = "h0", 0
    for k, (_, _, pool) in enumerate(spec.convs):
        nodes += [helper.make_node("Conv", [x, f"features.{layer}.weight",
                                            f"features.{layer}.bias"], [f"conv{k}"]),
                  helper.make_node("PRelu", [f"conv{k}", f"features.{layer + 1}.weight"],
                                   [f"act{k}"])]
        x = f"act{k}"
        if pool:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{k}"], kernel_shape=[pool] * 2,
                                          strides=[2, 2], ceil_mode=1))
            x = f"pool{k}"
        layer += 3 if pool else 2
    if spec.dense:  # Keras flattened (N, W, H, C)
        nodes += [helper.make_node("Transpose", [x], ["nwhc"], perm=[0, 3, 2, 1]),
                  helper.make_node("Flatten", ["nwhc"], ["flat"], axis=1),
                  helper.make_node("Gemm", ["flat", "dense.0.weight", "dense.0.bias"],
                                   ["dense"], transB=1),
                  helper.make_node("PRelu", ["dense", "dense.1.weight"], ["features"])]
        x = "features"
    outputs = []
    for i in range(len(spec.heads)):
        head = f"head{i}"
        args = [x, f"heads.{i}.weight", f"heads.{i}.bias"]
        nodes.append(helper.make_node("Gemm", args, [head], transB=1) if spec.dense
                     else helper.make_node("Conv", args, [head]))
        outputs.append(head)
    nodes += [helper.make_node("Softmax", [outputs[-1]], ["softmax"], axis=1),
              helper.make_node("Gather", ["softmax", "one"], ["face"], axis=1)]
    constants.append(numpy_helper.from_array(np.array(1, np.int64), "one"))
    names = [*outputs[:-1], "face"]
    graph = helper.make_graph(
        nodes, "mtcnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names],
        constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what onnxruntime >= 1.16 reads
    return model.SerializeToString()


def _padded(spec: NetSpec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same network with every convolution's channels padded with zeros to a multiple
    of CHANNEL_BLOCK: onnxruntime runs such convolutions in its blocked (NCHWc) layout,
    about twice as fast on a CPU, and the zero channels change no output."""
    padded = dict(weights)
    channels, layer = 3, 0
    for filters, _, pool in spec.convs:
        wide = -(-filters // CHANNEL_BLOCK) * CHANNEL_BLOCK
        conv = weights[f"features.{layer}.weight"]
        padded[f"features.{layer}.weight"] = np.pad(
            conv, ((0, wide - filters), (0, channels - conv.shape[1]), (0, 0), (0, 0)))
        for key in (f"features.{layer}.bias", f"features.{layer + 1}.weight"):
            padded[key] = np.pad(weights[key], (0, wide - filters))
        channels, layer = wide, layer + (3 if pool else 2)
    last = spec.convs[-1][0]
    if spec.dense:  # its input, flattened (W, H, C), gains the zero channels
        dense = weights["dense.0.weight"]
        padded["dense.0.weight"] = np.pad(
            dense.reshape(spec.dense, -1, last), ((0, 0), (0, 0), (0, channels - last))
        ).reshape(spec.dense, -1)
    else:
        for i in range(len(spec.heads)):
            head = weights[f"heads.{i}.weight"]
            padded[f"heads.{i}.weight"] = np.pad(
                head, ((0, 0), (0, channels - last), (0, 0), (0, 0)))
    return padded


class Net(Protocol):
    """A network ready to run: pixels (N, 3, H, W) -> its outputs as numpy arrays."""

    crop: int

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]: ...


class OnnxNet:
    """A network on onnxruntime's CPU provider. Its session is made on first use, in the
    process that uses it (a forked worker makes its own), with one thread in a worker
    process (the pool already keeps every core busy) and, elsewhere, onnxruntime's default
    of one per core; idle threads sleep rather than spin."""

    def __init__(self, name: str, model: bytes) -> None:
        self.model, self.crop = model, SPECS[name].crop
        self._session = None
        self._owner = -1  # the process that made the session
        self._lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        return self.session().run(None, {"x": np.ascontiguousarray(pixels, np.float32)})

    def session(self):  # onnxruntime.InferenceSession (not imported for type hints)
        with self._lock:
            if self._session is None or self._owner != os.getpid():
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                if multiprocessing.parent_process() is not None:
                    options.intra_op_num_threads = 1
                try:
                    self._session = ort.InferenceSession(self.model, options,
                                                         providers=["CPUExecutionProvider"])
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise FacecnnError(f"onnxruntime cannot run MTCNN ({type(exc).__name__}); "
                                       f"delete facecnn's cache folder to rebuild it"
                                       ) from None
                self._owner = os.getpid()
            return self._session


def onnx_file(name: str, folder: Path | None = None) -> bytes:
    """The ONNX model of "pnet", "rnet" or "onet", built from the weights in `folder` once
    and cached beside their conversion (later runs import neither `onnx`, 0.7 s, nor the
    weights)."""
    path = Path(folder or weights_dir()) / f"{name}.lz4"
    if not path.is_file():
        raise FacecnnError(f"MTCNN weights {path} are missing: {REINSTALL_HINT}")
    cached = cache_path(path, f"mtcnn-onnx{GRAPH_VERSION}").with_suffix(".onnx")
    with contextlib.suppress(OSError):
        return cached.read_bytes()
    model = onnx_model(SPECS[name], load_weights(name, folder))
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cached, model)
    return model


def uses_gpu(device: str) -> bool:
    """Whether MTCNN runs on a CUDA GPU (PyTorch) rather than the CPU (onnxruntime): "cuda"
    does; "auto" does where an NVIDIA driver is loaded and PyTorch sees a GPU (PyTorch is
    imported only on such a machine)."""
    if device == "cpu":
        return False
    if device == "auto" and not Path("/proc/driver/nvidia/version").exists():
        return False
    from facecnn.runtime import select_device

    return select_device(device).type == "cuda"
