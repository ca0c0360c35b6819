"""The face gallery: one interface (core.Gallery) over two stores, a SQLite file (the default)
or a PostgreSQL database that several machines share, chosen by the --gallery value (a path
or a postgresql:// URL); brute-force search and calibration beside them.

Only what a PostgreSQL URL needs loads psycopg.
"""

from facecnn.faces.gallery.core import (
    THRESHOLD_SOURCES,
    Gallery,
    Rows,
    copy_gallery,
    gallery_exists,
    gallery_location,
    is_database_url,
    open_gallery,
)
from facecnn.faces.gallery.meta import SCHEMA_VERSION
from facecnn.faces.gallery.search import Match, match, pair_distances
from facecnn.faces.gallery.store import BUSY_TIMEOUT, GalleryBusy, GalleryUnavailable
from facecnn.faces.names import UNKNOWN, check_name

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "THRESHOLD_SOURCES", "UNKNOWN", "Gallery",
           "GalleryBusy", "GalleryUnavailable", "Match", "Rows", "check_name", "copy_gallery",
           "gallery_exists", "gallery_location", "is_database_url", "match", "open_gallery",
           "pair_distances"]
