"""`facecnn embed`: every face of some photos as (file, box, vector), for use elsewhere."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.folders import expand_inputs
from facecnn.errors import FacecnnError
from facecnn.faces.pipeline import FacePipeline
from facecnn.faces.result import Face
from facecnn.fileio import atomic_write
from facecnn.progress import Reporter


@dataclass
class Embeddings:
    """One row per face, in file order (largest face first within a file)."""

    embedder: str
    files: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it has no vector

    def save(self, path: Path) -> None:
        """A .npz numpy loads without facecnn: files, boxes (x1, y1, x2, y2), vectors, embedder.
        Written whole or not at all: an existing file is replaced only once the new one is."""
        dim = self.vectors[0].shape[-1] if self.vectors else 0

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # np.savez would append .npz to other names
                np.savez(handle, files=np.asarray(self.files, dtype=str),
                         boxes=np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4),
                         vectors=np.asarray(self.vectors, dtype=np.float32).reshape(
                             len(self.vectors), dim),
                         embedder=np.asarray(self.embedder))

        atomic_write(path, write)

    def records(self) -> list[dict[str, Any]]:
        """What --json prints: one {"file", "box", "vector"} per face."""
        return [{"file": f, **Face(tuple(b), vector=v).to_dict(vector=True)}
                for f, b, v in zip(self.files, self.boxes, self.vectors)]


def check_destination(path: Path, overwrite: bool) -> None:
    """Fail before any work, not after it, when `path` cannot be (re)written."""
    if path.is_dir():
        raise FacecnnError(f"{path} is a folder: give a file name, e.g. {path / 'vectors.npz'}")
    if path.exists() and not overwrite:
        raise FacecnnError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent
    if not folder.is_dir():
        raise FacecnnError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise FacecnnError(f"cannot write {path}: folder {folder} is not writable")


def embed_paths(inputs: list[Path], pipeline: FacePipeline, *, largest_only: bool = False,
                reporter: Reporter | None = None) -> Embeddings:
    """Detect and embed the faces of images and folders of images (recursively)."""
    files = expand_inputs(inputs)
    if not files:
        raise FacecnnError("no images found in the given paths")
    result = Embeddings(pipeline.embedder.name)
    with (reporter or Reporter()).task("embedding", len(files)) as advance:
        for found in pipeline.run(files, pick="largest" if largest_only else None,
                                  advance=advance):
            if found.error:
                result.skipped[str(found.file)] = found.error
                continue
            for box, vector in zip(found.boxes, found.vectors):
                result.files.append(str(found.file))
                result.boxes.append([float(v) for v in box])
                result.vectors.append(vector)
    return result
