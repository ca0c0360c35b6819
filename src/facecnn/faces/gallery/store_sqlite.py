"""The gallery in one SQLite file: the embedded default.

Several threads or processes may share the file (WAL journal, busy timeout): a write takes the
file's write lock up front (BEGIN IMMEDIATE), so concurrent writers queue on the busy timeout
instead of failing half-way, and readers never wait.

A file that cannot be written (a read-only file system, an immutable file) opens read-only:
reads work, and a write says why it cannot. A new file appears with its first commit
(sqlite_new.py); what goes wrong with the file is one line naming the cause (sqlite_errors.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.meta import SCHEMA_VERSION, initial_meta, schema_version
from facecnn.faces.gallery.sqlite_errors import failure, read_only, translated, unwritable
from facecnn.faces.gallery.sqlite_new import Claim
from facecnn.faces.gallery.store import BUSY_TIMEOUT, Cursor, Store, statements

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL, source TEXT, created TEXT, content_hash TEXT, box TEXT,
    thumbnail BLOB);
CREATE INDEX embeddings_person ON embeddings(person_id);
CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash);
"""
# From each version to the next: 1 -> 2, faces keyed by the content hash of their photo;
# 2 -> 3, each face's box in its photo and a thumbnail (gallery/faces.py). NULL for older faces.
_MIGRATE = {1: """
ALTER TABLE embeddings ADD COLUMN content_hash TEXT;
CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
""", 2: """
ALTER TABLE embeddings ADD COLUMN box TEXT;
ALTER TABLE embeddings ADD COLUMN thumbnail BLOB;
UPDATE meta SET value = '3' WHERE key = 'schema_version';
"""}


def _connect(target: str | Path, timeout: float) -> sqlite3.Connection:
    """A connection to a file's path, or to a `file:` URI (a str)."""
    return sqlite3.connect(target, timeout=timeout, isolation_level=None,
                           check_same_thread=False, uri=isinstance(target, str))


def _read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection to `path`. Where SQLite cannot make the WAL's shared-memory file
    beside it (a read-only file system), an immutable one: safe while no WAL there holds
    commits still to merge, and none can be written there."""
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    conn = _connect(uri, timeout)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as e:
        conn.close()
        wal = Path(f"{path}-wal")
        if "unable to open" not in str(e) or (wal.exists() and wal.stat().st_size > 0):
            raise
    return _connect(f"{uri}&immutable=1", timeout)


def _version(path: Path, meta: dict[str, str]) -> int:
    try:
        return schema_version(meta)
    except FacecnnError as e:
        raise FacecnnError(f"{path}: {e}") from None


@dataclass
class _Result:
    """A statement's rows, all read while its failures are translated: a damaged page may lie
    past the first row."""

    rows: list[Any]
    rowcount: int

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class SqliteStore(Store):
    begin_write, begin_snapshot = "BEGIN IMMEDIATE", "BEGIN"  # deferred: snapshot at 1st read

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout: float,
                 claim: Claim | None = None) -> None:
        super().__init__()
        self.path, self.location = path, str(path)
        self._conn, self._busy_timeout = conn, busy_timeout
        self._claim = claim  # a new gallery, in memory until it is placed at `path`
        self._keep = True  # ...which closing places, unless a write to it failed

    @property
    def cache_path(self) -> Path:
        return Path(f"{self.path}.faiss")

    @property
    def cache_mode(self) -> int:
        return self.path.stat().st_mode & 0o777

    @classmethod
    def connect(cls, value: str | Path, init: tuple[str, int, dict | None] | None, *,
                new: bool = False,
                busy_timeout: float = BUSY_TIMEOUT) -> tuple[SqliteStore, dict[str, str]]:
        """Connect, write the schema if `init` is given and the file is new or empty, then
        validate; returns the store and the meta table. `new` refuses an existing file.

        A new file lands with the first commit, or at once for `new` (sqlite_new.py). A file
        that cannot be written opens read-only, and is refused where `init` is given (writes
        follow).
        """
        path = Path(value)
        if path.is_dir():
            raise FacecnnError(f"{path} is a folder, not a gallery file")
        if new and path.exists():
            raise FacecnnError(f"gallery already exists: {path}")
        if init is None and not path.is_file():
            raise FacecnnError(f"gallery not found: {path}")
        meta = initial_meta(*init) if init is not None else None  # bad arguments leave no file
        with translated(path):
            claim = Claim.take(path, busy_timeout) if meta is not None else None
        if claim is not None:
            return cls._create(path, claim, meta, new, busy_timeout), meta
        if new:  # made by another process meanwhile
            raise FacecnnError(f"gallery already exists: {path}")
        return cls._open(path, meta, busy_timeout)

    @classmethod
    def _create(cls, path: Path, claim: Claim, meta: dict[str, str], new: bool,
                busy_timeout: float) -> SqliteStore:
        """A new gallery in memory, placed at `path` with its first commit (at once if `new`:
        an empty gallery asked for)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(path, conn, busy_timeout, claim)
        try:
            conn.execute("BEGIN")
            for statement in statements(_SCHEMA):
                conn.execute(statement)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
            conn.execute("PRAGMA foreign_keys=ON")
            if new:
                store._place()
        except BaseException:
            store._keep = False
            store.close()
            raise
        return store

    @classmethod
    def _open(cls, path: Path, meta: dict[str, str] | None,
              busy_timeout: float) -> tuple[SqliteStore, dict[str, str]]:
        """An existing file; `meta` (a writer's) goes into an empty one, with the schema. The
        emptiness check and the schema share one IMMEDIATE transaction, so two processes
        racing to fill the same empty file end up with one schema instead of an error."""
        reason = unwritable(path)
        if reason and meta is not None:
            raise read_only(path, reason)
        conn = None
        try:
            conn = _read_only(path, busy_timeout) if reason else _connect(path, busy_timeout)
            store = cls(path, conn, busy_timeout)
            if meta is not None:
                with store._lock:
                    store._begin(store.begin_write)
                    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                        for statement in statements(_SCHEMA):
                            conn.execute(statement)
                        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                    store._end("COMMIT")
            found = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if _version(path, found) < SCHEMA_VERSION and not reason:
                found["schema_version"] = str(store._migrate())
            if not reason:
                conn.execute("PRAGMA journal_mode=WAL")  # only now: never convert a foreign file
            conn.execute("PRAGMA foreign_keys=ON")
            return store, found
        except BaseException as e:
            if conn is not None:
                conn.close()
            if isinstance(e, (sqlite3.Error, OSError)):
                raise (failure(path, e) or
                       FacecnnError(f"not a facecnn gallery: {path} ({e})")) from None
            raise

    def _migrate(self) -> int:
        """Bring an older gallery to this version in one transaction; returns the version."""
        with self._lock:
            self._begin(self.begin_write)
            try:
                version = int(self.execute("SELECT value FROM meta WHERE key = "
                                           "'schema_version'").fetchone()[0])
                for step in range(version, SCHEMA_VERSION):
                    for statement in statements(_MIGRATE[step]):
                        self.execute(statement)
            except BaseException:
                self._rollback()
                raise
            self._end("COMMIT")
        return SCHEMA_VERSION

    def execute(self, sql: str, params: Sequence = ()) -> Cursor:
        with translated(self.path):
            cursor = self._conn.execute(sql, params)
            return _Result(cursor.fetchall(), cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        with translated(self.path):
            return self._conn.executemany(sql, rows).rowcount

    def _commit(self) -> None:
        """A COMMIT that fails (the disk full) rolls back instead of leaving its transaction
        open; a new gallery's file lands with its first commit."""
        try:
            super()._commit()
        except BaseException:
            self._rollback()
            raise
        if self._claim is not None:
            self._place()

    def _rollback(self) -> None:
        self._keep = False
        if self._conn.in_transaction:  # SQLite may have rolled it back itself (a full disk)
            super()._rollback()
        self.in_transaction = False

    def _place(self) -> None:
        """Put the new gallery's file in place and go on with it."""
        try:
            with translated(self.path):
                self._claim.place(self._conn)
                conn = _connect(self.path, self._busy_timeout)
        except BaseException:
            self._keep = False  # what it holds is not on disk: closing gives it up
            raise
        conn.execute("PRAGMA foreign_keys=ON")
        self._claim.release()
        self._conn.close()
        self._conn, self._claim = conn, None

    def close(self) -> None:
        """Close the connection (WAL readers elsewhere keep working); a new gallery no write
        failed on lands now."""
        with self._lock:
            try:
                if self._claim is not None and self._keep:
                    self._place()
            finally:
                if self._claim is not None:
                    self._claim.release()
                self._conn.close()
