"""`facecnn enroll FACES --gallery g.db`: embed every person's photos into a gallery and
calibrate the unknown-face threshold from them, with no training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.folders import class_folders, files_of
from facecnn.errors import FacecnnError
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embed import Embedder
from facecnn.faces.gallery import Gallery
from facecnn.faces.pipeline import NO_FACE, FacePipeline
from facecnn.faces.prepare import crop_settings
from facecnn.progress import Reporter


@dataclass
class EnrollReport:
    people: dict[str, int] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    threshold: float | None = None


def enroll(folder: Path, gallery_path: Path, embedder: Embedder, detector: FaceDetector, *,
           threshold: float | None = None, calibrate: bool = True, workers: int | None = None,
           reporter: Reporter | None = None) -> EnrollReport:
    """Add every person of FOLDER/<person>/* (the largest face of each photo, or each crop
    `prepare` wrote) to the gallery, which is created if missing."""
    reporter = reporter or Reporter()
    jobs = [(person.name, file) for person in class_folders(folder) for file in files_of(person)]
    report = EnrollReport()
    with Gallery.open_or_create(gallery_path, embedder.name, embedder.dim,
                                embedder.crop) as gallery:
        found = _embed_people(folder, jobs, FacePipeline(detector, embedder, workers), report,
                              reporter)
        for person, (vectors, sources) in found.items():
            report.people[person] = gallery.add(person, np.stack(vectors), sources)
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


def _embed_people(folder: Path, jobs: list[tuple[str, Path]], pipeline: FacePipeline,
                  report: EnrollReport, reporter: Reporter) -> dict[str, tuple[list, list]]:
    """person -> (vectors, source files); photos without a usable face go to the report."""
    found: dict[str, tuple[list, list]] = {}
    with reporter.task("enrolling", len(jobs)) as advance:
        results = pipeline.run([file for _, file in jobs], largest_only=True,
                               crop=crop_settings(folder), advance=advance)
        for (person, file), result in zip(jobs, results):
            if result.error == NO_FACE:
                report.no_face.append(str(file))
            elif result.error:
                report.unreadable.append({"file": str(file), "reason": result.error})
            else:
                vectors, sources = found.setdefault(person, ([], []))
                vectors.append(result.vectors[0])
                sources.append(str(file))
    if not found:
        raise FacecnnError(f"no face found in any image of {folder}")
    return found
