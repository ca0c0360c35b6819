"""`facecnn cluster PHOTOS --out people/`: every face found and embedded (the cache skips
photos seen before), grouped by identity, and the groups written as folders and pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facecnn.cluster.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, Settings
from facecnn.cluster.assign import assign
from facecnn.cluster.cache import LibraryCache
from facecnn.cluster.groups import Group, make_groups
from facecnn.cluster.library import embed_library, library_photos, recipe
from facecnn.cluster.output import CACHE, check_out, write_output
from facecnn.errors import FacecnnError
from facecnn.faces.pipeline import FacePipeline
from facecnn.progress import Reporter


@dataclass
class ClusterReport:
    """What a run did: photos seen and embedded now, faces, the clusters (biggest first, then
    unsorted), photos without faces (photo -> why), and files of the user's left alone."""

    out: Path
    photos: int
    embedded: int
    faces: int
    groups: list[Group]
    threshold: float
    no_face: dict[str, str] = field(default_factory=dict)
    left_alone: list[str] = field(default_factory=list)

    @property
    def clusters(self) -> list[Group]:
        return [g for g in self.groups if g.cohesion is not None]

    @property
    def unsorted(self) -> int:
        return sum(g.size for g in self.groups if g.cohesion is None)


def cluster_photos(inputs: list[Path], out: Path, pipeline: FacePipeline, *,
                   algorithm: str = DEFAULT_ALGORITHM, threshold: float | None = None,
                   min_size: int = 3, copy: bool = False,
                   reporter: Reporter | None = None) -> ClusterReport:
    """Cluster the faces of photos and folders of photos into `out`; a rerun on the same
    `out` embeds only new photos and adds their faces to the clusters it made before.
    `threshold`: the distance under which two faces are one person (default: the embedder's).
    """
    ALGORITHMS.get(algorithm)  # a misspelt name fails before any work
    check_out(out)
    photos = library_photos(inputs, skip=out)
    cache = LibraryCache.load(out / CACHE, recipe(pipeline))
    embedded = embed_library(photos, pipeline, cache, reporter)
    if cache.faces == 0:
        raise FacecnnError(f"no face found in any of the {len(photos)} photos")
    settings = Settings(pipeline.embedder.default_threshold if threshold is None else threshold,
                        min_size)
    cache.clusters, cache.next_cluster = assign(cache.vectors, cache.clusters,
                                                cache.rows_of(embedded), cache.next_cluster,
                                                algorithm, settings)
    groups = make_groups(cache, settings.threshold)
    left_alone = write_output(out, cache, groups, copy)
    cache.save(out / CACHE)
    return ClusterReport(out, len(photos), len(embedded), cache.faces, groups,
                         settings.threshold, cache.errors(), left_alone)
