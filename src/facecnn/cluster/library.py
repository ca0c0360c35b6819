"""A photo library's faces, embedded once: the photos `cluster` and `search` look at, and the
pipeline run (workers, batching) on those the cache does not hold yet."""

from __future__ import annotations

from pathlib import Path

from facecnn.cluster.cache import LibraryCache, photo_key
from facecnn.data.folders import expand_inputs
from facecnn.errors import FacecnnError
from facecnn.faces.face_cache import kept_on_interrupt
from facecnn.faces.pipeline import FacePipeline
from facecnn.progress import Reporter
from facecnn.video.streams import is_video

VIDEOS_HINT = "photos are grouped; `facecnn recognize VIDEO` tracks and names a video's people"


def library_photos(inputs: list[Path], skip: Path | None = None
                   ) -> tuple[list[Path], list[Path]]:
    """(photos, videos) of the given files and folders (recursively, hidden ones left out),
    less those inside `skip` (an output folder kept inside the library is not part of it).
    Videos are told by their suffix and left out: a library is grouped by its photos."""
    files = expand_inputs(inputs)
    if skip is not None:
        skip = skip.resolve()
        files = [f for f in files if not f.resolve().is_relative_to(skip)]
    photos = [f for f in files if not is_video(f)]
    videos = [f for f in files if is_video(f)]
    if not photos:
        where = ", ".join(str(p) for p in inputs)
        raise FacecnnError(f"no photos found in {where}" + (
            f" ({len(videos)} videos: {VIDEOS_HINT})" if videos else ""))
    return photos, videos


def embed_library(photos: list[Path], pipeline: FacePipeline, cache: LibraryCache,
                  reporter: Reporter | None = None) -> list[Path]:
    """Bring `cache` up to date with `photos`: forget photos gone or changed, detect and embed
    the new ones. Returns the photos embedded now."""
    cache.keep_only(photos)
    todo = cache.stale(photos)
    if todo:
        with (reporter or Reporter()).task("finding faces", len(todo)) as advance, \
                kept_on_interrupt(len(todo)) as kept:
            cache.add([(photo_key(found.file), found)
                       for found in pipeline.run(todo, cache=kept, advance=advance)])
    return todo
