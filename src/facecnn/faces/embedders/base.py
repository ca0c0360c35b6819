"""What every embedder plug-in is: aligned crops of faces -> vectors whose Euclidean distances
mean identity, plus what the rest of facecnn needs to know about it (its crop, its default
threshold, which embedders give interchangeable vectors).

An embedder is built directly (`DlibEmbedder()`, `RunEmbedder(path)`) or by name
(`create_embedder`); it pickles as the arguments it was made with, so worker processes
rebuild it and `FacePipeline(detector, SomeEmbedder())` needs no factory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable

import numpy as np

from facecnn.data.crop_layout import is_chip
from facecnn.errors import FacecnnError
from facecnn.faces.crops import make_chips
from facecnn.faces.model_files import ModelFile
from facecnn.faces.result import Face
from facecnn.registry import Registry

FaceItem = tuple[np.ndarray, Face]  # (RGB image, a face in it)


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Embedder(ABC):
    """Base: `embed(items)` -> (N, dim) float32, batched; `flip` averages with the mirror.

    Each plug-in declares `default_threshold` (Euclidean), `family` (embedders of one family
    give interchangeable vectors, so one gallery serves them all), `unit_vectors` (and where
    not, `vector_length`: their typical length, to which a "mean_direction" gallery scales
    them, so distances keep the scale of the default threshold) and `models`; each instance
    has its `name` (what a gallery records), `dim` and `crop`.
    """

    name: str
    dim: int
    crop: dict[str, Any]
    default_threshold: ClassVar[float]
    family: ClassVar[str | None] = None  # None: only the same name gives the same vectors
    unit_vectors: ClassVar[bool] = True
    vector_length: ClassVar[float] = 1.0
    models: ClassVar[tuple[ModelFile, ...]] = ()
    # dlib's C++ network runs one face at a time and is safe in forked worker processes; the
    # others (PyTorch, onnxruntime) batch faces of many photos in the main process instead
    embeds_in_workers: ClassVar[bool] = False
    jitters: ClassVar[bool] = False  # averages jittered copies of a face (dlib's C++ can)
    jitter: int = 0  # how many, where it can

    def __new__(cls, *args: Any, **kwargs: Any) -> Embedder:
        self = super().__new__(cls)
        self.init_args = (args, kwargs)  # to rebuild it in worker processes
        return self

    def __init__(self, flip: bool = False, batch_size: int = 32) -> None:
        self.flip, self.batch_size = flip, batch_size

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its recipe (class, arguments, crop, views): a worker rebuilds it."""
        args, kwargs = self.init_args
        return _rebuild, (type(self), args, kwargs, self.crop, self.views)

    @property
    def needs_landmarks(self) -> bool:
        """Whether its chips are cut from the five ArcFace points (dlib's are not)."""
        return not is_chip(self.crop)

    @property
    def views(self) -> dict[str, Any]:
        """What each vector averages besides the face: its mirror image, jittered copies."""
        return {"flip": self.flip, "jitter": self.jitter}

    def match_gallery(self, crop: dict[str, Any], views: dict[str, Any] | None = None) -> None:
        """Cut chips as the faces of a gallery with this `crop` were cut, and average the
        same `views` (a gallery enrolled with --flip is searched with --flip)."""
        if views is not None:
            if views["jitter"] and not self.jitters:
                raise FacecnnError(f"the gallery's faces were enrolled with --jitter "
                                   f"{views['jitter']}, which {self.name} cannot do: use "
                                   f"--embedder dlib")
            self.flip, self.jitter = views["flip"], views["jitter"]
        self.match_crop(crop)

    def match_crop(self, crop: dict[str, Any]) -> None:
        """Plug-ins whose crop has choices adopt the gallery's `crop` here."""

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
                if self.unit_vectors:
                    vectors = normalize(vectors)
            out.append(vectors.astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed(self, items: Iterable[FaceItem]) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), np.float32)
        return self.vectors_of(self.chips(items))


def _rebuild(cls: type[Embedder], args: tuple, kwargs: dict, crop: dict[str, Any],
             views: dict[str, Any]) -> Embedder:
    embedder = cls(*args, **kwargs)
    embedder.crop, embedder.flip, embedder.jitter = crop, views["flip"], views["jitter"]
    return embedder


EMBEDDERS: Registry[type[Embedder]] = Registry("embedder")


def register(name: str, help: str):  # noqa: A002 (the registry's word)
    """Class decorator: register an Embedder subclass under `name` (`run` and `onnx` are
    named with a path: run:PATH, onnx:PATH)."""

    def wrap(cls: type[Embedder]) -> type[Embedder]:
        cls.name = name
        EMBEDDERS.add(name, cls, help)
        return cls

    return wrap
