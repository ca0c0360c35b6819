"""`facecnn cluster PHOTOS --out people/`: every face found and embedded (the cache skips
photos seen before), the faces a gallery knows named (known.py), the rest grouped by
identity, and the groups written as folders and pages, all under the folder's lock."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecnn.cluster.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, Settings
from facecnn.cluster.assign import assign_new
from facecnn.cluster.cache import UNSORTED, LibraryCache
from facecnn.cluster.groups import Group
from facecnn.cluster.known import name_known
from facecnn.cluster.library import embed_library, library_photos
from facecnn.cluster.lock import LOCK, locked
from facecnn.cluster.output import CACHE, check_out, update
from facecnn.errors import FacecnnError
from facecnn.faces.pipeline import FacePipeline
from facecnn.faces.quality import DEFAULT_MIN_QUALITY
from facecnn.faces.result import json_box, json_number
from facecnn.progress import Reporter

if TYPE_CHECKING:
    from facecnn.faces.gallery import Gallery


@dataclass
class ClusterReport:
    """What a run did: photos seen and embedded now, faces, the clusters (biggest first, then
    unsorted), photos without faces (photo -> why), files of the user's left alone, videos
    left out, the unsorted faces under the quality floor ({"file", "box", "quality"}), and
    how many faces a gallery's people were found in (--gallery)."""

    out: Path
    photos: int
    embedded: int
    faces: int
    groups: list[Group]
    threshold: float
    known: int = 0
    no_face: dict[str, str] = field(default_factory=dict)
    left_alone: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)  # left out: a library is its photos
    min_quality: float = 0.0
    low_quality: list[dict] = field(default_factory=list)  # unsorted faces under it

    @property
    def clusters(self) -> list[Group]:
        return [g for g in self.groups if g.cohesion is not None]

    @property
    def unsorted(self) -> int:
        return sum(g.size for g in self.groups if g.cohesion is None)


def cluster_photos(inputs: list[Path], out: Path, pipeline: FacePipeline, *,
                   algorithm: str = DEFAULT_ALGORITHM, threshold: float | None = None,
                   min_size: int = 3, min_quality: float = DEFAULT_MIN_QUALITY,
                   copy: bool = False, gallery: str | None = None,
                   reporter: Reporter | None = None) -> ClusterReport:
    """Cluster the faces of photos and folders of photos into `out`; a rerun on the same
    `out` embeds only new photos and adds their faces to the clusters it made before.
    `threshold`: the distance under which two faces are one person (default: the embedder's).
    `gallery` (a --gallery value): its people's faces are named, not clustered.
    `min_quality`: faces under it (faces/quality.py) are left unsorted and listed.
    """
    ALGORITHMS.get(algorithm)  # a misspelt name fails before any work
    check_out(out)
    photos, videos = library_photos(inputs, skip=out)
    made = not out.exists()
    known = None
    if gallery is not None:
        from facecnn.faces.gallery import open_gallery

        known = open_gallery(gallery)
    with known or nullcontext():
        if known is not None:
            known.check_embedder(pipeline.embedder)  # before any work
        out.mkdir(parents=True, exist_ok=True)
        try:
            with locked(out):
                report = _cluster(photos, out, pipeline, known, algorithm, threshold,
                                  min_size, min_quality, copy, reporter)
                report.videos = [str(v) for v in videos]
                return report
        except BaseException:
            if made and {p.name for p in out.iterdir()} <= {LOCK}:  # leave no empty folder
                (out / LOCK).unlink(missing_ok=True)
                out.rmdir()
            raise


def _cluster(photos: list[Path], out: Path, pipeline: FacePipeline, gallery: Gallery | None,
             algorithm: str, threshold: float | None, min_size: int, min_quality: float,
             copy: bool, reporter: Reporter | None) -> ClusterReport:
    cache = LibraryCache.load(out / CACHE, pipeline.recipe())
    embedded = embed_library(photos, pipeline, cache, reporter)
    if cache.faces == 0:
        raise FacecnnError(f"no face found in any of the {len(photos)} photos")
    settings = Settings(pipeline.embedder.default_threshold if threshold is None else threshold,
                        min_size)
    known = name_known(cache, gallery, pipeline.embedder) if gallery is not None else 0
    assign_new(cache, cache.rows_of(embedded), algorithm, settings, min_quality=min_quality,
               gallery_decides=gallery is not None)
    cache.threshold, cache.copy = settings.threshold, copy
    groups, left_alone = update(out, cache)
    poor = [{"file": cache.files[i], "box": json_box(cache.boxes[i]),
             "quality": json_number(cache.qualities[i])}
            for i in np.flatnonzero(cache.below(min_quality)) if cache.clusters[i] == UNSORTED]
    return ClusterReport(out, len(photos), len(embedded), cache.faces, groups,
                         settings.threshold, known, cache.errors(), left_alone,
                         min_quality=min_quality, low_quality=poor)
