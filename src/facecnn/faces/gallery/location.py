"""Where a gallery lives, parsed once from a --gallery value: a SQLite file's path or a
postgresql:// URL. It is passed on as this object; its printable form never shows a password,
and only a URL's store loads psycopg."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facecnn.faces.gallery.store import Store

URL_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class GalleryLocation:
    """`target`: the path or the URL as given (with any password: for connecting only)."""

    target: str

    @classmethod
    def of(cls, value: str | Path | GalleryLocation) -> GalleryLocation:
        return value if isinstance(value, GalleryLocation) else cls(str(value))

    @property
    def is_database(self) -> bool:
        """A PostgreSQL database rather than a SQLite file."""
        return self.target.startswith(URL_SCHEMES)

    @property
    def store(self) -> type[Store]:
        if self.is_database:
            from facecnn.faces.gallery.store_postgres import PostgresStore  # loads psycopg

            return PostgresStore
        from facecnn.faces.gallery.store_sqlite import SqliteStore

        return SqliteStore

    def exists(self) -> bool:
        """Whether the file exists, or the database holds a gallery (connecting to find out)."""
        return self.store.exists(self.target) if self.is_database else Path(self.target).exists()

    def absolute(self) -> GalleryLocation:
        """The same gallery named from any working folder (a file's path made absolute)."""
        return self if self.is_database else GalleryLocation(str(Path(self.target).resolve()))

    def __str__(self) -> str:
        """What messages call it: the path, or the URL without its password."""
        return self.store.location_of(self.target) if self.is_database else self.target
