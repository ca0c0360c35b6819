"""`facecnn enroll FACES --gallery g.db`: embed every person's photos into a gallery and
calibrate the unknown-face threshold from them, with no training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.decode import read_image
from facecnn.data.folders import class_folders, files_of
from facecnn.errors import FacecnnError
from facecnn.faces.align import crop_box
from facecnn.faces.detect import Face, FaceDetector, landmarks_in
from facecnn.faces.embed import Embedder
from facecnn.faces.gallery import Gallery
from facecnn.faces.prepare import crop_settings
from facecnn.progress import Reporter


def main_face(file: Path, detector: FaceDetector,
              crop: dict[str, Any] | None = None) -> tuple[np.ndarray, Face | None]:
    """(RGB image, its largest face or None). For crops `prepare` wrote (`crop` settings
    given) the face's place is known, so only its landmarks are found."""
    image = read_image(file)
    if crop is not None:
        side = image.shape[1]
        return image, landmarks_in(image, crop_box(side, crop["margin"]))
    faces = detector(image)
    return image, faces[0] if faces else None


@dataclass
class EnrollReport:
    people: dict[str, int] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    threshold: float | None = None


def enroll(folder: Path, gallery_path: Path, embedder: Embedder, detector: FaceDetector, *,
           threshold: float | None = None, calibrate: bool = True,
           reporter: Reporter | None = None) -> EnrollReport:
    """Add every person of FOLDER/<person>/* to the gallery (created if missing)."""
    reporter = reporter or Reporter()
    crop = crop_settings(folder)
    people = class_folders(folder)
    report = EnrollReport()
    with Gallery.open_or_create(gallery_path, embedder.name, embedder.dim,
                                embedder.crop) as gallery:
        total = sum(len(files_of(p)) for p in people)
        with reporter.task("enrolling", total) as advance:
            for person in people:
                items, sources = [], []
                for file in files_of(person):
                    advance(1)
                    try:
                        image, face = main_face(file, detector, crop)
                    except ValueError as exc:
                        report.unreadable.append({"file": str(file), "reason": str(exc)})
                        continue
                    if face is None:
                        report.no_face.append(str(file))
                        continue
                    items.append((image, face))
                    sources.append(str(file))
                if items:
                    report.people[person.name] = gallery.add(person.name, embedder.embed(items),
                                                             sources)
        if not report.people:
            raise FacecnnError(f"no face found in any image of {folder}")
        if threshold is not None:
            gallery.threshold = threshold
        elif calibrate:
            try:
                report.calibration = gallery.calibrate()
            except FacecnnError as exc:  # too few people or photos: keep the default
                reporter.log(f"threshold not calibrated ({exc}); using "
                             f"{embedder.default_threshold}")
                gallery.threshold = gallery.threshold or embedder.default_threshold
        report.threshold = gallery.threshold
    return report
