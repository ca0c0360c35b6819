"""The faces of photos already processed, kept across runs: a photo is known by its content
(SHA-256) and the recipe that found and embedded its faces, so a run stopped by Ctrl-C (or a
crash) loses nothing it finished, and the same command again processes only the rest.

One SQLite file in facecnn's cache folder (many processes may share it; each write is one
transaction). Only final answers are kept: faces with vectors, and "no face found"; a photo
that could not be read is tried again next time. A cache that cannot be opened or written
(a read-only folder, a full disk) costs only the time to redo the work, never the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.cache import default_cache_dir
from facecnn.errors import Interrupted
from facecnn.faces.result import Face, Result

FILE = "faces.sqlite3"
# of what is kept, and of how faces are found and cut: a new one leaves older answers unused
# (4: dlib chips repeat the photo's edge where they reach past it, which every face crop does;
# small images get a look with their grey levels spread; 5: an image taken whole gets a
# brightened look, so a dark crop kept as "no face" is looked at again)
FORMAT = 5
COMMIT_EVERY_S = 2.0  # answers are written at least this often (and when the run stops)


class FaceCache:
    """`cache.get(recipe, digest)` -> the Result kept for that photo content, or None;
    `cache.put(...)` keeps one (written within COMMIT_EVERY_S, or at `flush`)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_dir() / FILE
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str, bytes, str | None]] = []
        self._written = time.monotonic()
        self.done = 0  # photos answered from it or kept in it by this run
        with contextlib.suppress(sqlite3.Error, OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0)
            db.execute("CREATE TABLE IF NOT EXISTS faces (recipe TEXT, digest TEXT, "
                       "faces BLOB, error TEXT, PRIMARY KEY (recipe, digest))")
            db.commit()
            self._db = db

    def get(self, recipe: str, digest: str, file: Path) -> Result | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT faces, error FROM faces WHERE recipe = ? AND "
                                   "digest = ?", (recipe, digest)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        self.done += 1
        return Result(file, _faces(row[0]), row[1])

    def put(self, recipe: str, digest: str, result: Result) -> None:
        self._pending.append((recipe, digest, _blob(result.faces), result.error))
        self.done += 1
        if time.monotonic() - self._written >= COMMIT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write what is pending, in one transaction."""
        pending, self._pending = self._pending, []
        self._written = time.monotonic()
        if self._db is None or not pending:
            return
        with contextlib.suppress(sqlite3.Error):
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?)",
                                     pending)

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


@contextlib.contextmanager
def kept_on_interrupt(total: int) -> Iterator[FaceCache]:
    """The face cache for a run over `total` photos: Ctrl-C inside becomes Interrupted,
    saying how many photos' faces are kept and that the same command goes on from there."""
    cache = FaceCache()
    try:
        yield cache
    except KeyboardInterrupt:
        cache.flush()
        raise Interrupted(f"the faces of {cache.done} of {total} photos are kept "
                          f"({cache.path}); the same command again processes only the "
                          "rest") from None
    finally:
        cache.close()


def recipe_key(recipe: dict[str, Any]) -> str:
    """A recipe (what decides a photo's faces and vectors) as the cache's key."""
    keyed = {**recipe, "format": FORMAT}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def _blob(faces: list[Face]) -> bytes:
    """Boxes, confidences, points and vectors as one .npz (no pickle)."""
    count = len(faces)
    arrays = {"boxes": np.array([f.box for f in faces], np.float32).reshape(count, 4),
              "confidence": _numbers([f.confidence for f in faces]),
              "quality": _numbers([f.quality for f in faces])}
    if count and all(f.landmarks is not None for f in faces):
        arrays["landmarks"] = np.stack([f.landmarks for f in faces]).astype(np.float32)
    if count:
        arrays["vectors"] = np.stack([f.vector for f in faces]).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _numbers(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float32)


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _faces(blob: bytes) -> list[Face]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        boxes = arrays["boxes"]
        points = arrays["landmarks"] if "landmarks" in arrays else [None] * len(boxes)
        return [Face(tuple(float(v) for v in box), _number(c), p, _number(q), vector=v)
                for box, c, p, q, v in zip(boxes, arrays["confidence"], points,
                                           arrays["quality"],
                                           arrays["vectors"] if len(boxes) else [])]
