"""`facecnn capture OUT --person NAME`: face crops of one person from a camera or a video,
ready for `enroll` and `train` (seed C's face_capture, as a user needs it).

- Each image saved is the person's face aligned and cut as `prepare` cuts, never the whole
  frame; OUT/prepare_report.json records the layout, so `enroll` and `train` take the files
  as crops.
- One person per capture: the first face seen (the largest of its frame) is whom NAME names;
  after that a frame's face joins only when its vector is within the embedder's threshold of
  a face already saved, so other people in the frame, or after a cut, are left out. The next
  --person starts with a face that is none of the people captured before.
- No near-duplicates: a face whose vector is within DUPLICATE of one saved already (a still
  frame) is passed over.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facecnn.data.crop_layout import PREPARE_REPORT, PrepareReport, crop_settings, describe
from facecnn.errors import FacecnnError
from facecnn.faces.crops import PREPARE_MARGIN, PREPARE_SIZE, jpeg_bytes, make_chips
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import Embedder
from facecnn.faces.names import check_name
from facecnn.fileio import free_path, write_bytes_atomic, write_text_atomic
from facecnn.progress import Reporter
from facecnn.video.output import show as show_frame
from facecnn.video.streams import VideoSource

CROP = {"size": PREPARE_SIZE, "margin": PREPARE_MARGIN}  # prepare's default layout
DUPLICATE = 0.15  # dlib-vector distance under which two faces are one still frame


class _Person:
    """The faces saved for one person: their vectors, to tell them from others."""

    def __init__(self, name: str, threshold: float) -> None:
        self.name, self.threshold = name, threshold
        self.vectors: list[np.ndarray] = []

    def nearest(self, vector: np.ndarray) -> float:
        if not self.vectors:
            return float("inf")
        return float(np.linalg.norm(np.stack(self.vectors) - vector, axis=1).min())


def capture_faces(out: Path, people: list[str], *, count: int, source: str | int,
                  detector: FaceDetector, embedder: Embedder, every: int = 1,
                  show: bool = False, reporter: Reporter | None = None) -> dict[str, list[Path]]:
    """For each person in turn, save `count` aligned crops of their face into out/<person>/
    (numbered after any files there); returns the files saved per person."""
    reporter = reporter or Reporter()
    names = [check_name(p) for p in people]
    _claim_layout(out)
    video = VideoSource(source)
    frames = (frame for frame in video if frame.index % every == 0)
    done: list[_Person] = []
    saved: dict[str, list[Path]] = {}
    try:
        for name in names:
            person = _Person(name, embedder.default_threshold)
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            saved[name] = []
            with reporter.task(f"capturing {name}", count) as advance:
                for frame in frames:
                    rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
                    chip = _their_face(rgb, detector, embedder, person, done)
                    if chip is not None:
                        target = free_path(folder, f"{name}_{len(saved[name]) + 1:04d}.jpg")
                        write_bytes_atomic(target, jpeg_bytes(chip))
                        saved[name].append(target)
                        advance(1)
                    if show and not show_frame(frame.image) or len(saved[name]) >= count:
                        break
            done.append(person)
    finally:
        video.close()
    return saved


def _their_face(image: np.ndarray, detector: FaceDetector, embedder: Embedder,
                person: _Person, others: list[_Person]) -> np.ndarray | None:
    """The crop of `person`'s face in `image` when it is there and not a near-duplicate
    (the record of its vector kept); None otherwise."""
    faces = detector(image)
    if not faces:
        return None
    vectors = embedder.embed([(image, face) for face in faces])
    if person.vectors:
        distances = [person.nearest(v) for v in vectors]
        best = int(np.argmin(distances))
        if distances[best] > person.threshold or distances[best] < DUPLICATE:
            return None
    else:  # the first face: the largest that is nobody captured before
        best = next((k for k, v in enumerate(vectors)
                     if all(o.nearest(v) > o.threshold for o in others)), None)
        if best is None:
            return None
    person.vectors.append(vectors[best])
    return make_chips(CROP, [(image, faces[best])])[0]


def _claim_layout(out: Path) -> None:
    """OUT's crops are in CROP's layout: say so in its prepare_report.json, or refuse a folder
    `prepare` filled with another layout (one folder, one layout)."""
    found = crop_settings(out)
    if found is not None and found != CROP:
        raise FacecnnError(f"{out} holds {describe(found)}; capture cuts {describe(CROP)}: "
                           "choose another folder")
    if not (out / PREPARE_REPORT).is_file():
        out.mkdir(parents=True, exist_ok=True)
        report = PrepareReport(CROP, "capture")
        write_text_atomic(out / PREPARE_REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
