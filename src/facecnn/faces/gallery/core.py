"""A face gallery: people, their embeddings, and a calibrated threshold, in a SQLite file or a
PostgreSQL database (store_sqlite.py, store_postgres.py: the same tables by the same rules).

The database is the single source of truth (search indexes are caches of it), so every write
is one transaction, and several threads, processes or machines may share it. Every write also
bumps a change counter in the same transaction, so a cache learns whether it is still current
from one tiny read (see `Gallery.version`).

A face remembers the content hash of the photo it came from, and one photo gives at most one
face: enrolling a folder twice (a rerun after an interrupted enroll, two enrolls at once) adds
nothing the second time instead of duplicating every face.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.gallery import calibrate, search
from facecnn.faces.gallery import faces as entries
from facecnn.faces.gallery.faces import FaceEntry, box_text
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.faces.gallery.meta import (
    DATA_VERSION,
    NO_EXTRA_VIEWS,
    REWRITE_VERSION,
    SCHEMA_VERSION,
    damaged,
    now,
    parse_meta,
    parse_metric,
    parse_views,
    schema_version,
    views_in_words,
)
from facecnn.faces.gallery.search import Match
from facecnn.faces.gallery.store import BUSY_TIMEOUT, Closeable, NotInGallery, Store
from facecnn.faces.names import check_name, name_key
from facecnn.faces.threshold import check_threshold

if TYPE_CHECKING:
    from facecnn.faces.embedders import Embedder

Where = str | Path | GalleryLocation  # a --gallery value, or one parsed already
_STORED = np.dtype("<f4")  # vectors are stored as little-endian float32 bytes
# Where the stored threshold came from: a later enroll recalibrates only what it calibrated.
THRESHOLD_SOURCES = ("calibrated", "manual", "default")
# the threshold, how it was chosen, and the share of strangers a calibrated one was chosen for
THRESHOLD_META = ("threshold", "threshold_source", "target_far")
COPIED_META = ("embedder", "dim", "crop", "views", "metric", "created", *THRESHOLD_META)
_FORGET_THRESHOLD = f"DELETE FROM meta WHERE key IN ({', '.join('?' * len(THRESHOLD_META))})"


CALIBRATION_TRIES = 3  # computed again while other writes land meanwhile (then stored anyway)


class _ChangedMeanwhile(Exception):
    """The gallery changed while its threshold was computed: that write is rolled back."""


@dataclass
class Rows:
    """Embedding rows in id order, read in one snapshot with the change counters of that
    snapshot: `version` is Gallery.version(), `rewritten` the version of the last write that
    changed or dropped rows (any other write only added rows, with higher ids, or set the
    threshold)."""

    version: int
    rewritten: int
    ids: np.ndarray
    vectors: np.ndarray
    names: list[str]


@dataclass
class Contents:
    """What `gallery copy` moves, read in one snapshot: the meta that describes the faces and
    the threshold, people (name, created) and faces (person, vector bytes, source, created,
    content hash, box, thumbnail), both in id order."""

    meta: dict[str, str]
    people: list[tuple[str, str | None]]
    faces: list[tuple[str, bytes, str | None, str | None, str | None, str | None,
                      bytes | None]]


class Gallery:
    """People and their face embeddings in one database; use create/open/open_or_create (or
    `open_gallery`) with a SQLite path or a postgresql:// URL."""

    def __init__(self, store: Store, meta: dict[str, str]) -> None:
        """Use create/open/open_or_create; this only parses the meta table."""
        self._store = store
        self.embedder, self.dim, self.crop = parse_meta(meta)
        self.views = parse_views(meta)
        self.metric = parse_metric(meta)
        # boxes and thumbnails are kept (schema 3; an older file opened read-only has none)
        self._stored = schema_version(meta) >= 3

    @property
    def length(self) -> float:
        """The length a "mean_direction" gallery scales vectors to (search.py): its
        embedder's typical one."""
        from facecnn.faces.embedders import vector_length

        return vector_length(self.embedder)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None for a PostgreSQL gallery)."""
        return self._store.path

    @property
    def location(self) -> str:
        """What names the gallery in messages: its path, or its URL without a password."""
        return self._store.location

    @property
    def cache_path(self) -> Path:
        """Where faces/index.py caches this gallery's search index."""
        return self._store.cache_path

    @property
    def cache_mode(self) -> int:
        return self._store.cache_mode

    @classmethod
    def _connect(cls, value: Where, init: tuple | None, *,
                 new: bool = False, busy_timeout: float = BUSY_TIMEOUT) -> Gallery:
        location = GalleryLocation.of(value)
        store, meta = location.store.connect(location.target, init, new=new,
                                             busy_timeout=busy_timeout)
        try:
            return cls(store, meta)
        except FacecnnError as e:
            store.close()
            raise FacecnnError(f"{store.location}: {e}") from None

    @classmethod
    def create(cls, value: Where, embedder: str, dim: int, crop: dict | None = None,
               views: dict | None = None, metric: str | None = None) -> Gallery:
        """Start a new gallery (`metric`: search.METRICS, default the new one); refuses to
        touch an existing one."""
        return cls._connect(value, (embedder, dim, crop, views, metric), new=True)

    @classmethod
    def open(cls, value: Where, *, busy_timeout: float = BUSY_TIMEOUT) -> Gallery:
        """Open an existing gallery; a write waits up to `busy_timeout` seconds for another
        process's write to finish (a server answers sooner than a batch job must)."""
        return cls._connect(value, None, busy_timeout=busy_timeout)

    @classmethod
    def open_or_create(cls, value: Where, embedder: str, dim: int, crop: dict | None = None,
                       views: dict | None = None) -> Gallery:
        """Open the gallery, creating it if needed; embeddings from different models never mix
        (the gallery keeps the name of the embedder that made it; embedders of one family, as
        dlib's network run by dlib or PyTorch, share galleries), nor do vectors of other
        `views` (--flip, --jitter)."""
        from facecnn.faces.embedders import same_vectors

        gallery = cls._connect(value, (embedder, dim, crop, views))
        wanted = views or NO_EXTRA_VIEWS
        if not same_vectors(gallery.embedder, embedder) or gallery.dim != dim:
            gallery.close()
            raise FacecnnError(f"{gallery.location} was made with embedder {gallery.embedder} "
                               f"(dim {gallery.dim}); refusing to mix with {embedder} (dim "
                               f"{dim})")
        if gallery.views != wanted:
            gallery.close()
            raise FacecnnError(f"{gallery.location} was enrolled with "
                               f"{views_in_words(gallery.views)}; refusing to mix in faces "
                               f"embedded with {views_in_words(wanted)}")
        return gallery

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder whose vectors do not mix with this gallery's, and have it cut
        chips and average views (mirror, jitter) as this gallery's faces were."""
        from facecnn.faces.embedders import same_vectors

        if not same_vectors(embedder.name, self.embedder) or embedder.dim != self.dim:
            raise FacecnnError(f"gallery {self.location} was made with {self.embedder} (dim "
                               f"{self.dim}), not {embedder.name} (dim {embedder.dim})")
        embedder.match_gallery(self.crop, self.views)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes (adds, removes, a threshold) into one transaction: all of them land
        or, if the block fails or the process dies, none."""
        with self._store.write():
            yield

    def version(self) -> int:
        """How many writes the gallery has seen (from any process; 0 before the first): one
        tiny read that tells a cache whether it must look again."""
        return self._store.counters(DATA_VERSION)[0]

    def watch(self, changed: Callable[[], None]) -> Closeable | None:
        """Have `changed()` called, from another thread, as soon as anyone writes to the
        gallery (PostgreSQL); None where the database cannot tell (poll `version`)."""
        return self._store.watch(changed)

    @property
    def threshold(self) -> float | None:
        """Accept a face when its distance is <= this (read fresh: another process may set it)."""
        rows = self._store.read("SELECT value FROM meta WHERE key = 'threshold'")
        if not rows:
            return None
        try:
            return check_threshold(float(rows[0][0]))
        except (TypeError, ValueError, FacecnnError):
            problem = damaged("threshold", rows[0][0], "a positive number")
            raise FacecnnError(f"{self.location}: {problem}") from None

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        """Store a threshold chosen by hand (None forgets it)."""
        self.set_threshold(value, "manual")

    @property
    def threshold_source(self) -> str | None:
        """How the stored threshold was chosen: calibrated, manual or default (None: no
        threshold; galleries from before this was recorded count as calibrated)."""
        found = dict(self._store.read("SELECT key, value FROM meta WHERE key IN ('threshold', "
                                      "'threshold_source')"))
        if "threshold" not in found:
            return None
        return found.get("threshold_source", "calibrated")

    @property
    def target_far(self) -> float | None:
        """The share of strangers' faces the stored threshold was calibrated to name (None:
        it was not calibrated, or before this was recorded), which later calibrations keep."""
        rows = self._store.read("SELECT value FROM meta WHERE key = 'target_far'")
        if not rows:
            return None
        try:
            far = float(rows[0][0])
        except (TypeError, ValueError):
            far = -1.0
        if not 0 <= far < 1:
            raise FacecnnError(f"{self.location}: "
                               f"{damaged('target_far', rows[0][0], 'a number in [0, 1)')}")
        return far

    def set_threshold(self, value: float | None, source: str,
                      target_far: float | None = None) -> None:
        """Store a threshold and how it was chosen (one of THRESHOLD_SOURCES), with the share
        of strangers a calibrated one was chosen for."""
        if source not in THRESHOLD_SOURCES:
            raise FacecnnError(f"threshold source must be one of {THRESHOLD_SOURCES}")
        value = None if value is None else check_threshold(value)
        with self._store.write() as db:
            db.execute(_FORGET_THRESHOLD, THRESHOLD_META)
            if value is not None:
                kept = [("threshold", repr(value)), ("threshold_source", source)]
                if target_far is not None:
                    kept.append(("target_far", repr(float(target_far))))
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", kept)

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] != self.dim:
            raise FacecnnError(f"{what} must have shape (N, {self.dim}) with N >= 1, "
                               f"got {v.shape}")
        if not np.isfinite(v).all():
            raise FacecnnError(f"{what} contain NaN or infinite values")
        return v

    def _unpack(self, blobs: list[bytes]) -> np.ndarray:
        """Stored vectors as an (N, dim) array; one line if any has the wrong length."""
        size = self.dim * _STORED.itemsize
        bad = sum(len(blob) != size for blob in blobs)
        if bad:
            raise FacecnnError(f"{self.location}: {bad} of the {len(blobs)} face vectors stored "
                               f"are not {self.dim} float32 values ({size} bytes): was the "
                               f"embeddings table edited by hand?")
        vectors = np.frombuffer(b"".join(blobs), dtype=_STORED).astype(np.float32)
        return vectors.reshape(-1, self.dim)

    @staticmethod
    def _person_id(db: Store, name: str) -> int:
        row = db.execute("SELECT id FROM people WHERE name = ?",
                         (unicodedata.normalize("NFC", name),)).fetchone()
        if row is None:
            raise NotInGallery(f"no such person in gallery: {name!r}")
        return row[0]

    @staticmethod
    def _check_new_name(db: Store, name: str) -> None:
        """Refuse a new person whose name reads as an existing one's ("Ana" beside "ana")."""
        key = name_key(name)
        for (other,) in db.execute("SELECT name FROM people WHERE name != ?", (name,)):
            if name_key(other) == key:
                raise FacecnnError(f"{name!r} looks like the existing person {other!r}: use "
                                   f"that name, or rename them first")

    def add(self, name: str, vectors: np.ndarray, sources: list[str] | None = None,
            hashes: list[str | None] | None = None, boxes: list | None = None,
            thumbnails: list[bytes | None] | None = None) -> int:
        """Enrol `name` (created if new) with more face vectors; returns how many were added.

        `hashes` are the content hashes of the photos the faces came from: a face whose photo
        is already in the gallery (under anyone's name) is skipped, not added twice. `boxes`
        (in the photos' pixels) and `thumbnails` (JPEG bytes) let each face be seen and fixed
        later (gallery/faces.py).
        """
        name = check_name(name)
        v = self._check_vectors(vectors, "vectors")
        given = {"sources": sources, "hashes": hashes, "boxes": boxes, "thumbnails": thumbnails}
        for what, values in given.items():
            if values is not None and len(values) != len(v):
                raise FacecnnError(f"{len(values)} {what} given for {len(v)} vectors")
        none = [None] * len(v)
        boxes = [box_text(b) for b in boxes] if boxes is not None else none
        extra = (", box, thumbnail", ", ?, ?") if self._stored else ("", "")
        created = now()
        with self._store.write() as db:
            if not db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
                self._check_new_name(db, name)
                db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, created))
            pid = self._person_id(db, name)
            added = db.executemany(
                f"INSERT INTO embeddings (person_id, vector, source, created, content_hash"
                f"{extra[0]}) VALUES (?, ?, ?, ?, ?{extra[1]}) ON CONFLICT (content_hash) DO "
                f"NOTHING",
                [(pid, row.astype(_STORED).tobytes(), src, created, digest,
                  *((box, thumb) if self._stored else ()))
                 for row, src, digest, box, thumb in zip(v, sources or none, hashes or none,
                                                         boxes, thumbnails or none)])
            if added == 0:
                entries.drop_if_faceless(db, pid)  # no face, no person
        return added

    def faces_of(self, name: str) -> list[FaceEntry]:
        """A person's faces, as enrolled: id, photo, box, when, whether a thumbnail is kept."""
        with self._store.snapshot() as db:
            return entries.of_person(db, self._stored, self._person_id(db, name))

    def thumbnail(self, name: str, face: int) -> bytes | None:
        """The JPEG thumbnail of `name`'s face `face` (None: enrolled before they were kept)."""
        with self._store.snapshot() as db:
            entries.chosen(db, self._stored, name, self._person_id(db, name), [face])
            if not self._stored:
                return None
            (blob,) = db.execute("SELECT thumbnail FROM embeddings WHERE id = ?",
                                 (face,)).fetchone()
        return None if blob is None else bytes(blob)

    def forget(self, name: str, ids: list[int]) -> list[FaceEntry]:
        """Remove some of `name`'s faces (ids from `faces_of`) in one transaction; a person
        left with no face goes too. Returns the faces removed."""
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, name)
            gone = entries.chosen(db, self._stored, name, pid, ids)
            db.executemany("DELETE FROM embeddings WHERE id = ?", [(f.id,) for f in gone])
            entries.drop_if_faceless(db, pid)
        return gone

    def move(self, name: str, ids: list[int], to: str) -> list[FaceEntry]:
        """Move some of `name`'s faces to `to` (created if new), in one transaction; a person
        left with no face goes. Returns the faces moved."""
        to = check_name(to)
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, name)
            moved = entries.chosen(db, self._stored, name, pid, ids)
            if not db.execute("SELECT 1 FROM people WHERE name = ?", (to,)).fetchone():
                self._check_new_name(db, to)
                db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (to, now()))
            target = self._person_id(db, to)
            if target == pid:
                raise FacecnnError(f"these faces are {name!r}'s already")
            db.executemany("UPDATE embeddings SET person_id = ? WHERE id = ?",
                           [(target, f.id) for f in moved])
            entries.drop_if_faceless(db, pid)
        for face in moved:
            face.person = to
        return moved

    def known_photos(self, hashes: list[str]) -> dict[str, str]:
        """content hash -> person, for the given photo hashes already in the gallery."""
        found: dict[str, str] = {}
        for start in range(0, len(hashes), 500):  # SQLite caps the parameters of a statement
            chunk = hashes[start:start + 500]
            found.update(self._store.read(
                f"SELECT e.content_hash, p.name FROM embeddings e JOIN people p ON "
                f"p.id = e.person_id WHERE e.content_hash IN ({', '.join('?' * len(chunk))})",
                tuple(chunk)))
        return found

    def remove(self, name: str) -> int:
        """Remove a person and all their vectors; returns how many vectors went."""
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, name)
            count = db.execute("DELETE FROM embeddings WHERE person_id = ?", (pid,)).rowcount
            db.execute("DELETE FROM people WHERE id = ?", (pid,))
        return count

    def rename(self, old: str, new: str) -> None:
        """Rename a person, keeping their vectors."""
        new = check_name(new)
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, old)
            if db.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise FacecnnError(f"a person named {new!r} already exists")
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
            self._check_new_name(db, new)  # after the update: the old name reads as `new`

    def merge(self, name: str, others: list[str]) -> int:
        """Fix one person enrolled under several names: every face of `others` moves to
        `name` and they go, in one transaction; returns how many faces moved."""
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, name)
            moved = 0
            for other in others:
                oid = self._person_id(db, other)
                if oid == pid:
                    raise FacecnnError(f"cannot merge {name!r} into itself")
                moved += db.execute("UPDATE embeddings SET person_id = ? WHERE person_id = ?",
                                    (pid, oid)).rowcount
                db.execute("DELETE FROM people WHERE id = ?", (oid,))
        return moved

    def split(self, name: str, parts: int, names: list[str] | None = None,
              seed: int = 0) -> dict[str, list[str | None]]:
        """Fix several people enrolled as one: `name`'s faces grouped by k-means
        (scikit-learn) into `parts`, in one transaction. The biggest group keeps the name;
        the others, biggest first, become `names` (new people) or NAME_2, NAME_3... (the next
        free ones). Returns person -> the sources of their faces, as enrolled."""
        given = [check_name(n) for n in names or []]
        if parts < 2:
            raise FacecnnError(f"split into at least 2 people, not {parts}")
        if names is not None and len(given) != parts - 1:
            raise FacecnnError(f"{len(given)} names given for the {parts - 1} new people")
        if len({name_key(n) for n in [name, *given]}) != len(given) + 1:
            raise FacecnnError("the new people's names must differ from each other and from "
                               f"{name!r}")
        with self._store.write(rewrites=True) as db:
            pid = self._person_id(db, name)
            rows = db.execute("SELECT id, vector, source FROM embeddings WHERE person_id = ? "
                              "ORDER BY id", (pid,)).fetchall()
            if len(rows) < parts:
                raise FacecnnError(f"{name!r} has {len(rows)} faces: too few to split into "
                                   f"{parts}")
            groups = _kmeans(self._unpack([r[1] for r in rows]), parts, seed)
            created = now()
            found = {name: [rows[i][2] for i in groups[0]]}
            for k, members in enumerate(groups[1:]):
                new = given[k] if given else self._free_name(db, name)
                if db.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                    raise FacecnnError(f"a person named {new!r} already exists: split into new "
                                       "names, then merge")
                self._check_new_name(db, new)
                db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (new, created))
                db.executemany("UPDATE embeddings SET person_id = ? WHERE id = ?",
                               [(self._person_id(db, new), rows[i][0]) for i in members])
                found[new] = [rows[i][2] for i in members]
        return found

    def _free_name(self, db: Store, name: str) -> str:
        """NAME_2, NAME_3...: the first that reads as nobody's name yet."""
        taken = {name_key(n) for (n,) in db.execute("SELECT name FROM people")}
        k = 2
        while name_key(f"{name}_{k}") in taken:
            k += 1
        return check_name(f"{name}_{k}")

    def faces(self, ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """Embedding id -> (person, source) for those of `ids` in the gallery (what a search
        index's `nearest` finds, told by name and photo)."""
        found: dict[int, tuple[str, str | None]] = {}
        for start in range(0, len(ids), 500):  # SQLite caps the parameters of a statement
            chunk = [int(i) for i in ids[start:start + 500]]
            for face, name, source in self._store.read(
                    f"SELECT e.id, p.name, e.source FROM embeddings e JOIN people p ON "
                    f"p.id = e.person_id WHERE e.id IN ({', '.join('?' * len(chunk))})",
                    tuple(chunk)):
                found[int(face)] = (name, source)
        return found

    def people(self) -> list[tuple[str, int]]:
        """(name, embedding count) for everyone, sorted by name (code point order: the same
        whatever the database's collation)."""
        return sorted((name, count) for name, count in self._store.read(
            "SELECT p.name, count(e.id) FROM people p LEFT JOIN embeddings e "
            "ON e.person_id = p.id GROUP BY p.id, p.name"))

    def vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(vectors (M, dim) float32, person index per row (M,), names sorted), one snapshot;
        rows by person, then as enrolled."""
        return self._vectors_at()[1]

    def _vectors_at(self) -> tuple[int, tuple[np.ndarray, np.ndarray, list[str]]]:
        """`vectors()` and the change count they were read at, from one snapshot."""
        with self._store.snapshot() as db:
            (version,) = db.counters(DATA_VERSION)
            rows = db.execute("SELECT p.name, e.vector FROM embeddings e JOIN people p "
                              "ON p.id = e.person_id ORDER BY e.id").fetchall()
        names = sorted({name for name, _ in rows})
        index = {name: i for i, name in enumerate(names)}
        owners = np.array([index[name] for name, _ in rows], dtype=np.int64)
        order = np.argsort(owners, kind="stable")
        return version, (self._unpack([blob for _, blob in rows])[order], owners[order], names)

    def identify(self, queries: np.ndarray, *, threshold: float | None = None) -> list[Match]:
        """Name each query face by the gallery's metric, or UNKNOWN when even the best match
        is beyond the threshold (as search.py judges it: with the lead over the next person
        where the metric counts one); score >= 0.5 exactly when accepted.
        """
        q = self._check_vectors(queries, "queries")
        t = self.resolve_threshold(threshold)
        refs, owners, names = self.vectors()
        if not names:
            raise FacecnnError(f"gallery is empty: {self.location}; add people first")
        return search.identify(q, refs, owners, names, t, self.metric, self.length)

    def resolve_threshold(self, threshold: float | None = None) -> float:
        """`threshold` if given, else the stored one (read fresh), checked either way."""
        t = self.threshold if threshold is None else threshold
        if t is None:
            raise FacecnnError(f"no threshold: run calibration on {self.location} or pass one")
        return check_threshold(t)

    def rows(self, after: int = 0) -> Rows:
        """The rows with embedding id > `after`, in id order, and the change counters, all from
        one snapshot: what a search index needs to build itself and to stay current."""
        with self._store.snapshot() as db:
            version, rewritten = db.counters(DATA_VERSION, REWRITE_VERSION)
            rows = db.execute(
                "SELECT e.id, p.name, e.vector FROM embeddings e JOIN people p "
                "ON p.id = e.person_id WHERE e.id > ? ORDER BY e.id", (after,)).fetchall()
        return Rows(version, rewritten, np.array([r[0] for r in rows], dtype=np.int64),
                    self._unpack([r[2] for r in rows]), [r[1] for r in rows])

    def calibrate(self, target_far: float = 0.01, cohort: np.ndarray | None = None,
                  ceiling: float | None = None) -> dict:
        """Choose and store a threshold by leave-one-out over the enrolled vectors and, given a
        `cohort` of strangers' vectors, by how near strangers come, never above `ceiling`
        (gallery/calibrate.py).

        The threshold is stored only if nobody wrote to the gallery while it was computed;
        else it is computed again from what the gallery holds now (CALIBRATION_TRIES times at
        most, then stored as it is), so a slow calibration in one process never overwrites the
        newer one of another.
        """
        for _ in range(CALIBRATION_TRIES):
            inside = self._store.writing  # in a caller's write (enroll's): nobody can race it
            version, vectors = self._vectors_at()
            report = calibrate.calibrate(*vectors, target_far, cohort, self.location,
                                         self.metric, self.length, ceiling)
            try:
                with self._store.write() as db:
                    # + 1: this write's own bump
                    if not inside and db.counters(DATA_VERSION)[0] != version + 1:
                        raise _ChangedMeanwhile
                    self.set_threshold(report["threshold"], "calibrated", target_far)
                return report
            except _ChangedMeanwhile:
                continue
        self.set_threshold(report["threshold"], "calibrated", target_far)
        return report

    def contents(self) -> Contents:
        """Everything `load` needs to make an exact copy of this gallery elsewhere."""
        with self._store.snapshot() as db:
            meta = dict(db.execute(f"SELECT key, value FROM meta WHERE key IN "
                                   f"({', '.join('?' * len(COPIED_META))})", COPIED_META))
            people = [tuple(r) for r in db.execute(
                "SELECT name, created FROM people ORDER BY id").fetchall()]
            kept = "e.box, e.thumbnail" if self._stored else "NULL, NULL"
            rows = [(r[0], bytes(r[1]), *r[2:6], None if r[6] is None else bytes(r[6]))
                    for r in db.execute(
                        f"SELECT p.name, e.vector, e.source, e.created, e.content_hash, {kept} "
                        f"FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY e.id"
                        ).fetchall()]
        return Contents(meta, people, rows)

    def load(self, contents: Contents) -> None:
        """Fill this empty gallery with another's contents, in one transaction: the same
        vectors (bit for bit), names, sources, photo hashes, crop and threshold."""
        with self._store.write(rewrites=True) as db:
            (count,) = db.execute("SELECT count(*) FROM people").fetchone()
            if count:
                raise FacecnnError(f"{self.location} already holds {count} people; copy into "
                                   f"a new or empty gallery")
            db.execute(_FORGET_THRESHOLD, THRESHOLD_META)
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
                           "UPDATE SET value = excluded.value", list(contents.meta.items()))
            db.executemany("INSERT INTO people (name, created) VALUES (?, ?)", contents.people)
            ids = dict(db.execute("SELECT name, id FROM people").fetchall())
            if not self._stored:
                raise FacecnnError(f"{self.location} is read-only and older than schema "
                                   f"{SCHEMA_VERSION}: copy into a gallery that can be written")
            db.executemany("INSERT INTO embeddings (person_id, vector, source, created, "
                           "content_hash, box, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(ids[name], *rest) for name, *rest in contents.faces])
        self.embedder, self.dim, self.crop = parse_meta(contents.meta)
        self.views = parse_views(contents.meta)
        self.metric = parse_metric(contents.meta)

    def close(self) -> None:
        """Close the connection."""
        self._store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kmeans(vectors: np.ndarray, parts: int, seed: int) -> list[np.ndarray]:
    """Row indices of `parts` k-means groups, biggest first (ties: the earliest face)."""
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=parts, n_init=10, random_state=seed).fit_predict(vectors)
    groups = [np.flatnonzero(labels == k) for k in range(parts)]
    if any(len(rows) == 0 for rows in groups):  # fewer distinct faces than parts
        raise FacecnnError(f"these faces do not make {parts} different groups")
    return sorted(groups, key=lambda rows: (-len(rows), rows[0]))


def open_gallery(value: Where, *, busy_timeout: float = BUSY_TIMEOUT) -> Gallery:
    """The existing gallery a --gallery value names: a SQLite file's path or a postgresql://
    URL (what the CLI and the server open)."""
    return Gallery.open(value, busy_timeout=busy_timeout)



def copy_gallery(source: Where, destination: Where) -> tuple[int, int]:
    """`facecnn gallery copy`: the gallery at `source` copied exactly (vectors bit for bit,
    names, sources, photo hashes, crop, threshold) into `destination`, which is created if
    missing and must hold nobody (either store, either way); returns (people, faces)."""
    with open_gallery(source) as src:
        contents = src.contents()
        made = src.embedder, src.dim, src.crop, src.views
    with Gallery.open_or_create(destination, *made) as dst:
        dst.load(contents)
    return len(contents.people), len(contents.faces)
