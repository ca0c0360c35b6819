"""The gallery in one SQLite file: the embedded default.

Several threads or processes may share the file (WAL journal, busy timeout): a write takes the
file's write lock up front (BEGIN IMMEDIATE), so concurrent writers queue on the busy timeout
instead of failing half-way, and readers never wait.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.meta import SCHEMA_VERSION, initial_meta, schema_version
from facecnn.faces.gallery.store import BUSY, BUSY_TIMEOUT, Cursor, GalleryBusy, Store, statements

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


@contextmanager
def _locked_is_busy() -> Iterator[None]:
    """A write lock held elsewhere past the busy timeout, as one line worth retrying."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):  # "database is locked", "database table is locked"
            raise
        raise GalleryBusy(BUSY) from None


class SqliteStore(Store):
    begin_write, begin_snapshot = "BEGIN IMMEDIATE", "BEGIN"  # deferred: snapshot at 1st read

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.path, self.location = path, str(path)
        self._conn = conn

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
        """Connect, write the schema if `init` is given and the file is empty, then validate;
        returns the store and the meta table. `new` refuses an existing file.

        The emptiness check and the schema share one IMMEDIATE transaction, so two processes
        racing to create the same gallery end up with one schema instead of an error.
        """
        path = Path(value)
        if new and path.exists():
            raise FacecnnError(f"gallery already exists: {path}")
        if init is None and not path.is_file():
            raise FacecnnError(f"gallery not found: {path}")
        if init is not None:
            meta = initial_meta(*init)  # before touching the disk: bad arguments leave no file
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        store = cls(path, conn)
        try:
            if init is not None:
                with store._lock:
                    store._begin(store.begin_write)
                    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                        for statement in statements(_SCHEMA):
                            conn.execute(statement)
                        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                    store._end("COMMIT")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if schema_version(meta) == 1:
                meta["schema_version"] = str(store._migrate())
            conn.execute("PRAGMA journal_mode=WAL")  # only now: never convert a foreign file
            conn.execute("PRAGMA foreign_keys=ON")
            return store, meta
        except BaseException as e:
            conn.close()
            if isinstance(e, FacecnnError):
                raise FacecnnError(f"{path}: {e}") from None
            if isinstance(e, sqlite3.DatabaseError):
                raise FacecnnError(f"not a facecnn gallery: {path} ({e})") from None
            raise

    def _migrate(self) -> int:
        """Bring a version-1 gallery to this version in one transaction; returns the version."""
        with self._lock:
            self._begin(self.begin_write)
            try:
                if self.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                ).fetchone()[0] == "1":
                    for statement in statements(_MIGRATE_1):
                        self.execute(statement)
            except BaseException:
                self._rollback()
                raise
            self._end("COMMIT")
        return SCHEMA_VERSION

    def execute(self, sql: str, params: Sequence = ()) -> Cursor:
        with _locked_is_busy():
            return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        with _locked_is_busy():
            return self._conn.executemany(sql, rows).rowcount

    def close(self) -> None:
        """Close the connection (WAL readers elsewhere keep working)."""
        with self._lock:
            self._conn.close()
