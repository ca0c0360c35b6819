"""`facecnn enroll FACES --gallery g.db`: embed every person's photos into a gallery and
calibrate the unknown-face threshold from them, with no training.

Enrolment is idempotent and all-or-nothing: photos already in the gallery (known by their
content hash) are not embedded again, and every new face and the threshold are written in
one transaction at the end, so an interrupted run leaves the gallery as it was and the same
command completes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.crop_layout import crop_settings
from facecnn.data.folders import class_folders, files_of
from facecnn.errors import FacecnnError
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import Embedder, default_threshold
from facecnn.faces.face_cache import kept_on_interrupt
from facecnn.faces.gallery import Gallery, GalleryLocation
from facecnn.faces.names import check_name
from facecnn.faces.pipeline import NO_FACE, FacePipeline
from facecnn.faces.quality import DEFAULT_MIN_QUALITY
from facecnn.faces.refit import refit_threshold
from facecnn.faces.result import json_number
from facecnn.faces.thumbnails import photo_thumbnails
from facecnn.fileio import file_hash
from facecnn.progress import Reporter


@dataclass
class EnrollReport:
    people: dict[str, int] = field(default_factory=dict)  # person -> faces added now
    already: dict[str, str] = field(default_factory=dict)  # photo -> who it is enrolled as
    # photos this run embedded that another enroll of them wrote first: found, not lost
    by_another_run: int = 0
    reused: int = 0  # photos whose faces an earlier (interrupted) run had found and kept
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    low_quality: list[dict[str, Any]] = field(default_factory=list)  # {"file", "quality"}
    empty_folders: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    threshold: float | None = None
    threshold_source: str | None = None


@dataclass
class _Faces:
    """One person's faces to enrol, one per photo."""

    vectors: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    digests: list[str | None] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)


@dataclass
class _Photo:
    person: str
    file: Path
    digest: str | None


def enroll(folder: Path, gallery_path: str | Path, embedder: Embedder,
           detector: FaceDetector, *, threshold: float | None = None,
           calibrate: bool | None = None, far: float | None = None, workers: int | None = None,
           min_quality: float = DEFAULT_MIN_QUALITY,
           reporter: Reporter | None = None) -> EnrollReport:
    """Add every person of FOLDER/<person>/* (the largest face of each photo, or each crop
    `prepare` wrote) to the gallery, which is created if missing.

    The threshold: `threshold` if given (kept by later runs); else calibrated from the
    enrolled people, unless one was set by hand before and `calibrate` is not True;
    `calibrate=False` keeps what is stored (the embedder's default if nothing is). `far`: the
    share of strangers' faces the calibrated threshold may name (default: what the gallery was
    calibrated for, else 1%). A face under `min_quality`
    (faces/quality.py) is not enrolled but listed in the report.
    """
    reporter = reporter or Reporter()
    report = EnrollReport()
    photos = _photos(folder, report)
    existing = _open_existing(gallery_path, embedder)
    if existing is not None:
        with existing:
            known = existing.known_photos([p.digest for p in photos if p.digest])
        report.already = {str(p.file): known[p.digest] for p in photos if p.digest in known}
    photos = _new_photos(photos, report)
    found = _embed(folder, photos, FacePipeline(detector, embedder, workers), report, reporter,
                   min_quality)
    if not found and existing is None:  # nothing to start a gallery with: leave no file
        raise FacecnnError(f"no face found in any image of {folder}")
    with Gallery.open_or_create(gallery_path, embedder.name, embedder.dim, embedder.crop,
                                embedder.views) as gallery, gallery.batch():
        for person, faces in found.items():
            # fewer than given only when another enroll wrote the same photos meanwhile
            report.people[person] = gallery.add(
                person, np.stack(faces.vectors), faces.sources, faces.digests, faces.boxes,
                photo_thumbnails(faces.sources, faces.boxes))
            report.by_another_run += len(faces.vectors) - report.people[person]
        _choose_threshold(gallery, threshold, calibrate, far, report, reporter)
    return report


def _photos(folder: Path, report: EnrollReport) -> list[_Photo]:
    """Every file of every person folder, with its content hash; names are checked first,
    so a bad folder name fails before any work."""
    photos = []
    for person_dir in class_folders(folder):
        person = check_name(person_dir.name)
        files = files_of(person_dir)
        if not files:
            report.empty_folders.append(str(person_dir))
        for file in files:
            try:
                digest = file_hash(file)
            except OSError:
                digest = None  # the pipeline reports why it cannot be read
            photos.append(_Photo(person, file, digest))
    return photos


def _new_photos(photos: list[_Photo], report: EnrollReport) -> list[_Photo]:
    """The photos not yet enrolled, each content once (a copy in another folder is the same
    photo: the first one seen stands for it)."""
    first: dict[str, str] = {}
    new = []
    for photo in photos:
        if str(photo.file) in report.already:
            continue
        if photo.digest in first:
            report.already[str(photo.file)] = first[photo.digest]
            continue
        if photo.digest:
            first[photo.digest] = photo.person
        new.append(photo)
    return new


def _open_existing(path: str | Path, embedder: Embedder) -> Gallery | None:
    """The gallery if it exists (refusing another embedder's before any work, and cutting
    chips as its faces were cut); a new one is only created once there are faces to put in
    it."""
    if not GalleryLocation.of(path).exists():
        return None
    gallery = Gallery.open_or_create(path, embedder.name, embedder.dim, embedder.crop,
                                     embedder.views)
    gallery.check_embedder(embedder)
    return gallery


def _embed(folder: Path, photos: list[_Photo], pipeline: FacePipeline, report: EnrollReport,
           reporter: Reporter, min_quality: float = 0.0) -> dict[str, _Faces]:
    """person -> their faces; photos without a usable face go to the report."""
    found: dict[str, _Faces] = {}
    if not photos:
        return found
    with reporter.task("enrolling", len(photos)) as advance, \
            kept_on_interrupt(len(photos)) as cache:
        results = pipeline.run([p.file for p in photos], pick="largest",
                               crop=crop_settings(folder), cache=cache,
                               hashes=[p.digest for p in photos], advance=advance)
        for photo, result in zip(photos, results):
            if result.error == NO_FACE:
                report.no_face.append(str(photo.file))
            elif result.error:
                report.unreadable.append({"file": str(photo.file), "reason": result.error})
            elif result.faces[0].quality is not None and \
                    result.faces[0].quality < min_quality:
                report.low_quality.append({"file": str(photo.file),
                                           "quality": json_number(result.faces[0].quality)})
            else:
                faces = found.setdefault(photo.person, _Faces())
                faces.vectors.append(result.vectors[0])
                faces.sources.append(str(photo.file))
                faces.digests.append(photo.digest)
                faces.boxes.append(result.faces[0].box)
    report.reused = pipeline.reused
    return found


def _choose_threshold(gallery: Gallery, threshold: float | None, calibrate: bool | None,
                      far: float | None, report: EnrollReport, reporter: Reporter) -> None:
    """`threshold` if given; else the refit rule (faces/refit.py), which keeps one set by
    hand unless `calibrate` is True; `calibrate=False` keeps what is stored."""
    if threshold is not None:
        gallery.set_threshold(threshold, "manual")
    elif calibrate is not False:
        refit = refit_threshold(gallery, far, replace_manual=calibrate is True)
        report.calibration = refit.calibration
        if refit.source == "manual" and refit.kept:
            reporter.log(f"keeping the threshold {refit.threshold:.4f} set by hand "
                         f"(--calibrate replaces it)")
        elif refit.kept:  # too few people or photos
            reporter.log(f"threshold not calibrated ({refit.kept}); using {refit.threshold}")
    if gallery.threshold is None:
        gallery.set_threshold(default_threshold(gallery.embedder), "default")
    report.threshold, report.threshold_source = gallery.threshold, gallery.threshold_source
