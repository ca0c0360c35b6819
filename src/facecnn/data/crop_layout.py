"""The layout face crops were cut in, as plain data: what `prepare` records beside the crops it
writes and a model's metadata carries, so a data folder and a set of weights can be compared
without any face model (training reads it; faces/crops.py cuts crops in these layouts).

- The ArcFace template with a margin, `{"size", "margin"}`.
- dlib's face chip, `{"size", "padding", "landmarks"}`, cut from a dlib shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Crop = dict[str, Any]
LEGACY_CHIP_SHAPE = "dlib68"  # galleries and chips that do not say were cut from 68 points
PREPARE_REPORT = "prepare_report.json"  # what `prepare` writes beside its crops


@dataclass
class PrepareReport:
    """What `prepare` (or `cluster`, for its folders of crops) writes as PREPARE_REPORT: the
    crops' layout and the detector that found them, what became of every photo, and where
    each crop's face is (`faces`: crop, relative to OUT -> {"photo": its resolved path,
    "box", "landmarks" (None where the detector gave none)}), so the faces can be cut again
    in another layout (apps/recut.py)."""

    crop: dict[str, Any]
    detector: str
    images: int = 0
    faces_written: int = 0
    no_face: list[str] = field(default_factory=list)
    multiple_faces: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)
    faces: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def crops(self) -> int:
        """The crops OUT holds for RAW's photos: written now or kept from before."""
        return self.faces_written + len(self.kept_existing)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_chip(crop: Crop) -> bool:
    """Whether `crop` is dlib's chip (cut from a dlib shape, not from the five points)."""
    return "padding" in crop


def describe(crop: Crop) -> str:
    if is_chip(crop):
        return (f"dlib chips ({crop['size']} px, padding {crop['padding']:g}, "
                f"{crop.get('landmarks', LEGACY_CHIP_SHAPE)} points)")
    return f"ArcFace-template crops ({crop['size']} px, margin {crop['margin']:g})"


def same_layout(a: Crop, b: Crop) -> bool:
    """The same layout at any size: a resize turns one into the other."""
    if is_chip(a) != is_chip(b):
        return False
    if is_chip(a):
        return (a["padding"] == b["padding"]
                and a.get("landmarks", LEGACY_CHIP_SHAPE) == b.get("landmarks", LEGACY_CHIP_SHAPE))
    return a["margin"] == b["margin"]


def crop_settings(folder: Path) -> Crop | None:
    """The crop layout of a folder `prepare` wrote, or None for any other folder."""
    report = folder / PREPARE_REPORT
    if not report.is_file():
        return None
    try:
        return json.loads(report.read_text())["crop"]
    except (ValueError, KeyError):
        return None
