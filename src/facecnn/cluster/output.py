"""The output folder, `people/`:

    cluster_001/<photo>-<id>.jpg   the aligned face crops (dlib's 150 px chips), one face each,
                                   so the folder goes straight into `enroll` or `train`
    cluster_001/.photos/           links to (or with --copy, copies of) the source photos:
                                   hidden, so enroll and train see only this person's faces
    dora/                          a cluster named dora (by `gallery name` or a gallery match)
    unsorted/                      the faces in no cluster, the same way
    unsorted/.not-a-person         (also in dismissed clusters) so enroll and train pass the
                                   folder by
    cluster_001.png                the cluster's contact sheet
    index.html, clusters.json      every cluster, biggest first
    prepare_report.json            the crops' layout, as `prepare` writes it (enroll reads it)
    cache.npz                      the vector cache and cluster store (cache.py)
    .lock                          held by whoever writes the folder (lock.py)
    .moves.json                    while files move to a cluster's new folder (journal.py)

Nothing outside the folder is written, and the photos are only read. A rerun rewrites only
the files it wrote itself (the cache lists them): a file of the user's in the way is left
alone and reported, a crop whose face left a cluster is removed, and the files of a cluster
whose folder changed (named, merged) are moved, not cut from the photos again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

from facecnn.cluster import journal
from facecnn.cluster.cache import LibraryCache
from facecnn.cluster.groups import Group, document, make_groups
from facecnn.cluster.lock import LOCK
from facecnn.cluster.sheets import contact_sheet, index_page
from facecnn.data.crop_layout import PREPARE_REPORT, PrepareReport
from facecnn.data.decode import read_image
from facecnn.data.folders import NOT_A_PERSON
from facecnn.errors import FacecnnError
from facecnn.faces.crops import DLIB_CHIP, jpeg_bytes, make_chips
from facecnn.faces.result import Face, json_number
from facecnn.fileio import atomic_write, remove_stale_temps, write_bytes_atomic, write_text_atomic

CACHE = "cache.npz"
CLUSTERS = "clusters.json"
INDEX = "index.html"
PHOTOS = ".photos"
CROP = DLIB_CHIP
# no cluster's folder may be one of these
OWN_FILES = frozenset({CACHE, CLUSTERS, INDEX, PREPARE_REPORT, LOCK, journal.JOURNAL})


def check_out(out: Path) -> None:
    """Refuse, before any work, an --out that is a file or a folder of someone else's files."""
    if out.exists() and not out.is_dir():
        raise FacecnnError(f"--out {out} is a file: give a folder for the clusters")
    remove_stale_temps(out)  # a first run killed while saving its cache left one
    if out.is_dir() and not (out / CACHE).is_file() and any(
            p.name != LOCK for p in out.iterdir()):  # a lock alone: a killed first run's
        raise FacecnnError(f"--out {out} holds files `facecnn cluster` did not write: give a "
                           "new or empty folder")


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


class _Plan:
    """Every file the folder should hold, relative to it: crops to cut, photos to link, and
    the pages, each written only if it is missing (or ours to rewrite)."""

    def __init__(self, cache: LibraryCache, groups: list[Group]) -> None:
        keys = {key[0]: key for key in cache.photos}
        self.crops: dict[str, tuple[str, tuple[float, ...]]] = {}  # crop -> (photo, box)
        self.photos: dict[str, str] = {}  # link or copy -> photo
        self.members: dict[str, list[str]] = {}  # group -> its crops, best face first
        self.quality: dict[str, float | None] = {}  # crop -> its face's quality
        for group in groups:
            crops = []
            for row in group.rows:
                file, box = cache.files[row], tuple(float(v) for v in cache.boxes[row])
                stem = Path(file).stem
                crop = f"{group.folder}/{stem}-{_short(repr((keys[file], box)))}.jpg"
                self.crops[crop] = (file, box)
                self.quality[crop] = json_number(cache.qualities[row])
                crops.append(crop)
                link = f"{group.folder}/{PHOTOS}/{stem}-{_short(file)}{Path(file).suffix}"
                self.photos[link] = file
            self.members[group.folder] = crops
        self.sheets = {f"{name}.png": name for name in self.members}
        self.markers = {f"{g.folder}/{NOT_A_PERSON}" for g in groups
                        if g.cohesion is None or g.dismissed}

    def files(self) -> set[str]:
        return {*self.crops, *self.photos, *self.sheets, *self.markers, CLUSTERS, INDEX,
                PREPARE_REPORT}


def update(out: Path, cache: LibraryCache) -> tuple[list[Group], list[str]]:
    """Bring `out` in line with the cache's clusters, names and settings (threshold, copy),
    and save the cache; returns the groups and the files left alone (write_output)."""
    groups = make_groups(cache, cache.threshold, OWN_FILES)
    blocked = write_output(out, cache, groups, cache.copy)
    cache.save(out / CACHE)
    return groups, blocked


def write_output(out: Path, cache: LibraryCache, groups: list[Group], copy: bool = False
                 ) -> list[str]:
    """Bring `out` in line with the clusters; returns the files left alone because they are
    the user's, not ours. The cache (saved by the caller) then lists what was written."""
    plan = _Plan(cache, groups)
    wanted, ours = plan.files(), set(cache.written)
    out.mkdir(parents=True, exist_ok=True)
    for folder in {out, *((out / f).parent for f in ours | wanted)}:
        remove_stale_temps(folder)  # what killed writers left half-written
    recovered = journal.recover(out, ours)  # a killed rewrite's, before any file is judged
    blocked = sorted(f for f in wanted - ours if os.path.lexists(out / f))
    mine = wanted - set(blocked)
    moves = _moves(out, ours - wanted, mine - ours)
    for stale in sorted(ours - wanted - set(moves)):  # a face gone from a cluster, a photo gone
        (out / stale).unlink(missing_ok=True)
    journal.begin(out, moves)
    cache.written = sorted(mine)
    cache.save(out / CACHE)  # before writing: a killed run's files are still known as ours
    journal.finish(out, moves)
    _cut_crops(out, {c: p for c, p in plan.crops.items()
                     if c in mine and not (out / c).exists()})
    for link, photo in plan.photos.items():
        if link in mine and not (out / link).is_symlink() and not (out / link).exists():
            _place(Path(photo), out / link, copy)
    for sheet, name in plan.sheets.items():
        if sheet in mine:
            crops = [c for c in plan.members[name] if (out / c).is_file()]
            write_bytes_atomic(out / sheet, contact_sheet(
                name, [out / c for c in crops], len(plan.members[name]),
                [plan.quality[c] for c in crops]))
    page = [(g.folder, g.size, g.cohesion, g.sheet) for g in groups]
    pages = {CLUSTERS: json.dumps(document(groups, cache), indent=1) + "\n",
             INDEX: index_page(page),
             PREPARE_REPORT: json.dumps(PrepareReport(CROP, cache.recipe["detector"]["name"],
                                              len(cache.photos), len(plan.crops)).to_dict(),
                                indent=2) + "\n"}
    for name, text in pages.items():
        if name in mine:
            write_text_atomic(out / name, text)
    for marker in plan.markers & mine:
        write_text_atomic(out / marker, "No person: facecnn enroll and train pass this folder "
                          "by.\n")
    left = (ours - wanted) | set(recovered)
    _remove_empty_folders(out, {Path(f).parts[0] for f in left} - set(plan.members))
    return blocked


def _moves(out: Path, stale: set[str], missing: set[str]) -> dict[str, str]:
    """Which of our files of a cluster whose folder changed go where they are wanted now
    (source -> target): a crop's or photo link's name says which face or photo it holds,
    whatever folder it is in (so a cluster named dora keeps its crops, even if its photos are
    out of reach now)."""
    def within(name: str) -> str | None:  # the name inside its cluster's folder
        parts = Path(name).parts
        return Path(*parts[1:]).as_posix() if len(parts) > 1 else None

    movable: dict[str, str] = {}
    for name in sorted(stale):
        if within(name) and os.path.lexists(out / name):
            movable.setdefault(within(name), name)
    moves = {}
    for name in sorted(missing):
        source = movable.pop(within(name) or "", None)
        if source is not None and not os.path.lexists(out / name):
            moves[source] = name
    return moves


def _cut_crops(out: Path, crops: dict[str, tuple[str, tuple[float, ...]]]) -> None:
    """Cut the missing crops, each photo read once."""
    by_photo: dict[str, list[tuple[str, tuple[float, ...]]]] = defaultdict(list)
    for crop, (photo, box) in crops.items():
        by_photo[photo].append((crop, box))
    for photo, items in by_photo.items():
        image = read_image(photo)
        chips = make_chips(CROP, [(image, Face(box)) for _, box in items])
        for (crop, _), chip in zip(items, chips):
            (out / crop).parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(out / crop, jpeg_bytes(chip, quality=92))


def _place(photo: Path, target: Path, copy: bool) -> None:
    """A link to the photo (absolute, so the folder can be read from anywhere), or a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        atomic_write(target, lambda tmp: shutil.copyfile(photo, tmp))
    else:
        os.symlink(photo.resolve(), target)


def _remove_empty_folders(out: Path, gone: set[str]) -> None:
    """The folders of clusters that lost all their faces, once nothing else is left in them."""
    for name in gone:
        for folder in (out / name / PHOTOS, out / name):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
