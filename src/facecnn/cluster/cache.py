"""The vector cache of a photo library: every photo's faces (box, vector) and the cluster each
face was put in, so a rerun embeds only new or changed photos and keeps cluster names.

A photo is known by its resolved path, byte size and modification time; a photo whose size or
time changed is embedded again, and one gone from the library is dropped. Photos with no face
or that could not be read are remembered too (with why), so they are not tried again. One
.npz, written whole or not at all (fileio.atomic_write); numpy reads it without facecnn.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.result import Result
from facecnn.fileio import atomic_write

UNSORTED = ""  # a face in no cluster (yet)


def photo_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime in ns): a photo that changed has another key."""
    stat = path.stat()
    return str(path.resolve()), int(stat.st_size), int(stat.st_mtime_ns)


@dataclass
class LibraryCache:
    """Photos (key -> why no face, "" when it has faces) and faces, one row each: the photo's
    resolved path, box (x1, y1, x2, y2), quality (NaN: not measured, faces cached before
    quality was), vector and cluster name (UNSORTED for none).
    `recipe` names the detector and embedder the vectors came from; `next_cluster` numbers
    the next new cluster; `written` lists the files its output folder holds (output.py).

    What people decided stays with the faces: `names` (cluster -> the person it is, one
    cluster per person), `dismissed` (clusters that are nobody to name) and `not_of` (face
    -> the people it was taken away from, by `face_key`: a gallery never puts it back with
    them); and what the
    folder was written with: `threshold` (the clustering distance) and `copy` (photos copied,
    not linked), so an edit (edits.py) rewrites it as the run did."""

    recipe: dict[str, Any]
    photos: dict[tuple[str, int, int], str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    vectors: np.ndarray | None = None
    clusters: list[str] = field(default_factory=list)
    qualities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    next_cluster: int = 1
    written: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    dismissed: list[str] = field(default_factory=list)
    not_of: dict[str, list[str]] = field(default_factory=dict)
    threshold: float | None = None
    copy: bool = False

    @classmethod
    def load(cls, path: Path, recipe: dict[str, Any] | None) -> LibraryCache:
        """The cache at `path`, or an empty one if there is none; one made by another detector
        or embedder than `recipe`'s is refused (its vectors would not mix). `recipe=None`
        takes the cache's own (an edit of the clusters, which embeds nothing)."""
        if not path.exists():
            return cls(recipe or {})
        try:
            with np.load(path, allow_pickle=False) as data:
                found = json.loads(str(data["recipe"]))
                paths, sizes, times = data["photo_paths"], data["photo_sizes"], data["photo_times"]
                state = json.loads(str(data["state"])) if "state" in data.files else {}
                qualities = (data["qualities"].astype(np.float32) if "qualities" in data.files
                             else np.full(len(data["files"]), np.nan, np.float32))
                cache = cls(found, dict(zip(zip(paths.tolist(), sizes.tolist(), times.tolist()),
                                            data["photo_errors"].tolist())),
                            data["files"].tolist(), data["boxes"].astype(np.float32),
                            data["vectors"].astype(np.float32), data["clusters"].tolist(),
                            qualities, int(data["next_cluster"]), data["written"].tolist(),
                            dict(state.get("names", {})), list(state.get("dismissed", [])),
                            dict(state.get("not_of", {})), state.get("threshold"),
                            bool(state.get("copy", False)))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise FacecnnError(f"{path} is not a facecnn face cache ({exc}); remove it or "
                               "choose another folder") from None
        if recipe is not None and found != recipe:
            raise FacecnnError(f"{path} holds faces found with {describe(found)}, not "
                               f"{describe(recipe)}: use the same options or another folder")
        return cache

    def save(self, path: Path) -> None:
        keys = list(self.photos)
        dim = self.vectors.shape[1] if self.vectors is not None else 0

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # np.savez would append .npz to other names
                np.savez(handle, recipe=np.asarray(json.dumps(self.recipe, sort_keys=True)),
                         photo_paths=np.asarray([k[0] for k in keys], dtype=str),
                         photo_sizes=np.asarray([k[1] for k in keys], np.int64),
                         photo_times=np.asarray([k[2] for k in keys], np.int64),
                         photo_errors=np.asarray(list(self.photos.values()), dtype=str),
                         files=np.asarray(self.files, dtype=str),
                         boxes=np.asarray(self.boxes, np.float32).reshape(-1, 4),
                         vectors=(self.vectors if self.vectors is not None
                                  else np.zeros((0, dim), np.float32)),
                         clusters=np.asarray(self.clusters, dtype=str),
                         qualities=np.asarray(self.qualities, np.float32),
                         next_cluster=np.asarray(self.next_cluster),
                         written=np.asarray(self.written, dtype=str),
                         state=np.asarray(json.dumps(
                             {"names": self.names, "dismissed": self.dismissed,
                              "not_of": self.not_of, "threshold": self.threshold,
                              "copy": self.copy},
                             sort_keys=True)))

        atomic_write(path, write)

    def stale(self, photos: list[Path]) -> list[Path]:
        """The photos whose key is not cached (new or changed since)."""
        return [p for p in photos if photo_key(p) not in self.photos]

    def keep_only(self, photos: list[Path]) -> None:
        """Forget the photos (and their faces) gone from `photos` or changed since."""
        keys = {photo_key(p) for p in photos}
        self.photos = {k: v for k, v in self.photos.items() if k in keys}
        current = {k[0] for k in self.photos}
        rows = np.array([f in current for f in self.files], bool).reshape(-1)
        self.files = [f for f, keep in zip(self.files, rows) if keep]
        self.clusters = [c for c, keep in zip(self.clusters, rows) if keep]
        self.boxes = self.boxes[rows]
        self.qualities = self.qualities[rows]
        if self.vectors is not None:
            self.vectors = self.vectors[rows]

    def add(self, found: list[tuple[tuple[str, int, int], Result]]) -> None:
        """Cache the results of new photos, each (key, its faces), as unsorted faces."""
        vectors = [self.vectors] if self.vectors is not None else []
        boxes, qualities = [self.boxes], [self.qualities]
        for key, faces in found:
            self.photos[key] = faces.error or ""
            if faces.error:
                continue
            self.files += [key[0]] * len(faces.boxes)
            self.clusters += [UNSORTED] * len(faces.boxes)
            boxes.append(np.asarray(faces.boxes, np.float32).reshape(-1, 4))
            qualities.append(np.array([np.nan if f.quality is None else f.quality
                                       for f in faces], np.float32))
            vectors.append(np.asarray(faces.vectors, np.float32))
        self.boxes, self.qualities = np.concatenate(boxes), np.concatenate(qualities)
        self.vectors = np.concatenate(vectors) if vectors else None

    def below(self, floor: float) -> np.ndarray:
        """Whether each face's quality is under `floor` (never for one not measured)."""
        with np.errstate(invalid="ignore"):
            return self.qualities < floor

    def rows_in(self, cluster: str) -> np.ndarray:
        """Indices of the faces of one cluster."""
        return np.array([i for i, c in enumerate(self.clusters) if c == cluster], np.int64)

    def move(self, source: str, target: str) -> None:
        """Every face of cluster `source` into cluster `target` (`source` is then gone)."""
        self.clusters = [target if c == source else c for c in self.clusters]
        self.names.pop(source, None)
        self.dismissed = [c for c in self.dismissed if c != source]

    def cluster_named(self, person: str) -> str | None:
        """The cluster that is `person`, if one is."""
        return next((c for c, name in self.names.items() if name == person), None)

    def face_key(self, row: int) -> str:
        """A face's name in `not_of`: its photo and box (a changed photo's faces are new)."""
        return f"{self.files[row]}:" + ",".join(f"{float(v):.1f}" for v in self.boxes[row])

    def rows_of(self, photos: list[Path]) -> np.ndarray:
        """Indices of the faces of these photos."""
        wanted = {str(p.resolve()) for p in photos}
        return np.array([i for i, f in enumerate(self.files) if f in wanted], np.int64)

    @property
    def faces(self) -> int:
        return len(self.files)

    def errors(self) -> dict[str, str]:
        """Photo -> why it has no face, for the photos that have none."""
        return {key[0]: why for key, why in self.photos.items() if why}


def describe(recipe: dict[str, Any]) -> str:
    return f"embedder {recipe.get('embedder')} and detector {recipe.get('detector')}"
