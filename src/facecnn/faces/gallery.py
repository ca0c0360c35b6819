"""A face gallery in one SQLite file: people, their embeddings, and a calibrated threshold.

The file is the single source of truth (search indexes are caches of it), so every write is
one transaction, and several threads or processes may share it (WAL journal, busy timeout).
Every write also bumps a change counter in the same transaction, so a cache learns whether it
is still current from one tiny read (see `Gallery.version`).

A face remembers the content hash of the photo it came from, and one photo gives at most
one face: enrolling a folder twice (a rerun after an interrupted enroll, two enrolls at once)
adds nothing the second time instead of duplicating every face.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.calibration import StrangerModel, calibrate_threshold, open_set_threshold
from facecnn.faces.names import UNKNOWN, check_name, name_key
from facecnn.faces.threshold import check_threshold

if TYPE_CHECKING:
    from facecnn.faces.embedders import Embedder

SCHEMA_VERSION = 2
_STORED = np.dtype("<f4")  # vectors are stored as little-endian float32 bytes
_BLOCK_ELEMS = 1 << 22  # distance matrices are built in blocks of at most this many entries
# meta keys: the change counter, and its value at the last write that changed or dropped rows
_DATA_VERSION, _REWRITE_VERSION = "data_version", "rewrite_version"
# Where the stored threshold came from: a later enroll recalibrates only what it calibrated.
THRESHOLD_SOURCES = ("calibrated", "manual", "default")
BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's write transaction

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL, source TEXT, created TEXT, content_hash TEXT);
CREATE INDEX embeddings_person ON embeddings(person_id);
CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash);
"""
# Version 1 -> 2: faces keyed by the content hash of their photo (NULL for older faces).
_MIGRATE_1 = """
ALTER TABLE embeddings ADD COLUMN content_hash TEXT;
CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"""


@dataclass
class Match:
    """One query's answer; `name` is UNKNOWN when the nearest face is beyond the threshold."""

    name: str
    distance: float
    score: float


def match(name: str, distance: float, threshold: float) -> Match:
    """The answer for a query whose nearest face (of `name`) is `distance` away: UNKNOWN beyond
    the threshold; score = 1 - distance / (2 * threshold), so >= 0.5 exactly when accepted."""
    accepted = distance <= threshold
    score = round(max(0.0, 1.0 - distance / (2 * threshold)), 4)
    return Match(name if accepted else UNKNOWN, float(distance),
                 score if accepted else min(score, 0.4999))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _distances(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Euclidean distances (float64, so an enrolled vector is at distance ~0 from itself)."""
    q, r = queries.astype(np.float64), refs.astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * q @ r.T
    return np.sqrt(np.clip(d2, 0.0, None))


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between a[i] and b[i], in float64 from the differences, row by row: a
    pair's distance never depends on which other faces were searched with it (the matrix
    product in `_distances` does, by an ulp), so every search reports the same number."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt(np.square(diff).sum(1))


def _blocks(rows: int, cols: int) -> Iterator[slice]:
    """Row slices that keep a (rows, cols) distance matrix within memory bounds."""
    step = max(1, _BLOCK_ELEMS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _initial_meta(embedder: str, dim: int, crop: dict | None) -> dict[str, str]:
    if not embedder or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise FacecnnError(f"invalid embedder/dim: {embedder!r}/{dim!r}")
    return {"schema_version": str(SCHEMA_VERSION), "embedder": embedder, "dim": str(int(dim)),
            "crop": json.dumps(crop or {}, sort_keys=True), "metric": "euclidean",
            "created": _now()}


def _damaged(key: str, value: object, wanted: str) -> FacecnnError:
    return FacecnnError(f"gallery meta {key!r} holds {value!r}, not {wanted} (was the meta "
                        f"table edited by hand?)")


def _meta_int(key: str, value: object, minimum: int = 0) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = minimum - 1
    if number < minimum:
        raise _damaged(key, value, f"an integer >= {minimum}")
    return number


def _counters(db: sqlite3.Connection, *keys: str) -> list[int]:
    """Change counters from meta; 0 where missing (galleries made before they existed)."""
    found = dict(db.execute(f"SELECT key, value FROM meta WHERE key IN "
                            f"({', '.join('?' * len(keys))})", keys).fetchall())
    return [_meta_int(key, found.get(key, 0)) for key in keys]


def _parse_meta(meta: dict[str, str]) -> tuple[str, int, dict]:
    """(embedder, dim, crop) of a meta table, each checked: one line when one is damaged."""
    embedder = meta.get("embedder")
    if not isinstance(embedder, str) or not embedder.strip():
        raise _damaged("embedder", embedder, "an embedder name")
    dim = _meta_int("dim", meta.get("dim"), minimum=1)
    try:
        crop = json.loads(meta.get("crop") or "{}")
    except ValueError:
        crop = None
    if not isinstance(crop, dict):
        raise _damaged("crop", meta.get("crop"), "a JSON object")
    return embedder, dim, crop


def _migrate(conn: sqlite3.Connection) -> int:
    """Bring a version-1 gallery to this version in one transaction; returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1":
            for statement in filter(str.strip, _MIGRATE_1.split(";")):
                conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return SCHEMA_VERSION


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


def _distinct(vecs: np.ndarray, owners: np.ndarray,
              names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each (person, vector) once; a vector enrolled under two people is nobody's (it cannot
    tell them apart, and would be an impostor at distance 0)."""
    if len(vecs) == 0:
        return vecs, owners, names
    _, first, inverse = np.unique(vecs, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    owner_sets = np.zeros(len(first), dtype=np.int64) - 1
    clash = np.zeros(len(first), dtype=bool)
    for row, group in enumerate(inverse):
        if owner_sets[group] == -1:
            owner_sets[group] = owners[row]
        elif owner_sets[group] != owners[row]:
            clash[group] = True
    keep = np.sort(first[~clash])
    return vecs[keep], owners[keep], names


def _summary(x: np.ndarray) -> dict:
    return {k: round(float(f(x)), 4) for k, f in
            (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))}


class Gallery:
    """People and their face embeddings in one SQLite file; use create/open/open_or_create."""

    def __init__(self, path: Path, conn: sqlite3.Connection, meta: dict[str, str]) -> None:
        """Use create/open/open_or_create; this only parses the meta table."""
        self.path = path
        self._conn = conn
        # One connection shared by threads: one user at a time. Re-entrant, so a write inside
        # `batch()` and a read of what it wrote can nest.
        self._lock = threading.RLock()
        self._depth = 0  # nesting of open write transactions (see _write)
        self._rewrites = False
        self.embedder, self.dim, self.crop = _parse_meta(meta)

    @classmethod
    def create(cls, path: Path, embedder: str, dim: int, crop: dict | None = None) -> Gallery:
        """Start a new gallery; refuses to touch an existing file."""
        path = Path(path)
        if path.exists():
            raise FacecnnError(f"gallery already exists: {path}")
        return cls._connect(path, (embedder, dim, crop))

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> Gallery:
        """Open an existing gallery; a write waits up to `busy_timeout` seconds for another
        process's write to finish (a server answers sooner than a batch job must)."""
        path = Path(path)
        if not path.is_file():
            raise FacecnnError(f"gallery not found: {path}")
        return cls._connect(path, None, busy_timeout)

    @classmethod
    def open_or_create(cls, path: Path, embedder: str, dim: int,
                       crop: dict | None = None) -> Gallery:
        """Open the gallery, creating it if needed; embeddings from different models never mix
        (the gallery keeps the name of the embedder that made it; embedders of one family, as
        dlib's network run by dlib or PyTorch, share galleries)."""
        from facecnn.faces.embedders import same_vectors

        gallery = cls._connect(Path(path), (embedder, dim, crop))
        if not same_vectors(gallery.embedder, embedder) or gallery.dim != dim:
            gallery.close()
            raise FacecnnError(f"{path} was made with embedder {gallery.embedder} (dim "
                               f"{gallery.dim}); refusing to mix with {embedder} (dim {dim})")
        return gallery

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder whose vectors do not mix with this gallery's, and have it cut
        chips as this gallery's faces were cut."""
        from facecnn.faces.embedders import same_vectors

        if not same_vectors(embedder.name, self.embedder) or embedder.dim != self.dim:
            raise FacecnnError(f"gallery {self.path} was made with {self.embedder} (dim "
                               f"{self.dim}), not {embedder.name} (dim {embedder.dim})")
        embedder.match_gallery(self.crop)

    @classmethod
    def _connect(cls, path: Path, init: tuple[str, int, dict | None] | None,
                 busy_timeout: float = BUSY_TIMEOUT) -> Gallery:
        """Connect, write the schema if `init` is given and the file is empty, then validate.

        The emptiness check and the schema share one IMMEDIATE transaction, so two processes
        racing to create the same gallery end up with one schema instead of an error.
        """
        if init is not None:
            meta = _initial_meta(*init)  # before touching the disk: bad arguments leave no file
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            if init is not None:
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)  # not executescript: it would commit first
                    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                conn.execute("COMMIT")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            version = _meta_int("schema_version", meta.get("schema_version"), minimum=1)
            if version == 1:
                meta["schema_version"] = str(_migrate(conn))
            elif version != SCHEMA_VERSION:
                raise FacecnnError(f"schema_version is {version}, this facecnn reads 1 to "
                                   f"{SCHEMA_VERSION} (was it made by a newer facecnn?)")
            gallery = cls(path, conn, meta)
            conn.execute("PRAGMA journal_mode=WAL")  # only now: never convert a foreign file
            conn.execute("PRAGMA foreign_keys=ON")
            return gallery
        except BaseException as e:
            conn.close()
            if isinstance(e, FacecnnError):
                raise FacecnnError(f"{path}: {e}") from None
            if isinstance(e, sqlite3.DatabaseError):
                raise FacecnnError(f"not a facecnn gallery: {path} ({e})") from None
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes (adds, removes, a threshold) into one transaction: all of them land
        or, if the block fails or the process dies, none."""
        with self._write():
            yield

    @contextmanager
    def _write(self, *, rewrites: bool = False) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the file's write lock up front, so concurrent
        writers queue on the busy timeout instead of failing half-way.

        It bumps the change counter with the write, and `rewrites` (a write that changes or
        drops existing rows, not only adds some) records the new count as the rewrite version.
        """
        with self._lock:
            if self._depth:  # inside batch(): the outer transaction commits once
                self._rewrites |= rewrites
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth, self._rewrites = 1, rewrites
            try:
                yield self._conn
                self._conn.execute("INSERT INTO meta VALUES (?, 1) ON CONFLICT(key) DO UPDATE "
                                   "SET value = value + 1", (_DATA_VERSION,))
                if self._rewrites:
                    self._conn.execute("INSERT OR REPLACE INTO meta SELECT ?, value FROM meta "
                                       "WHERE key = ?", (_REWRITE_VERSION, _DATA_VERSION))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """One statement is one read transaction, hence one consistent snapshot."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def version(self) -> int:
        """How many writes the file has seen (from any process; 0 before the first): one tiny
        read that tells a cache whether it must look again."""
        with self._lock:
            return _counters(self._conn, _DATA_VERSION)[0]

    @property
    def threshold(self) -> float | None:
        """Accept a face when its distance is <= this (read fresh: another process may set it)."""
        rows = self._read("SELECT value FROM meta WHERE key = 'threshold'")
        if not rows:
            return None
        try:
            return check_threshold(float(rows[0][0]))
        except (TypeError, ValueError, FacecnnError):
            damaged = _damaged("threshold", rows[0][0], "a positive number")
            raise FacecnnError(f"{self.path}: {damaged}") from None

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        """Store a threshold chosen by hand (None forgets it)."""
        self.set_threshold(value, "manual")

    @property
    def threshold_source(self) -> str | None:
        """How the stored threshold was chosen: calibrated, manual or default (None: no
        threshold; galleries from before this was recorded count as calibrated)."""
        rows = self._read("SELECT key, value FROM meta WHERE key IN ('threshold', "
                          "'threshold_source')")
        found = dict(rows)
        if "threshold" not in found:
            return None
        return found.get("threshold_source", "calibrated")

    def set_threshold(self, value: float | None, source: str) -> None:
        """Store a threshold and how it was chosen (one of THRESHOLD_SOURCES)."""
        if source not in THRESHOLD_SOURCES:
            raise FacecnnError(f"threshold source must be one of {THRESHOLD_SOURCES}")
        value = None if value is None else check_threshold(value)
        with self._write() as db:
            db.execute("DELETE FROM meta WHERE key IN ('threshold', 'threshold_source')")
            if value is not None:
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("threshold", repr(value)), ("threshold_source", source)])

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] != self.dim:
            raise FacecnnError(f"{what} must have shape (N, {self.dim}) with N >= 1, "
                               f"got {v.shape}")
        if not np.isfinite(v).all():
            raise FacecnnError(f"{what} contain NaN or infinite values")
        return v

    def _person_id(self, db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM people WHERE name = ?",
                         (unicodedata.normalize("NFC", name),)).fetchone()
        if row is None:
            raise FacecnnError(f"no such person in gallery: {name!r}")
        return row[0]

    def _check_new_name(self, db: sqlite3.Connection, name: str) -> None:
        """Refuse a new person whose name reads as an existing one's ("Ana" beside "ana")."""
        key = name_key(name)
        for (other,) in db.execute("SELECT name FROM people WHERE name != ?", (name,)):
            if name_key(other) == key:
                raise FacecnnError(f"{name!r} looks like the existing person {other!r}: use "
                                   f"that name, or rename them first")

    def add(self, name: str, vectors: np.ndarray, sources: list[str] | None = None,
            hashes: list[str | None] | None = None) -> int:
        """Enrol `name` (created if new) with more face vectors; returns how many were added.

        `hashes` are the content hashes of the photos the faces came from: a face whose photo
        is already in the gallery (under anyone's name) is skipped, not added twice.
        """
        name = check_name(name)
        v = self._check_vectors(vectors, "vectors")
        for given, what in ((sources, "sources"), (hashes, "hashes")):
            if given is not None and len(given) != len(v):
                raise FacecnnError(f"{len(given)} {what} given for {len(v)} vectors")
        now = _now()
        with self._write() as db:
            if not db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
                self._check_new_name(db, name)
                db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, now))
            pid = self._person_id(db, name)
            before = db.total_changes
            db.executemany(
                "INSERT INTO embeddings (person_id, vector, source, created, content_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(content_hash) DO NOTHING",
                [(pid, row.astype(_STORED).tobytes(), src, now, digest) for row, src, digest
                 in zip(v, sources or [None] * len(v), hashes or [None] * len(v))])
            added = db.total_changes - before
            if added == 0 and not db.execute("SELECT 1 FROM embeddings WHERE person_id = ?",
                                             (pid,)).fetchone():
                db.execute("DELETE FROM people WHERE id = ?", (pid,))  # no face, no person
        return added

    def known_photos(self, hashes: list[str]) -> dict[str, str]:
        """content hash -> person, for the given photo hashes already in the gallery."""
        found: dict[str, str] = {}
        for start in range(0, len(hashes), 500):  # SQLite caps the parameters of a statement
            chunk = hashes[start:start + 500]
            found.update(self._read(
                f"SELECT e.content_hash, p.name FROM embeddings e JOIN people p ON "
                f"p.id = e.person_id WHERE e.content_hash IN ({', '.join('?' * len(chunk))})",
                tuple(chunk)))
        return found

    def remove(self, name: str) -> int:
        """Remove a person and all their vectors; returns how many vectors went."""
        with self._write(rewrites=True) as db:
            pid = self._person_id(db, name)
            count = db.execute("DELETE FROM embeddings WHERE person_id = ?", (pid,)).rowcount
            db.execute("DELETE FROM people WHERE id = ?", (pid,))
        return count

    def rename(self, old: str, new: str) -> None:
        """Rename a person, keeping their vectors."""
        new = check_name(new)
        with self._write(rewrites=True) as db:
            pid = self._person_id(db, old)
            if db.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise FacecnnError(f"a person named {new!r} already exists")
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
            self._check_new_name(db, new)  # after the update: the old name reads as `new`

    def people(self) -> list[tuple[str, int]]:
        """(name, embedding count) for everyone, sorted by name."""
        return self._read("SELECT p.name, count(e.id) FROM people p LEFT JOIN embeddings e "
                          "ON e.person_id = p.id GROUP BY p.id ORDER BY p.name")

    def vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(vectors (M, dim) float32, person index per row (M,), names sorted), one snapshot."""
        rows = self._read("SELECT p.name, e.vector FROM embeddings e JOIN people p "
                          "ON p.id = e.person_id ORDER BY p.name, e.id")
        names = sorted({name for name, _ in rows})
        index = {name: i for i, name in enumerate(names)}
        flat = np.frombuffer(b"".join(blob for _, blob in rows), dtype=_STORED)
        owners = np.array([index[name] for name, _ in rows], dtype=np.int64)
        return flat.astype(np.float32).reshape(-1, self.dim), owners, names

    def identify(self, queries: np.ndarray, *, threshold: float | None = None,
                 mode: str = "nearest") -> list[Match]:
        """Name each query face, or UNKNOWN when even the best match is beyond the threshold.

        mode "nearest" compares with every enrolled vector, "mean" with each person's mean.
        score = 1 - distance / (2 * threshold), so score >= 0.5 exactly when accepted.
        """
        q = self._check_vectors(queries, "queries")
        if mode not in ("nearest", "mean"):
            raise FacecnnError(f"unknown identify mode {mode!r}; use 'nearest' or 'mean'")
        t = self.resolve_threshold(threshold)
        refs, owners, names = self.vectors()
        if not names:
            raise FacecnnError(f"gallery is empty: {self.path}; add people first")
        if mode == "mean":
            sums = np.zeros((len(names), self.dim), dtype=np.float64)
            np.add.at(sums, owners, refs)
            refs = sums / np.bincount(owners)[:, None]
            owners = np.arange(len(names))
        matches = []
        for rows in _blocks(len(q), len(refs)):
            best = _distances(q[rows], refs).argmin(1)
            for j, dist in zip(best, pair_distances(q[rows], refs[best])):
                matches.append(match(names[owners[j]], dist, t))
        return matches

    def resolve_threshold(self, threshold: float | None = None) -> float:
        """`threshold` if given, else the stored one (read fresh), checked either way."""
        t = self.threshold if threshold is None else threshold
        if t is None:
            raise FacecnnError(f"no threshold: run calibration on {self.path} or pass one")
        return check_threshold(t)

    def rows(self, after: int = 0) -> Rows:
        """The rows with embedding id > `after`, in id order, and the change counters, all from
        one snapshot: what a search index needs to build itself and to stay current."""
        with self._lock:
            self._conn.execute("BEGIN")  # deferred: the snapshot starts at the first read
            try:
                version, rewritten = _counters(self._conn, _DATA_VERSION, _REWRITE_VERSION)
                rows = self._conn.execute(
                    "SELECT e.id, p.name, e.vector FROM embeddings e JOIN people p "
                    "ON p.id = e.person_id WHERE e.id > ? ORDER BY e.id", (after,)).fetchall()
            finally:
                self._conn.execute("COMMIT")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        flat = np.frombuffer(b"".join(r[2] for r in rows), dtype=_STORED)
        return Rows(version, rewritten, ids, flat.astype(np.float32).reshape(-1, self.dim),
                    [r[1] for r in rows])

    def calibrate(self, target_far: float = 0.01, cohort: np.ndarray | None = None) -> dict:
        """Choose and store a threshold by leave-one-out over the enrolled vectors and, given a
        `cohort` of strangers' vectors, by how near strangers come (faces/calibration.py).

        Each vector's genuine distance is to its person's nearest other vector, its impostor
        distance to the nearest vector of anyone else. Exact copies of a vector (a photo
        enrolled twice before faces were keyed by their photo) count once: a genuine distance
        of 0 would pull the threshold down to nothing.
        """
        if not 0 <= target_far < 1:
            raise FacecnnError(f"target FAR must be in [0, 1), got {target_far}")
        vecs, owners, names = _distinct(*self.vectors())
        counts = np.bincount(owners, minlength=len(names))
        if len(set(owners.tolist())) < 2:
            raise FacecnnError(f"calibration needs at least two people; {self.path} has "
                               f"{len(set(owners.tolist()))}")
        if counts.max() < 2:
            raise FacecnnError("calibration needs at least one person with two or more faces")
        genuine, impostor = np.empty(len(vecs)), np.empty(len(vecs))
        for rows in _blocks(len(vecs), len(vecs)):
            d = _distances(vecs[rows], vecs)
            d[np.arange(d.shape[0]), np.arange(len(vecs))[rows]] = np.inf  # leave self out
            same = owners[rows, None] == owners[None, :]
            genuine[rows] = np.where(same, d, np.inf).min(1)
            impostor[rows] = np.where(same, np.inf, d).min(1)
        genuine = genuine[counts[owners] >= 2]
        with_cohort = cohort is not None and len(cohort) > 0
        # the cohort judges strangers; without one the gallery's own impostors must, leaning
        # away from them (open_set_threshold)
        own = (calibrate_threshold if with_cohort else open_set_threshold)(genuine, impostor,
                                                                           target_far)
        report: dict = {"target_far": target_far, "own_threshold": own}
        t = own
        if with_cohort:
            strangers = StrangerModel.of(cohort, vecs, owners)
            t = min(own, strangers.threshold(target_far))
            report["cohort"] = {"faces": strangers.cohort_faces,
                                "threshold": strangers.threshold(target_far),
                                "expected_far": strangers.rate(t)}
        self.set_threshold(t, "calibrated")
        return {"threshold": t, **report, "genuine": _summary(genuine),
                "impostor": _summary(impostor), "far": float(np.mean(impostor <= t)),
                "frr": float(np.mean(genuine > t)),
                "pairs": {"genuine": int(genuine.size), "impostor": int(impostor.size)}}

    def close(self) -> None:
        """Close the connection (WAL readers elsewhere keep working)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
