"""A FAISS search index beside a gallery, for galleries too big to scan per query.

The gallery's database stays the truth; the index is a cache of it in `Gallery.cache_path`
(`<gallery>.faiss` beside a SQLite file; under the user's cache folder for a PostgreSQL
database), with a JSON sidecar `.faiss.json` holding the fingerprint of the rows it was built
from. A
fingerprint mismatch (rows added, removed, renamed, or the files replaced under us) means
rebuild, never trust, except that new faces (which get the highest ids) are appended to the
cached index; an IVF index is rebuilt anyway once it has doubled since its lists were trained.
Index rows are the gallery's embedding rows in id order, so the row -> person mapping is taken
from the same gallery snapshot that matched the fingerprint.

A live index (`sync`, what the Recognizer uses) follows the gallery by its change counter
instead: see `GalleryIndex.sync` for why that is enough between two loads, and why loading
still checks the full fingerprint. A live index is safe to share between threads: a server
syncs it from another thread as soon as PostgreSQL tells it of a write.

Up to `exact_limit` vectors the index is exact (`IndexFlatL2`). Above, it is IVF-Flat, which
builds far faster than HNSW for the same recall (benchmarks/gallery_search.py measures both).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.gallery import UNKNOWN, Gallery, Match, Rows, match, pair_distances
from facecnn.faces.threshold import check_threshold
from facecnn.fileio import atomic_write

FLAT, IVF = "flat", "ivf"
EXACT_LIMIT = 50_000
_TRAIN_PER_LIST = 40  # k-means wants >= 39 training vectors per IVF list
_RERANK = 8  # extra candidates re-ranked in float64, so near-ties resolve as Gallery.identify
_PARALLEL_MIN = 20  # queries; smaller searches run on one OpenMP thread (see _one_thread)


def fingerprint(ids: np.ndarray, vectors: np.ndarray, row_names: list[str]) -> str:
    """sha1 over the rows in order: ids and names catch additions, removals and renames, and
    the vectors catch SQLite reusing the ids of deleted rows for new faces (and a cache that
    was made from another database)."""
    h = hashlib.sha1(np.asarray(ids, "<i8").tobytes())
    h.update("\0".join(row_names).encode())  # check_name forbids control characters
    h.update(np.asarray(vectors, "<f4").tobytes())
    return h.hexdigest()


def index_kind(n: int, exact_limit: int = EXACT_LIMIT) -> str:
    """Exact search while a scan is cheap (about 1 ms at 50k x 128), IVF above."""
    return FLAT if n <= exact_limit else IVF


def ivf_lists(n: int) -> int:
    """About 4 sqrt(n) lists, but never fewer than _TRAIN_PER_LIST vectors per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // _TRAIN_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """Lists searched per query: 1/16 of them (recall@1 ~0.999 at 1M random 128-d vectors)."""
    return min(nlist, max(16, nlist // 16))


def build_index(vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> faiss.Index:
    """A flat or IVF-Flat L2 index holding `vectors` as rows 0..M-1."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = x.shape[1]
    if index_kind(len(x), exact_limit) == FLAT:
        index = faiss.IndexFlatL2(dim)
    else:
        nlist = ivf_lists(len(x))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
        size = min(len(x), nlist * _TRAIN_PER_LIST)
        sample = np.random.default_rng(0).choice(len(x), size, replace=False)
        index.train(x[np.sort(sample)])
        index.make_direct_map()  # lets search re-rank candidates by reconstructing them
    index.add(x)
    return index


def _kind_of(index: faiss.Index) -> str:
    return IVF if isinstance(index, faiss.IndexIVF) else FLAT


def _appendable(kind: str, now: str, rows: int, built: int) -> bool:
    """Whether an index of `kind` whose lists were trained on `built` rows may simply take
    appends up to `rows` (of kind `now`): it keeps its kind, and if IVF, has at most doubled
    since its lists were trained (beyond that they get too long to probe fast)."""
    return kind == now and (kind == FLAT or rows <= 2 * built)


def _owners(row_names: list[str], names: list[str]) -> np.ndarray:
    """Index into `names` of each row's name."""
    rank = {name: i for i, name in enumerate(names)}
    return np.fromiter((rank[n] for n in row_names), np.int64, len(row_names))


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run faiss on one OpenMP thread: for a few queries, waking a second thread costs more
    (about 8 ms here) than the whole search. Restores the caller's setting."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _file_id(stat: os.stat_result) -> list[int]:
    """Identifies one written file: os.replace keeps inode and mtime, a new write changes them."""
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _replace(path: Path, write: Callable[[str], None], mode: int) -> os.stat_result:
    """Write through a temporary file in the same folder, then swap it in atomically; `mode`
    because whoever reads the gallery reads this."""
    return atomic_write(path, lambda tmp: write(str(tmp)), mode)


@dataclass
class _Source:
    """What a live index follows: its gallery, the change counter and last embedding id it
    has seen, the row count its IVF lists were trained on, and how to load it again."""

    gallery: Gallery
    version: int
    last_id: int
    built: int
    exact_limit: int
    nprobe: int | None
    must_save: bool


class GalleryIndex:
    """Nearest-neighbour search over gallery vectors; row i belongs to names[owners[i]]."""

    def __init__(self, index: faiss.Index, owners: np.ndarray, names: list[str],
                 nprobe: int | None = None) -> None:
        """Wrap a built index; `names` sorted, `owners` the name index of each row."""
        if index.ntotal != len(owners):
            raise ValueError(f"index holds {index.ntotal} rows, owners {len(owners)}")
        self.index = index
        self.kind = _kind_of(index)
        self.dim: int = index.d
        self._relabel(np.asarray(owners, dtype=np.int64), names)
        self.ids = np.zeros(0, np.int64)  # the gallery's embedding id of each row (for_gallery)
        self._source: _Source | None = None  # set by for_gallery: what sync() follows
        self._lock = threading.RLock()  # a sync changes what a search reads
        if self.kind == IVF:
            index.nprobe = nprobe or default_nprobe(index.nlist)

    def _relabel(self, owners: np.ndarray, names: list[str]) -> None:
        self.names = names
        self.owners = owners
        self._labels = np.array([*names, UNKNOWN], dtype=object)  # [-1]: no result

    @classmethod
    def for_gallery(cls, gallery: Gallery, *, exact_limit: int = EXACT_LIMIT,
                    nprobe: int | None = None, must_save: bool = True) -> GalleryIndex:
        """The index of `gallery`'s current rows: the cached files when their fingerprint
        matches, else the cache with new rows appended, or a rebuilt index; saved either way.

        `must_save=False` answers from memory when the cache cannot be written (a read-only
        folder): a recognizer still works there, while `facecnn gallery index` should fail.
        """
        rows = gallery.rows()
        path = gallery.cache_path
        sidecar = Path(f"{path}.json")
        current = fingerprint(rows.ids, rows.vectors, rows.names)
        kind = index_kind(len(rows.ids), exact_limit)
        index, meta = _load(path, sidecar)
        built = meta.get("built", 0)
        if index is None or meta["kind"] != kind or meta["fingerprint"] != current:
            if _extends(meta, kind, rows):
                index.add(rows.vectors[meta["rows"]:])
            else:
                index, built = build_index(rows.vectors, exact_limit), len(rows.ids)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _save(index, path, sidecar, {"fingerprint": current, "built": built},
                      gallery.cache_mode)
            except OSError:
                if must_save:
                    raise
        names = sorted(set(rows.names))
        found = cls(index, _owners(rows.names, names), names, nprobe)
        found.ids = rows.ids
        last_id = int(rows.ids[-1]) if len(rows.ids) else 0
        found._source = _Source(gallery, rows.version, last_id, built, exact_limit, nprobe,
                                must_save)
        return found

    @property
    def version(self) -> int | None:
        """The gallery's change counter this index is current with (None: not a live index)."""
        return None if self._source is None else self._source.version

    def sync(self) -> GalleryIndex:
        """This index brought up to date with the gallery it was loaded from, in place (and
        returned): new faces appended, or everything loaded again when appending is not
        enough.

        Costs one tiny read when the gallery's change counter has not moved. Else the rows
        newer than the last one seen and the counters come in one snapshot, and if no write
        since the last sync changed or dropped rows (the rewrite version did not pass ours),
        every older row is as indexed: SQLite gives new rows ids above the largest existing
        one, PostgreSQL hands ids out in commit order (store_postgres.py), and rows are only
        ever removed by writes that move the rewrite version. So
        appending the new rows is exact, and safe across processes, since every writer bumps
        the counters in its own transaction (a facecnn from before the counters would write
        unseen until the next load). Appends stay in memory (the next load appends them to
        the cache again); anything else goes through `for_gallery`, which rebuilds and saves,
        or takes a cache another process has rebuilt already.

        Loading from disk keeps the full fingerprint: counters alone cannot tell the files of
        a gallery that was restored from a backup and then changed differently.
        """
        source = self._source
        if source is None:
            raise ValueError("only an index from GalleryIndex.for_gallery can sync")
        with self._lock:
            if source.gallery.version() == source.version:
                return self
            new = source.gallery.rows(after=source.last_id)
            total = len(self) + len(new.ids)
            if new.rewritten > source.version or not _appendable(
                    self.kind, index_kind(total, source.exact_limit), total, source.built):
                self._take(GalleryIndex.for_gallery(
                    source.gallery, exact_limit=source.exact_limit, nprobe=source.nprobe,
                    must_save=source.must_save))
                return self
            if len(new.ids):
                names = sorted(set(self.names).union(new.names))
                owners = np.concatenate([_owners(self.names, names)[self.owners],
                                         _owners(new.names, names)])
                self.index.add(new.vectors)
                self._relabel(owners, names)
                self.ids = np.concatenate([self.ids, new.ids])
                source.last_id = int(new.ids[-1])
            source.version = new.version
            return self

    def _take(self, fresh: GalleryIndex) -> None:
        """Become `fresh` (a reloaded index), so that whoever holds this one sees it."""
        self.index, self.kind, self.dim, self._source = (fresh.index, fresh.kind, fresh.dim,
                                                         fresh._source)
        self.ids = fresh.ids
        self._relabel(fresh.owners, fresh.names)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(Euclidean distances (N, k) float64, person names (N, k)), nearest first.

        k is capped at the number of rows. faiss proposes k + _RERANK candidates in float32;
        they are re-ranked by float64 distance, ties going to the name first in sorted order,
        so exact search answers exactly as Gallery.identify does.
        """
        with self._lock:  # never half-way through a sync
            dist, rows = self._search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return dist, self._labels[np.where(rows >= 0, self.owners[rows], -1)]

    def nearest(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """As `search`, with the gallery's embedding ids of the faces found (-1 for none) in
        place of their names: which faces, not only whose (an index from for_gallery)."""
        with self._lock:
            dist, rows = self._search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return dist, np.where(rows >= 0, self.ids[rows], -1)

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if q.ndim != 2 or q.shape[1] != self.dim or not np.isfinite(q).all():
            raise FacecnnError(f"queries must be finite with shape (N, {self.dim}), "
                               f"got {q.shape}")
        if len(self) == 0:
            raise FacecnnError("the gallery is empty; add people first")
        if k < 1:
            raise FacecnnError(f"k must be at least 1, got {k}")
        k = min(k, len(self))
        with _one_thread() if len(q) < _PARALLEL_MIN else nullcontext():
            _, candidates = self.index.search(q, min(k + _RERANK, len(self)))
        dist = np.full((len(q), k), np.inf)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        for i, cand in enumerate(candidates):
            cand = cand[cand >= 0]
            d = pair_distances(np.broadcast_to(q[i], (len(cand), self.dim)),
                               self.index.reconstruct_batch(cand))
            best = np.lexsort((cand, self.owners[cand], d))[:k]
            dist[i, :len(best)], rows[i, :len(best)] = d[best], cand[best]
        return dist, rows

    def identify(self, queries: np.ndarray, threshold: float) -> list[Match]:
        """A "euclidean" gallery's Gallery.identify(queries, threshold=threshold), from the
        index."""
        t = check_threshold(threshold)
        dist, names = self.search(queries, 1)
        return [match(name, d, t) for name, d in zip(names[:, 0], dist[:, 0])]


def _load(path: Path, sidecar: Path) -> tuple[faiss.Index | None, dict]:
    """The cached index and its sidecar, or (None, {}) when either is missing, unreadable,
    or the index file is not the one the sidecar was written for (a concurrent rebuild)."""
    try:
        meta = json.loads(sidecar.read_text())
        if _file_id(os.stat(path)) == meta["file"]:
            index = faiss.read_index(str(path))
            if (_file_id(os.stat(path)) == meta["file"] and meta["kind"] == _kind_of(index)
                    and meta["rows"] == index.ntotal and isinstance(meta["fingerprint"], str)
                    and isinstance(meta["built"], int)):
                return index, meta
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None, {}  # an unreadable cache is rebuilt, never trusted
    return None, {}


def _extends(meta: dict, kind: str, rows: Rows) -> bool:
    """Whether appending the rest of the current rows makes the cached index current: it holds
    exactly their first rows (new faces get higher ids) and may take appends."""
    m = meta.get("rows", 0)
    return (0 < m <= len(rows.ids) and _appendable(meta["kind"], kind, len(rows.ids),
                                                   meta["built"])
            and fingerprint(rows.ids[:m], rows.vectors[:m], rows.names[:m])
            == meta["fingerprint"])


def _save(index: faiss.Index, path: Path, sidecar: Path, meta: dict, mode: int) -> None:
    """Index first, then the sidecar naming that exact file, so readers never pair them wrong."""
    stat = _replace(path, lambda tmp: faiss.write_index(index, tmp), mode)
    meta = {**meta, "kind": _kind_of(index), "rows": int(index.ntotal), "file": _file_id(stat)}
    _replace(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta)), mode)
