"""`facecnn search FACE --in PHOTOS`: where else a face appears, nearest first, from the
library's vector cache (photos not cached yet are embedded and added to it first); and
`--gallery DB`: the nearest enrolled faces, from the gallery's FAISS index (faces/index.py).

The cache is a cluster output folder's (`--cache people/`) or, by default, one per library
in facecnn's cache folder (`$FACECNN_CACHE_DIR`, else ~/.cache/facecnn), so a second search
of the same photos embeds nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecnn.cluster.cache import LibraryCache
from facecnn.cluster.graph import knn
from facecnn.cluster.library import embed_library, library_photos
from facecnn.cluster.output import CACHE
from facecnn.data.cache import default_cache_dir
from facecnn.errors import FacecnnError
from facecnn.faces.pipeline import NO_FACE, FacePipeline
from facecnn.faces.result import json_box, json_number
from facecnn.progress import Reporter

if TYPE_CHECKING:
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.index import GalleryIndex


@dataclass(frozen=True)
class Hit:
    file: str
    box: tuple[float, float, float, float]
    distance: float

    def as_dict(self) -> dict:
        return {"file": self.file, "box": json_box(self.box),
                "distance": json_number(self.distance)}


@dataclass(frozen=True)
class EnrolledHit:
    """An enrolled face near the query: whose, the photo it was enrolled from, how far."""

    person: str
    source: str | None
    distance: float

    def as_dict(self) -> dict:
        return {"person": self.person, "source": self.source,
                "distance": json_number(self.distance)}


def cache_path(inputs: list[Path], pipeline: FacePipeline, cache: Path | None) -> Path:
    """The cache to search: the one given (a cluster output folder, or a file), else this
    library's and recipe's own in facecnn's cache folder."""
    if cache is not None:
        return cache / CACHE if cache.is_dir() else cache
    ident = repr((sorted(str(p.resolve()) for p in inputs), sorted(pipeline.recipe().items())))
    return default_cache_dir() / "faces" / f"{hashlib.sha1(ident.encode()).hexdigest()[:16]}.npz"


def query_vector(face: Path, pipeline: FacePipeline) -> np.ndarray:
    """The vector of the largest face in the photo `face`."""
    if not face.is_file():
        raise FacecnnError(f"no such photo: {face}")
    found = next(pipeline.run([face], pick="largest"))
    if found.error:
        raise FacecnnError(f"{face}: {found.error}" if found.error == NO_FACE
                           else f"cannot read {face}: {found.error}")
    return found.vectors[0]


def search_faces(face: Path, inputs: list[Path], pipeline: FacePipeline, *, top: int = 20,
                 cache: Path | None = None, reporter: Reporter | None = None) -> list[Hit]:
    """The `top` faces of the library nearest to the largest face of `face`, nearest first
    (other photos only: the query photo itself, if in the library, is left out)."""
    path = cache_path(inputs, pipeline, cache)
    photos, _ = library_photos(inputs, skip=path.parent if cache is not None and cache.is_dir()
                            else None)
    query = query_vector(face, pipeline)
    store = LibraryCache.load(path, pipeline.recipe())
    if embed_library(photos, pipeline, store, reporter) or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        store.save(path)
    own = str(face.resolve())
    others = np.array([f != own for f in store.files], bool)
    if not others.any():
        raise FacecnnError(f"no face found in the {len(photos)} photos searched")
    rows = np.flatnonzero(others)
    distances, indices = knn(store.vectors[rows], min(top, len(rows)), query[None])
    return [Hit(store.files[rows[j]], tuple(float(v) for v in store.boxes[rows[j]]), float(d))
            for d, j in zip(distances[0], indices[0]) if j >= 0]


def nearest_enrolled(query: np.ndarray, gallery: Gallery, index: GalleryIndex,
                     top: int = 20) -> list[EnrolledHit]:
    """The `top` enrolled faces nearest to the vector `query`, nearest first, from `index`
    (a live index of `gallery`: brought up to date first)."""
    index.sync()
    if len(index) == 0:
        raise FacecnnError(f"gallery {gallery.location} is empty: nobody to search")
    distances, ids = index.nearest(query[None], top)
    faces = gallery.faces(ids[0][ids[0] >= 0].tolist())
    return [EnrolledHit(*faces[int(i)], float(d)) for d, i in zip(distances[0], ids[0])
            if int(i) in faces]  # a face removed since the sync is left out


def search_gallery(face: Path, gallery: Gallery, pipeline: FacePipeline,
                   top: int = 20) -> list[EnrolledHit]:
    """`facecnn search FACE --gallery DB`: the enrolled faces nearest to the largest face of
    the photo `face` (the pipeline's embedder must be the gallery's)."""
    from facecnn.faces.index import GalleryIndex

    gallery.check_embedder(pipeline.embedder)
    return nearest_enrolled(query_vector(face, pipeline), gallery,
                            GalleryIndex.for_gallery(gallery, must_save=False), top)
