"""Small JPEGs of faces that a gallery keeps beside each face's vector, so a person's faces can
be looked at (and a wrong one fixed) with no photo at hand (gallery/faces.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from facecnn.faces.crops import jpeg_bytes

SIDE = 96  # pixels: a face in a grid, about 3 KB each
MARGIN = 0.2  # of the box's larger side, on every side: some hair and chin around the face


def thumbnail(image: np.ndarray, box: Sequence[float]) -> bytes:
    """The face at `box` (x1, y1, x2, y2) of an RGB or grey image: a square around it, with a
    margin, SIDE pixels wide, as a JPEG (what lies outside the image is black)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1) * (0.5 + MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    square = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    face = Image.fromarray(np.asarray(image)).convert("RGB").crop(square)
    return jpeg_bytes(np.asarray(face.resize((SIDE, SIDE), Image.Resampling.BILINEAR)), 85)


def photo_thumbnails(files: Sequence[str | Path], boxes: Sequence[Sequence[float]]
                     ) -> list[bytes | None]:
    """The thumbnail of each (photo, box), each photo read once, at the smallest scale that
    still gives its smallest face SIDE pixels; None for a face whose photo cannot be read now
    (a face is enrolled without one rather than not at all)."""
    from facecnn.data.decode import read_reduced

    faces: dict[str, list[int]] = {}
    for k, file in enumerate(files):
        faces.setdefault(str(file), []).append(k)
    found: list[bytes | None] = [None] * len(files)
    for file, rows in faces.items():
        smallest = min(max(boxes[k][2] - boxes[k][0], boxes[k][3] - boxes[k][1]) for k in rows)
        factor = int(min(8, max(1, smallest * (1 + 2 * MARGIN) // SIDE)))
        try:
            image, reduced = read_reduced(file, factor)
        except (OSError, ValueError):
            continue
        for k in rows:
            found[k] = thumbnail(image, [float(v) / reduced for v in boxes[k]])
    return found
