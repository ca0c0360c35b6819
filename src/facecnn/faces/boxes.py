"""Face boxes a person drew, and how well a detector found them: recall, precision and
average precision at an IoU threshold (benchmarks/detect.py and the detector tests).

Box files: dlib's imglab XML (`<image file=...><box top left width height [ignore]/>`) or
text lines `file x1 y1 x2 y2` (one box per line, `#` comments). Boxes marked ignore (too
small, unsure) count neither way: a detection on one is no hit and no false alarm.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecnn.errors import FacecnnError

Box = tuple[float, float, float, float]


@dataclass
class Truth:
    """The boxes of one photo: faces to find, and ignored ones."""

    faces: list[Box] = field(default_factory=list)
    ignored: list[Box] = field(default_factory=list)


def read_boxes(path: Path) -> dict[Path, Truth]:
    """photo path (resolved against the box file's folder) -> its boxes."""
    path = Path(path)
    if not path.is_file():
        raise FacecnnError(f"box file not found: {path}")
    if path.suffix.lower() == ".xml":
        return _read_xml(path)
    truth: dict[Path, Truth] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            box = tuple(float(v) for v in fields[-4:])
        except ValueError:
            box = ()
        if len(fields) < 5 or len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise FacecnnError(f"{path}, line {number}: expected `file x1 y1 x2 y2`")
        name = " ".join(fields[:-4])
        truth.setdefault(path.parent / name, Truth()).faces.append(box)
    return truth


def _read_xml(path: Path) -> dict[Path, Truth]:
    try:
        root = ET.parse(path).getroot()
        truth = {}
        for image in root.iter("image"):
            boxes = truth.setdefault(path.parent / image.attrib["file"], Truth())
            for b in image.iter("box"):
                left, top = float(b.attrib["left"]), float(b.attrib["top"])
                box = (left, top, left + float(b.attrib["width"]),
                       top + float(b.attrib["height"]))
                ignored = b.attrib.get("ignore", "0") not in ("0", "")
                (boxes.ignored if ignored else boxes.faces).append(box)
        return truth
    except (ET.ParseError, KeyError, ValueError) as exc:
        raise FacecnnError(f"{path} is not a dlib box file ({exc})") from None


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@dataclass
class Scores:
    """Detection quality over a set of photos, at one IoU threshold."""

    faces: int
    found: int        # faces matched by a detection
    detections: int   # detections not on an ignored box
    ap: float

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 0.0

    @property
    def precision(self) -> float:
        return self.found / self.detections if self.detections else 1.0


def _hits(found: list[tuple[Box, float]], truth: Truth, threshold: float) -> list[tuple[float,
                                                                                        bool]]:
    """(score, hit) per counted detection, best first: each face matches at most one."""
    free = list(truth.faces)
    out = []
    for box, score in sorted(found, key=lambda d: -d[1]):
        overlaps = [iou(box, face) for face in free]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best >= 0 and overlaps[best] >= threshold:
            free.pop(best)
            out.append((score, True))
        elif not any(iou(box, other) >= threshold for other in truth.ignored):
            out.append((score, False))
    return out


def evaluate(found: dict[Path, list[tuple[Box, float]]], truth: dict[Path, Truth],
             threshold: float = 0.4) -> Scores:
    """Recall, precision and average precision (area under the precision-recall curve, every
    point, as PASCAL VOC after 2010) of detections (box, score) per photo."""
    hits = [h for photo, boxes in truth.items() for h in _hits(found.get(photo, []), boxes,
                                                                threshold)]
    faces = sum(len(t.faces) for t in truth.values())
    hits.sort(key=lambda h: -h[0])
    tp = np.cumsum([hit for _, hit in hits], dtype=np.float64)
    precision = tp / np.arange(1, len(hits) + 1) if hits else np.zeros(0)
    recall = tp / max(faces, 1)
    ap, last_recall = 0.0, 0.0
    for k in range(len(hits)):  # precision made monotone from the right, as VOC does
        if hits[k][1]:
            ap += (recall[k] - last_recall) * precision[k:].max()
            last_recall = recall[k]
    return Scores(faces, int(tp[-1]) if hits else 0, len(hits), float(ap))
