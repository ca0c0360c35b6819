"""The face gallery: one interface (core.Gallery) over two stores, a SQLite file (the default)
or a PostgreSQL database that several machines share, chosen by the --gallery value (a path
or a postgresql:// URL, parsed once into a GalleryLocation); brute-force search and
calibration beside them.

The names load on first use, so the CLI can name a GalleryLocation without loading the store
code, and only what a PostgreSQL URL needs loads psycopg.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {"BUSY_TIMEOUT": "store", "GalleryBusy": "store", "GalleryUnavailable": "store",
        "NotInGallery": "store",
        "GalleryLocation": "location", "SCHEMA_VERSION": "meta", "THRESHOLD_SOURCES": "core",
        "Gallery": "core", "Rows": "core", "copy_gallery": "core", "open_gallery": "core",
        "Match": "search", "match": "search", "pair_distances": "search"}
_OUTSIDE = {"UNKNOWN": "facecnn.faces.names", "check_name": "facecnn.faces.names"}

__all__ = sorted([*_API, *_OUTSIDE])


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    if name in _OUTSIDE:
        return getattr(import_module(_OUTSIDE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
