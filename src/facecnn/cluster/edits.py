"""What a person does with a cluster output folder after a run: name a cluster (its faces
become a person of a gallery), merge clusters that are one person, dismiss one that is nobody
to name; and take one wrong face from a person, or move it to another, in the gallery and the
folder together. `facecnn gallery name|forget|move` and the web page call these.

Each edit holds the folder's lock (lock.py) around its read-modify-write of cache.npz and
clusters.json, which are written atomically (fileio.py), and rewrites the folder at once: a
named cluster_007 becomes people/dora/ (its crops moved, not cut again; an edit killed
half-way is finished by the next one or run, journal.py). A later `facecnn cluster` run
keeps every decision: named clusters keep their names, dismissed ones stay hidden and keep
the faces that join them. Clusters are referred to by number (cluster_007) or by folder name
(dora).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facecnn.cluster.assign import NAME
from facecnn.cluster.cache import UNSORTED, LibraryCache
from facecnn.cluster.groups import UNSORTED_NAME
from facecnn.cluster.lock import locked
from facecnn.cluster.output import CACHE, CLUSTERS, update
from facecnn.errors import FacecnnError
from facecnn.faces.gallery.faces import FaceEntry
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.faces.names import check_name
from facecnn.faces.refit import refit_threshold
from facecnn.fileio import content_hash, file_hash

if TYPE_CHECKING:
    from facecnn.faces.gallery import Gallery


def list_clusters(out: Path) -> list[dict[str, Any]]:
    """The clusters.json entries, biggest first, unsorted last: "cluster", "name" (None if
    unnamed), "folder", "sheet" (the contact sheet's file name in `out`), "dismissed",
    "size", "cohesion" and "faces". Needs no lock: clusters.json is replaced whole."""
    _check_folder(out)
    return [{"name": None, "folder": entry["cluster"], "sheet": f"{entry['cluster']}.png",
             "dismissed": False, **entry}  # (a folder written before names were kept)
            for entry in json.loads((Path(out) / CLUSTERS).read_text())]


def name_cluster(out: Path, cluster: str, gallery: GalleryLocation | str, name: str) -> int:
    """Enrol the faces of `cluster` as `name` in `gallery` (a --gallery value; created if
    missing, with the cache's embedder and crop; `name` added to if enrolled already), in one
    gallery transaction, from the cached vectors; then record that the cluster is `name`.
    Returns the faces added: naming a cluster again adds none (each face's content hash is
    its photo's and its box's, so the faces of one group photo may be different people).
    A cluster named like another one is merged into it (one cluster per person)."""
    name = check_name(name)
    with locked(_check_folder(out)):
        cache = _load(out)
        key = _find(cache, cluster)
        known = cache.names.get(key)
        if known is not None and known != name:
            raise FacecnnError(f"{cluster} is named {known} already: rename the person with "
                               f"`facecnn gallery rename`")
        added = _enrol(cache, cache.rows_in(key), gallery, name)
        other = cache.cluster_named(name)
        if other is not None and other != key:
            cache.move(key, other)
        else:
            cache.names[key] = name
            cache.dismissed = [c for c in cache.dismissed if c != key]
        update(out, cache)
    return added


def merge_clusters(out: Path, clusters: list[str]) -> str:
    """Merge unnamed clusters into the first given; returns its name (cluster_NNN)."""
    with locked(_check_folder(out)):
        cache = _load(out)
        keys = [_find(cache, c) for c in clusters]
        if len(set(keys)) < 2:
            raise FacecnnError("give two or more different clusters to merge")
        for given, key in zip(clusters, keys):
            _check_open(cache, given, key, "merged")
        for key in keys[1:]:
            cache.move(key, keys[0])
        update(out, cache)
    return keys[0]


def dismiss_cluster(out: Path, cluster: str) -> None:
    """Mark a cluster as nobody to name: hidden from the Unnamed list, and its faces (and new
    ones like them) are not offered again on reruns. Dismissing it again changes nothing."""
    with locked(_check_folder(out)):
        cache = _load(out)
        key = _find(cache, cluster)
        if key in cache.names:
            raise FacecnnError(f"{cluster} is {cache.names[key]}: a named cluster cannot be "
                               "dismissed")
        if key not in cache.dismissed:
            cache.dismissed.append(key)
            update(out, cache)


def forget_faces(gallery: Gallery, person: str, ids: list[int],
                 out: Path | None = None) -> list[FaceEntry]:
    """Take faces (gallery ids) from `person`, in one gallery transaction; with `out` (the
    cluster folder the person was named from), the folder follows: the faces leave the
    person's cluster for the unsorted ones, and no rerun puts them back with that person.
    Returns the faces taken."""
    return _edit_faces(gallery, person, ids, None, out)


def move_faces(gallery: Gallery, person: str, ids: list[int], to: str,
               out: Path | None = None) -> list[FaceEntry]:
    """Move faces (gallery ids) from `person` to `to` (created if new) in one gallery
    transaction; with `out`, the folder follows: the faces go to the cluster that is `to`
    (a new one named so, if none is) and stay there. Returns the faces moved."""
    return _edit_faces(gallery, person, ids, check_name(to), out)


def _edit_faces(gallery: Gallery, person: str, ids: list[int], to: str | None,
                out: Path | None) -> list[FaceEntry]:
    """The gallery's edit (forget when `to` is None, else move) and its threshold's refit,
    made while the folder is locked, then the folder's: the faces are found in it by their
    content hash."""
    with locked(_check_folder(out)) if out is not None else nullcontext():
        edited = gallery.forget(person, ids) if to is None else gallery.move(person, ids, to)
        refit_threshold(gallery)
        if out is not None:
            cache = _load(out)
            rows = _rows_of(cache, person, {f.content_hash for f in edited})
            for row in rows:
                if to is None:
                    cache.clusters[row] = UNSORTED
                    cache.not_of.setdefault(cache.face_key(row), []).append(person)
                else:
                    cache.clusters[row] = _cluster_of(cache, to)
            if len(rows):
                update(out, cache)
    return edited


def _rows_of(cache: LibraryCache, person: str, hashes: set[str | None]) -> np.ndarray:
    """The rows of `person`'s cluster whose face hash is one of `hashes`."""
    home = cache.cluster_named(person)
    rows = cache.rows_in(home) if home is not None else np.zeros(0, np.int64)
    found = face_hashes([cache.files[r] for r in rows], cache.boxes[rows]) if len(rows) else []
    return np.array([r for r, digest in zip(rows, found) if digest in hashes], np.int64)


def _cluster_of(cache: LibraryCache, person: str) -> str:
    """The cluster that is `person`: theirs, or a new one named so."""
    home = cache.cluster_named(person)
    if home is None:
        home = NAME.format(cache.next_cluster)
        cache.next_cluster += 1
        cache.names[home] = person
    return home


def _check_folder(out: Path) -> Path:
    if not (Path(out) / CACHE).is_file() or not (Path(out) / CLUSTERS).is_file():
        raise FacecnnError(f"{out} is not a `facecnn cluster` output folder (no {CACHE} and "
                           f"{CLUSTERS})")
    return Path(out)


def _load(out: Path) -> LibraryCache:
    cache = LibraryCache.load(out / CACHE, None)
    if cache.threshold is None:  # written before edits were recorded: rewrite it first
        raise FacecnnError(f"{out} was written by an older facecnn: run `facecnn cluster` on "
                           "it again first")
    return cache


def _find(cache: LibraryCache, cluster: str) -> str:
    """The cluster a number (cluster_007) or folder name (dora) refers to."""
    if cluster in (UNSORTED_NAME, UNSORTED):
        raise FacecnnError("the unsorted faces are no cluster: name or merge clusters only")
    present = set(cache.clusters) - {UNSORTED}
    if cluster in present:
        return cluster
    named = cache.cluster_named(cluster)
    if named in present:
        return named
    listed = ", ".join(sorted(present)[:5]) + (", ..." if len(present) > 5 else "")
    raise FacecnnError(f"no cluster {cluster!r} in this folder (it has {listed or 'none'})")


def _check_open(cache: LibraryCache, given: str, key: str, what: str) -> None:
    """Refuse a cluster that was named or dismissed: only the others can be `what`."""
    if key in cache.names:
        raise FacecnnError(f"{given} is named {cache.names[key]}: only unnamed clusters can "
                           f"be {what}")
    if key in cache.dismissed:
        raise FacecnnError(f"{given} was dismissed: only clusters still offered can be {what}")


def face_hashes(files: list[str], boxes: np.ndarray) -> list[str]:
    """Each face's own content hash, of its photo's bytes and its box: one photo's faces are
    told apart, and a face is the same face under any file name."""
    photos: dict[str, str] = {}
    hashes = []
    for file, box in zip(files, boxes):
        if file not in photos:
            try:
                photos[file] = file_hash(file)
            except OSError as exc:
                raise FacecnnError(f"cannot read {file} ({exc.strerror}): a face is known "
                                   "by its photo's content") from None
        where = ",".join(f"{float(v):.1f}" for v in box)
        hashes.append(content_hash(f"{photos[file]}:{where}".encode()))
    return hashes


def _enrol(cache: LibraryCache, rows: np.ndarray, gallery: GalleryLocation | str, name: str) -> int:
    """The faces of `rows` added to `name` in one transaction, and the gallery's threshold
    refit to them (faces/refit.py)."""
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.thumbnails import photo_thumbnails

    files, boxes = [cache.files[r] for r in rows], cache.boxes[rows]
    vectors = cache.vectors[rows]
    hashes = face_hashes(files, boxes)
    made = (cache.recipe["embedder"], int(vectors.shape[1]), cache.recipe["crop"],
            {"flip": cache.recipe["flip"], "jitter": cache.recipe["jitter"]})
    with Gallery.open_or_create(gallery, *made) as target:
        added = target.add(name, vectors, files, hashes, list(boxes),
                           photo_thumbnails(files, boxes))
        refit_threshold(target)
    return added
