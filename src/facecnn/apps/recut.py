"""Faces `prepare` cut in one layout, cut again in another from the photos it recorded: what
`train --pretrained` feeds a face model whose weights learnt on another crop (dlib's chips for
dlib_resnet), so that `prepare` then `train` is right without knowing `prepare --crop`.

The copy lives in facecnn's cache folder, keyed by the recorded faces and the layout, and is
made once: a second run on the same folder reuses it. It is written whole or not at all (its
own prepare_report.json, which says it is complete, comes last).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from facecnn.data.cache import default_cache_dir
from facecnn.data.crop_layout import PREPARE_REPORT, Crop, PrepareReport, is_chip
from facecnn.data.decode import read_image
from facecnn.errors import FacecnnError
from facecnn.faces.crops import jpeg_bytes, make_chips
from facecnn.faces.result import Face
from facecnn.fileio import write_bytes_atomic, write_text_atomic
from facecnn.progress import Reporter


def recut(data: Path, crop: Crop, reporter: Reporter | None = None) -> Path:
    """`data` (a folder `prepare` wrote) with every recorded face cut in `crop`; one line if
    its report records no photos (an older `prepare`) or a photo is gone."""
    report = json.loads((data / PREPARE_REPORT).read_text())
    faces = report.get("faces")
    if not faces:
        raise FacecnnError(f"{data / PREPARE_REPORT} records no photos (an older facecnn "
                           "prepared it): run `facecnn prepare` again")
    key = hashlib.sha256(json.dumps([faces, crop], sort_keys=True).encode()).hexdigest()[:16]
    out = default_cache_dir() / "recut" / key
    if (out / PREPARE_REPORT).is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)  # an earlier run stopped half-way
    reporter = reporter or Reporter()
    by_photo: dict[str, list[tuple[str, dict]]] = {}
    for name, face in faces.items():
        by_photo.setdefault(face["photo"], []).append((name, face))
    with reporter.task("cutting the faces again", len(faces)) as advance:
        for photo, items in by_photo.items():
            try:
                image = read_image(photo)
            except (OSError, ValueError) as exc:
                raise FacecnnError(f"cannot cut {items[0][0]} again: its photo {photo} is "
                                   f"gone or unreadable ({exc})") from None
            found = [Face(tuple(f["box"]), landmarks=None if f["landmarks"] is None
                          else np.asarray(f["landmarks"], np.float32)) for _, f in items]
            _with_points(image, found, crop)
            for (name, _), chip in zip(items, make_chips(crop, [(image, f) for f in found])):
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(out / name, jpeg_bytes(chip))
            advance(len(items))
    done = PrepareReport(dict(crop), report.get("detector", "?"), len(by_photo), len(faces))
    write_text_atomic(out / PREPARE_REPORT, json.dumps(done.to_dict(), indent=2) + "\n")
    return out


def _with_points(image: np.ndarray, faces: list[Face], crop: Crop) -> None:
    """Five points for the faces that lack them, where `crop` is cut from them (O-Net)."""
    missing = [f for f in faces if f.landmarks is None]
    if is_chip(crop) or not missing:
        return
    from facecnn.faces.landmarks import create_landmarker

    points = create_landmarker("onet").points([image], [[f.box for f in missing]])[0]
    for face, found in zip(missing, points):
        face.landmarks = found
