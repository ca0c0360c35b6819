"""Embedders: a face (image + landmarks) -> a vector whose distances mean identity.

By name: `dlib` (dlib's ResNet, 128-D, shipped in face-recognition-models), `dlib_torch` (the
same network and weights ported to PyTorch: batched, on any device, same vectors), `run:PATH` (any
facecnn training run: penultimate features, L2-normalised) and `onnx:PATH` (any ArcFace-style
ONNX model taking aligned 112 x 112 RGB faces, run with onnxruntime). Each aligns faces its
own way and has a default distance threshold (Euclidean):

| embedder | crop | default threshold |
|---|---|---|
| dlib, dlib_torch | dlib's 150 px chip, padding 0.25 | 0.6 (dlib's own recommendation) |
| run:PATH | the run's input size, ArcFace template, margin 0.2 | 1.0 (unit vectors) |
| onnx:PATH | 112 px ArcFace template, no margin | 1.2 (unit vectors; cosine 0.28) |

`facecnn enroll` calibrates a better threshold from the enrolled people and stores it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models
from facecnn.faces.align import align_face
from facecnn.faces.detect import Face, face_points

DEFAULT_THRESHOLDS = {"dlib": 0.6, "run": 1.0, "onnx": 1.2}
# channels-last convolutions are ~1.3x faster on CPU for whole batches, ~10x slower for one face
CHANNELS_LAST_MIN_BATCH = 8
PREPARE_MARGIN = 0.2  # the margin `facecnn prepare` crops with, and runs trained on them expect

FaceItem = tuple[np.ndarray, Face]  # (RGB image, a face in it)


def make_chips(crop: dict[str, Any], items: list[FaceItem]) -> np.ndarray:
    """Aligned uint8 crops (N, H, W, 3): dlib's own chip (its 68-landmark alignment, as its
    network was trained on) when `crop` has a padding, else the ArcFace template with a
    margin. A plain function of a dict, so worker processes make chips without any network."""
    if "padding" not in crop:
        return np.stack([align_face(image, face.landmarks, crop["size"], crop["margin"])
                         for image, face in items])
    dlib = dlib_models.import_dlib()
    chips = []
    for image, face in items:
        rect = dlib.rectangle(*(int(round(v)) for v in face.box))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y)))
                                                  for x, y in face_points(image, face)])
        chips.append(dlib.get_face_chip(image, shape, size=crop["size"],
                                        padding=crop["padding"]))
    return np.stack(chips)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Embedder(ABC):
    """Base: `embed(items)` -> (N, dim) float32, batched; `flip` averages with the mirror."""

    name: str
    kind: str
    dim: int
    crop: dict[str, Any]
    options: dict[str, Any]
    # dlib's C++ network runs one face at a time and is safe in forked worker processes; the
    # others (PyTorch, onnxruntime) batch faces of many photos in the main process instead
    embeds_in_workers = False

    def __init__(self, flip: bool = False, batch_size: int = 32) -> None:
        self.flip, self.batch_size = flip, batch_size

    @property
    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.kind]

    def chips(self, items: list[FaceItem]) -> np.ndarray:
        """Aligned uint8 crops (N, H, W, 3) in the layout this model was trained on."""
        return make_chips(self.crop, items)

    @abstractmethod
    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, dim) vectors of aligned crops: each embedder's own network."""

    def vectors_of(self, chips: np.ndarray) -> np.ndarray:
        """(N, dim) float32 vectors of aligned crops, `batch_size` at a time, flip averaged."""
        out = []
        for start in range(0, len(chips), self.batch_size):
            batch = chips[start:start + self.batch_size]
            vectors = self.embed_chips(batch)
            if self.flip:
                vectors = (vectors + self.embed_chips(batch[:, :, ::-1].copy())) / 2
                if self.kind != "dlib":
                    vectors = _normalize(vectors)
            out.append(vectors.astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed(self, items: Iterable[FaceItem]) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), np.float32)
        return self.vectors_of(self.chips(items))


class DlibEmbedder(Embedder):
    name = kind = "dlib"
    embeds_in_workers = True
    dim = 128
    crop = {"size": 150, "padding": 0.25}

    def __init__(self, flip: bool = False, batch_size: int = 32, jitter: int = 0) -> None:
        super().__init__(flip, batch_size)
        self.jitter = jitter
        self.model = dlib_models.face_encoder()

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        vectors = self.model.compute_face_descriptor(list(chips), self.jitter)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)


class DlibTorchEmbedder(DlibEmbedder):
    """dlib's network run by PyTorch (facecnn.models.dlib_resnet): whole batches at once, on
    CUDA when present, in float32 so its vectors equal dlib's to ~1e-6."""

    name = "dlib_torch"
    embeds_in_workers = False

    def __init__(self, flip: bool = False, batch_size: int = 32, device: str = "auto") -> None:
        Embedder.__init__(self, flip, batch_size)
        from facecnn.models.dlib_resnet import pretrained_dlib_resnet
        from facecnn.train.runtime import flush_denormals, select_device

        dlib_models.import_dlib()  # for the chips
        flush_denormals()
        self.device = select_device(device)
        model, self.mean = pretrained_dlib_resnet()
        self.model = model.to(self.device)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        import torch

        from facecnn.models.dlib_resnet import to_input

        x = to_input(torch.from_numpy(np.ascontiguousarray(chips)).to(self.device)
                     .permute(0, 3, 1, 2), self.mean)
        if len(x) >= CHANNELS_LAST_MIN_BATCH:
            x = x.contiguous(memory_format=torch.channels_last)
        # TF32 convolutions would cost the equality with dlib's vectors on recent GPUs
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True,
                                                                 allow_tf32=False):
            vectors = self.model(x)
        return vectors.float().cpu().numpy()


class RunEmbedder(Embedder):
    """A facecnn training run used as a face embedder (its penultimate layer)."""

    kind = "run"

    def __init__(self, path: Path, flip: bool = False, batch_size: int = 32,
                 device: str = "auto") -> None:
        super().__init__(flip, batch_size)
        from facecnn.inference import Predictor

        self.predictor = Predictor.load(path, device)
        meta = self.predictor.meta
        self.name = f"run:{Path(path).resolve()}"
        self.dim = self.predictor.model.classifier.in_features
        self.crop = {"size": meta["img_size"], "margin": PREPARE_MARGIN}
        self.gray = meta["in_chans"] == 1

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        import torch

        if self.gray:
            chips = np.round(chips @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
        rt = self.predictor.rt
        with torch.inference_mode(), rt.autocast():
            x = rt.from_uint8(torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2))
            features = self.predictor.model.features(x).float()
        return _normalize(features.cpu().numpy())


class OnnxEmbedder(Embedder):
    """Any ArcFace-style ONNX model: aligned RGB 112 x 112, (x - 127.5) / 127.5, NCHW."""

    kind = "onnx"

    def __init__(self, path: Path, flip: bool = False, batch_size: int = 32) -> None:
        super().__init__(flip, batch_size)
        try:
            import onnxruntime as ort
        except ImportError:
            raise FacecnnError("onnx embedders need onnxruntime: pip install onnxruntime") \
                from None
        if not Path(path).is_file():
            raise FacecnnError(f"ONNX model not found: {path}")
        try:
            self.session = ort.InferenceSession(str(path), providers=ort.get_available_providers())
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FacecnnError(f"cannot load ONNX model {path}: {type(exc).__name__}") from None
        self.input = self.session.get_inputs()[0]
        size = self.input.shape[-1]
        self.crop = {"size": size if isinstance(size, int) else 112, "margin": 0.0}
        self.fixed_batch = self.input.shape[0] if isinstance(self.input.shape[0], int) else None
        self.name = f"onnx:{Path(path).resolve()}"
        probe = np.zeros((1, 3, self.crop["size"], self.crop["size"]), np.float32)
        self.dim = int(self.session.run(None, {self.input.name: probe})[0].shape[-1])

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
        step = self.fixed_batch or len(x)
        outputs = [self.session.run(None, {self.input.name: x[i:i + step]})[0]
                   for i in range(0, len(x), step)]
        return _normalize(np.concatenate(outputs).reshape(len(x), -1))


def create_embedder(name: str, *, flip: bool = False, batch_size: int = 32,
                    device: str = "auto", jitter: int = 0) -> Embedder:
    """`dlib`, `run:PATH` (or a run folder's path) or `onnx:PATH` (or a path ending .onnx).
    `jitter` (dlib only) averages that many randomly jittered copies of each face."""
    if name == "dlib":
        embedder: Embedder = DlibEmbedder(flip, batch_size, jitter)
    elif name == "dlib_torch":
        if jitter:
            raise FacecnnError("--jitter is dlib's own; use --embedder dlib for it")
        embedder = DlibTorchEmbedder(flip, batch_size, device)
    elif name.startswith("onnx:") or name.endswith(".onnx"):
        embedder = OnnxEmbedder(Path(name.removeprefix("onnx:")), flip, batch_size)
    elif name.startswith("run:") or Path(name).is_dir():
        embedder = RunEmbedder(Path(name.removeprefix("run:")), flip, batch_size, device)
    else:
        raise FacecnnError(f"unknown embedder {name!r}; use dlib, dlib_torch, run:PATH or "
                           "onnx:PATH")
    embedder.options = {"flip": flip, "batch_size": batch_size, "device": device,
                        "jitter": jitter}  # to rebuild it in worker processes
    return embedder


def embed_faces(items: Iterable[FaceItem], embedder: str = "dlib") -> np.ndarray:
    """The flat API: vectors of (image, face) pairs with the named embedder."""
    return create_embedder(embedder).embed(items)
