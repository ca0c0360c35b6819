"""`facecnn prepare RAW OUT`: one aligned crop per face, the folder-per-person layout kept.

RAW is only ever read: an OUT whose person folders would be RAW, lie inside it or hold it is
refused, and no crop is written inside RAW. Existing files in OUT are kept unless `overwrite`;
crops and the report are written whole or not at all, so a killed run leaves no half-written
crop for the rerun to keep. Every image that gave no face, several faces or no pixels at all,
and every empty person folder, is listed in OUT/prepare_report.json.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from facecnn.data.crop_layout import PREPARE_REPORT, Crop, PrepareReport, is_chip
from facecnn.data.decode import read_image
from facecnn.data.folders import class_folders, files_of
from facecnn.errors import FacecnnError
from facecnn.faces.crops import PREPARE_MARGIN, PREPARE_SIZE, jpeg_bytes, make_chips
from facecnn.faces.detect import FaceDetector
from facecnn.fileio import remove_stale_temps, write_bytes_atomic, write_text_atomic
from facecnn.progress import Reporter

MULTI = ("largest", "all", "skip")


class CropNames:
    """Every photo of one person its own crop names, the same on every rerun.

    A photo's crop is `<stem>.jpg`, or `<name>.jpg` (`photo.png.jpg`) when another photo of its
    folder has that stem or that name; the faces of a photo with several are `<base>_<k>.jpg`,
    with as many `_` as it takes to clash with no other crop of the folder. Names are compared
    case-insensitively, as some file systems do.
    """

    def __init__(self, person: Path, files: list[Path]) -> None:
        by_folder: dict[Path, list[Path]] = defaultdict(list)
        for file in files:
            by_folder[file.parent].append(file)
        self.base: dict[Path, Path] = {}
        for group in by_folder.values():
            stems = Counter(f.stem.casefold() for f in group)
            names = {f.name.casefold() for f in group}
            for f in group:
                stem = f.stem.casefold()
                clash = stems[stem] > 1 or (stem != f.name.casefold() and stem in names)
                self.base[f] = f.relative_to(person).with_name(f.name if clash else f.stem)
        self.taken = {_key(base) for base in self.base.values()}
        self.folders = {base.parent for base in self.base.values()}

    def __call__(self, file: Path, faces: int) -> list[Path]:
        """The crop paths (relative to the person's folder) of `file`'s `faces` faces."""
        base = self.base[file]
        if faces == 1:
            return [_jpg(base)]

        def named(sep: str) -> list[Path]:
            return [base.with_name(f"{base.name}{sep}{k}") for k in range(faces)]

        sep = "_"
        while self.taken.intersection(map(_key, named(sep))):
            sep += "_"
        self.taken.update(map(_key, named(sep)))
        return [_jpg(name) for name in named(sep)]


def _key(path: Path) -> str:
    return str(path).casefold()


def _jpg(base: Path) -> Path:
    return base.with_name(base.name + ".jpg")


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(raw: Path, out: Path, people: list[Path]) -> None:
    """Refuse an OUT where a crop could land in RAW (paths resolved, links followed)."""
    if _within(out, raw):
        raise FacecnnError("OUT must be outside RAW: prepare never writes into your photos")
    for person in people:
        target = (out / person.name).resolve()
        if _within(target, raw) or _within(raw, target):
            raise FacecnnError(f"OUT/{person.name} ({target}) would be RAW, inside it or hold "
                               "it: prepare never writes into your photos; choose another OUT")


DEFAULT_CROP: Crop = {"size": PREPARE_SIZE, "margin": PREPARE_MARGIN}


def prepare(raw: Path, out: Path, detector: FaceDetector, *, crop: Crop = DEFAULT_CROP,
            multi: str = "largest", overwrite: bool = False,
            reporter: Reporter | None = None) -> PrepareReport:
    """Detect, align and crop every face of RAW/<person>/* into OUT/<person>/, in layout
    `crop` (faces/crops.py), which the report records for train, enroll and recognize."""
    if multi not in MULTI:
        raise FacecnnError(f"--multi must be one of {', '.join(MULTI)}")
    raw, out = raw.resolve(), out.resolve()
    people = class_folders(raw)
    check_out(raw, out, people)
    reporter = reporter or Reporter()
    report = PrepareReport(dict(crop), detector.name)
    jobs = []
    for person in people:
        files = files_of(person)
        if not files:
            report.empty_folders.append(person.name)
        names = CropNames(person, files)
        for folder in names.folders:
            remove_stale_temps(out / person.name / folder)  # what killed runs left
        jobs += [(person, file, names) for file in files]
    with reporter.task("finding faces", len(jobs)) as advance:
        for person, file, names in jobs:
            report.images += 1
            _prepare_one(raw, out, person, file, names, detector, crop, multi, overwrite,
                         report)
            advance(1)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / PREPARE_REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _prepare_one(raw: Path, out: Path, person: Path, file: Path, names: CropNames,
                 detector: FaceDetector, crop: Crop, multi: str, overwrite: bool,
                 report: PrepareReport) -> None:
    name = str(file.relative_to(raw))
    try:
        image = read_image(file)
    except ValueError as exc:
        report.unreadable.append({"file": name, "reason": str(exc)})
        return
    faces = detector.detect_batch([image], landmarks=not is_chip(crop))[0]
    if not faces:
        report.no_face.append(name)
        return
    if len(faces) > 1:
        report.multiple_faces.append(name)
        if multi == "skip":
            return
        faces = faces if multi == "all" else faces[:1]
    for face, crop_path in zip(faces, names(file, len(faces))):
        target = out / person.name / crop_path
        report.faces[(Path(person.name) / crop_path).as_posix()] = {
            "photo": str(file.resolve()), "box": [round(float(v), 2) for v in face.box],
            "landmarks": None if face.landmarks is None else
            [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks]}
        if target.exists() and not overwrite:
            report.kept_existing.append(str(target.relative_to(out)))
            continue
        _write_crop(target, make_chips(crop, [(image, face)])[0], raw)
        report.faces_written += 1


def _write_crop(target: Path, pixels: np.ndarray, raw: Path) -> None:
    """Write one crop whole, and never inside RAW (a link in OUT may point there)."""
    if _within(target.parent.resolve(), raw):
        raise FacecnnError(f"{target} lies inside RAW: prepare never writes into your photos")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, jpeg_bytes(pixels))
