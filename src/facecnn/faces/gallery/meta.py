"""The gallery's meta table: what a new gallery records, and reading it back, checked, so a
value edited by hand fails in one line instead of somewhere deep in a search."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.search import METRICS

SCHEMA_VERSION = 3
# the change counter, and its value at the last write that changed or dropped rows
DATA_VERSION, REWRITE_VERSION = "data_version", "rewrite_version"
# what each face's vector averages besides the face itself: its mirror image (flip) and
# jittered copies; a gallery's faces are searched with the same (older galleries: none)
NO_EXTRA_VIEWS = {"flip": False, "jitter": 0}
# how faces are compared with people (search.py); galleries from before the key: euclidean
NEW_METRIC, OLD_METRIC = "mean_direction_lead", "euclidean"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def initial_meta(embedder: str, dim: int, crop: dict | None, views: dict | None = None,
                 metric: str | None = None) -> dict[str, str]:
    if not embedder or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise FacecnnError(f"invalid embedder/dim: {embedder!r}/{dim!r}")
    return {"schema_version": str(SCHEMA_VERSION), "embedder": embedder, "dim": str(int(dim)),
            "crop": json.dumps(crop or {}, sort_keys=True), "metric": metric or NEW_METRIC,
            "views": json.dumps(views or NO_EXTRA_VIEWS, sort_keys=True), "created": now()}


def damaged(key: str, value: object, wanted: str) -> FacecnnError:
    return FacecnnError(f"gallery meta {key!r} holds {value!r}, not {wanted} (was the meta "
                        f"table edited by hand?)")


def meta_int(key: str, value: object, minimum: int = 0) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = minimum - 1
    if number < minimum:
        raise damaged(key, value, f"an integer >= {minimum}")
    return number


def schema_version(meta: dict[str, str]) -> int:
    """The gallery's schema version, from 1 (older ones are upgraded on open where they can
    be written) to SCHEMA_VERSION."""
    version = meta_int("schema_version", meta.get("schema_version"), minimum=1)
    if version > SCHEMA_VERSION:
        raise FacecnnError(f"schema_version is {version}, this facecnn reads 1 to "
                           f"{SCHEMA_VERSION} (was it made by a newer facecnn?)")
    return version


def parse_meta(meta: dict[str, str]) -> tuple[str, int, dict]:
    """(embedder, dim, crop) of a meta table, each checked: one line when one is damaged."""
    embedder = meta.get("embedder")
    if not isinstance(embedder, str) or not embedder.strip():
        raise damaged("embedder", embedder, "an embedder name")
    dim = meta_int("dim", meta.get("dim"), minimum=1)
    try:
        crop = json.loads(meta.get("crop") or "{}")
    except ValueError:
        crop = None
    if not isinstance(crop, dict):
        raise damaged("crop", meta.get("crop"), "a JSON object")
    return embedder, dim, crop


def parse_views(meta: dict[str, str]) -> dict:
    """The views each vector of the gallery averages ({"flip": bool, "jitter": int})."""
    raw = meta.get("views")
    try:
        views = json.loads(raw) if raw else dict(NO_EXTRA_VIEWS)
    except ValueError:
        views = None
    if not isinstance(views, dict) or set(views) != set(NO_EXTRA_VIEWS) or \
            not isinstance(views["flip"], bool) or not isinstance(views["jitter"], int) or \
            views["jitter"] < 0:
        raise damaged("views", raw, '{"flip": true or false, "jitter": an integer >= 0}')
    return views


def views_in_words(views: dict) -> str:
    """The options that give these views: "--flip --jitter 5", or "no --flip or --jitter"."""
    words = (["--flip"] if views["flip"] else []) + \
        ([f"--jitter {views['jitter']}"] if views["jitter"] else [])
    return " ".join(words) or "no --flip or --jitter"


def parse_metric(meta: dict[str, str]) -> str:
    """How the gallery compares faces with people (one of search.METRICS)."""
    metric = meta.get("metric", OLD_METRIC)
    if metric not in METRICS:
        raise damaged("metric", metric, f"one of {', '.join(METRICS)}")
    return metric
