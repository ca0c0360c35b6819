"""Face embedders as plug-ins: each module registers its `Embedder`s by name, so a new
embedder is one new file here (imported below). Heavy libraries are imported when an embedder
is built, so listing them stays instant.

| embedder | crop | default threshold |
|---|---|---|
| dlib, dlib_torch | dlib's 150 px chip, padding 0.25, from dlib's 5 points | 0.6 (dlib's) |
| run:PATH | its training crops' layout at its input size (faces/crops.py) | 1.0 (unit vectors) |
| onnx:PATH | 112 px ArcFace template, no margin | 1.2 (unit vectors; cosine 0.28) |

`facecnn enroll` calibrates a better threshold from the enrolled people and stores it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.crops import make_chips
from facecnn.faces.embedders.base import EMBEDDERS, Embedder, FaceItem

# isort: off
# imported for registering themselves, in the order `facecnn embedders` lists them
from facecnn.faces.embedders import dlib  # noqa: F401, E402
from facecnn.faces.embedders import dlib_torch  # noqa: F401, E402
from facecnn.faces.embedders import run  # noqa: F401, E402
from facecnn.faces.embedders import onnx  # noqa: F401, E402
# isort: on

__all__ = ["DEFAULT_EMBEDDER", "EMBEDDERS", "Embedder", "FaceItem", "create_embedder",
           "embed_faces", "from_config", "make_chips", "same_vectors"]
DEFAULT_EMBEDDER = "dlib"
WITH_PATH = ("run", "onnx")  # embedders named with a file: run:PATH, onnx:PATH
UNSET = (None, False, 0, "auto")  # option values that ask for nothing an embedder lacks
# options for the embedders that have them, meaningless to the rest: dlib's C++ has no device,
# and the ArcFace-template embedders take their points from the detector's landmark step
HINTS = ("device", "landmarks")


def spelling(kind: str) -> str:
    """How a user names the embedder: `dlib`, or `run:PATH` for one named with a file."""
    return f"{kind}:PATH" if kind in WITH_PATH else kind


def _split(name: str) -> tuple[str, Path | None]:
    """(registered name, path or None) of `dlib`, `run:PATH`, `onnx:PATH`, a path ending .onnx
    or a run folder's path."""
    kind, _, rest = name.partition(":")
    if kind in WITH_PATH and rest:
        return kind, Path(rest)
    if name.endswith(".onnx"):
        return "onnx", Path(name)
    if name not in EMBEDDERS and Path(name).is_dir():
        return "run", Path(name)
    return name, None


def create_embedder(name: str, **options: Any) -> Embedder:
    """The embedder `name` names, built with those of `options` (flip, batch_size, device,
    jitter, landmarks) it takes; one it lacks that would change its vectors (jitter) is a
    one-line error."""
    kind, path = _split(name)
    cls = EMBEDDERS.get(kind)
    if path is None and kind in WITH_PATH:
        raise FacecnnError(f"embedder {kind} is named with a path: {kind}:PATH")
    accepted = inspect.signature(cls).parameters
    for key, value in options.items():
        if key not in accepted and key not in HINTS and value not in UNSET:
            raise FacecnnError(f"embedder {kind} has no {key} option (given {value!r})")
    kwargs = {key: value for key, value in options.items() if key in accepted}
    return cls(path, **kwargs) if path is not None else cls(**kwargs)


def from_config(config: PipelineConfig, name: str | None = None) -> Embedder:
    """The embedder `name` names (default: the config's own), with the config's flip, jitter,
    batch size and device; dlib's chips come from the landmark model its `landmarks` names."""
    from facecnn.faces.landmarks import chip_shape

    chosen = name or config.embedder
    if chosen is None:
        raise FacecnnError("no embedder named: give one, or set PipelineConfig.embedder")
    return create_embedder(chosen, landmarks=chip_shape(config.landmarks), flip=config.flip,
                           jitter=config.jitter, batch_size=config.batch_size,
                           device=config.device)


def same_vectors(a: str, b: str) -> bool:
    """True when the embedders named `a` and `b` give interchangeable vectors (one family)."""
    return _family(a) == _family(b)


def vector_length(name: str) -> float:
    """The typical length of the vectors of the embedder named `name` (1 where unknown: a
    run's or an ONNX model's vectors are unit length)."""
    cls = _registered(name)
    return cls.vector_length if cls is not None else 1.0


def default_threshold(name: str) -> float:
    """The threshold the embedder named `name` (a gallery's, say) is used at uncalibrated,
    without loading its model."""
    return EMBEDDERS.get(_split(name)[0]).default_threshold


def family(name: str) -> str | None:
    """The family whose vectors the embedder named `name` gives (None: its own only), which
    names its cohort of strangers (faces/cohort.py)."""
    cls = _registered(name)
    return cls.family if cls is not None else None


def _family(name: str) -> str:
    return family(name) or name


def _registered(name: str) -> type[Embedder] | None:
    """The class of a registered embedder named without a file (None for run:, onnx:)."""
    kind, path = _split(name)
    return None if path is not None or kind not in EMBEDDERS else EMBEDDERS.get(kind)


def embed_faces(items: Iterable[FaceItem], embedder: str = DEFAULT_EMBEDDER) -> np.ndarray:
    """The flat API: vectors of (image, face) pairs with the named embedder."""
    return create_embedder(embedder).embed(items)
