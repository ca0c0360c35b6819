"""`facecnn prepare RAW OUT`: one aligned crop per face, the folder-per-person layout kept.

RAW is only ever read. Existing files in OUT are kept unless `overwrite`; every image that
gave no face, several faces or no pixels at all is listed in OUT/prepare_report.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from facecnn.data.decode import read_image
from facecnn.data.folders import class_folders, files_of
from facecnn.errors import FacecnnError
from facecnn.faces.align import align_face
from facecnn.faces.detect import FaceDetector
from facecnn.progress import Reporter

REPORT = "prepare_report.json"
MULTI = ("largest", "all", "skip")


@dataclass
class PrepareReport:
    crop: dict[str, Any]
    detector: str
    images: int = 0
    faces_written: int = 0
    no_face: list[str] = field(default_factory=list)
    multiple_faces: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prepare(raw: Path, out: Path, detector: FaceDetector, *, size: int = 160,
            margin: float = 0.2, multi: str = "largest", overwrite: bool = False,
            reporter: Reporter | None = None) -> PrepareReport:
    """Detect, align and crop every face of RAW/<person>/* into OUT/<person>/."""
    if multi not in MULTI:
        raise FacecnnError(f"--multi must be one of {', '.join(MULTI)}")
    raw, out = raw.resolve(), out.resolve()
    if out == raw or raw in out.parents:
        raise FacecnnError("OUT must be outside RAW: prepare never writes into your photos")
    reporter = reporter or Reporter()
    jobs = [(person.name, f) for person in class_folders(raw) for f in files_of(person)]
    report = PrepareReport({"size": size, "margin": margin}, detector.name)
    with reporter.task("finding faces", len(jobs)) as advance:
        for person, file in jobs:
            report.images += 1
            _prepare_one(raw, out, person, file, detector, size, margin, multi, overwrite,
                         report)
            advance(1)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _prepare_one(raw: Path, out: Path, person: str, file: Path, detector: FaceDetector,
                 size: int, margin: float, multi: str, overwrite: bool,
                 report: PrepareReport) -> None:
    name = str(file.relative_to(raw))
    try:
        image = read_image(file)
    except ValueError as exc:
        report.unreadable.append({"file": name, "reason": str(exc)})
        return
    faces = detector(image)
    if not faces:
        report.no_face.append(name)
        return
    if len(faces) > 1:
        report.multiple_faces.append(name)
        if multi == "skip":
            return
        faces = faces if multi == "all" else faces[:1]
    stem = file.relative_to(raw / person).with_suffix("")
    for k, face in enumerate(faces):
        target = out / person / (f"{stem}.jpg" if len(faces) == 1 else f"{stem}_{k}.jpg")
        if target.exists() and not overwrite:
            report.kept_existing.append(str(target.relative_to(out)))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(align_face(image, face.landmarks, size, margin)).save(target,
                                                                              quality=95)
        report.faces_written += 1


def crop_settings(folder: Path) -> dict[str, Any] | None:
    """The crop size/margin of a folder `prepare` wrote, or None for any other folder."""
    report = folder / REPORT
    if not report.is_file():
        return None
    try:
        return json.loads(report.read_text())["crop"]
    except (ValueError, KeyError):
        return None
