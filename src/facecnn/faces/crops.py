"""Face crops in one place: the two layouts faces are cut in, which one a model or a run
expects, and where the face lies inside a crop already cut.

- The ArcFace template with a margin, `{"size", "margin"}`: what `prepare` cuts by default,
  and what ArcFace-style embedders and runs trained on those crops take.
- dlib's face chip, `{"size", "padding", "landmarks"}`: what dlib's ResNet was trained on
  (150 px, padding 0.25), cut from dlib's 5-point (or 68-point) shape.

A crop is a plain dict, so it travels in JSON: prepare_report.json, a model's metadata, a
gallery. A backbone fed another layout than it learnt on loses much of its accuracy (see
benchmarks/classifier_path.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecnn.data.crop_layout import LEGACY_CHIP_SHAPE, Crop, is_chip
from facecnn.errors import FacecnnError
from facecnn.faces.align import align_face, template
from facecnn.faces.landmarks import dlib_shape
from facecnn.faces.result import Face

PREPARE_MARGIN = 0.2  # the margin `prepare` cuts with, and runs trained on its crops expect
PREPARE_SIZE = 160
DLIB_CHIP: Crop = {"size": 150, "padding": 0.25, "landmarks": "dlib5"}

# Where the five ArcFace points lie in a dlib chip (unit square, padding 0): the mean of
# MTCNN's points on 395 AT&T faces cut as chips (spread 1-5 px at 150 px), for embedders
# that align on the points when given a folder of chips.
DLIB_CHIP_POINTS = np.array([[0.216, 0.206], [0.782, 0.205], [0.490, 0.513],
                             [0.257, 0.776], [0.735, 0.776]])


def crop_points(crop: Crop) -> np.ndarray:
    """The five ArcFace points inside a crop cut in this layout, in its pixels."""
    if not is_chip(crop):
        return template(crop["size"], crop["margin"])
    padding = crop["padding"]
    return (DLIB_CHIP_POINTS + padding) / (1 + 2 * padding) * crop["size"]


def face_box(points: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """The box a detector would have drawn around a face with these five points inside a
    size x size crop (the proportions of dlib's HOG boxes), to find a dlib shape again."""
    eyes, mouth = points[:2, 1].mean(), points[3:, 1].mean()
    eye_to_mouth = mouth - eyes
    cx = points[:, 0].mean()
    half = 0.98 * eye_to_mouth
    top = eyes - 0.56 * eye_to_mouth
    return (max(cx - half, 0.0), max(top, 0.0), min(cx + half, size - 1.0),
            min(top + 2 * half, size - 1.0))


def crop_face(crop: Crop, size: int) -> Face:
    """The face of a size x size crop `prepare` cut in layout `crop`: its box and points."""
    points = crop_points({**crop, "size": size})
    return Face(face_box(points, size), None, points.astype(np.float32))


def make_chips(crop: Crop, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
    """Aligned uint8 crops (N, H, W, 3) of faces in photos: dlib's chip when `crop` has a
    padding (cut from the dlib shape its `landmarks` names), else the ArcFace template with a
    margin. A plain function of a dict, so worker processes cut chips without any network."""
    if not is_chip(crop):
        return np.stack([align_face(image, face.landmarks, crop["size"], crop["margin"])
                         for image, face in items])
    from facecnn.faces import dlib_models

    dlib = dlib_models.import_dlib()
    shape = crop.get("landmarks", LEGACY_CHIP_SHAPE)
    chips = []
    for image, face in items:
        around, box = _surroundings(image, face.box)
        chips.append(dlib.get_face_chip(around, dlib_shape(around, box, shape),
                                        size=crop["size"], padding=crop["padding"]))
    return np.stack(chips)


def _surroundings(image: np.ndarray, box: tuple) -> tuple[np.ndarray, tuple]:
    """The photo around a face (its box and a box's width on every side) and the box in it.

    dlib fills the part of a chip beyond the photo with black, a wide frame around a tight
    crop. Here the photo's edge pixels are repeated instead, as for ArcFace chips (align.py).
    In benchmarks/crops.py, known people's crops were then named more often when cut tight
    (0.925 against 0.886), grey (0.925, 0.910) or tight and half in shadow (0.597, 0.517),
    a little less often as 112 px ArcFace chips (0.915, 0.925) or dlib chips (0.935, 0.950).
    A face whose surroundings lie inside the photo gets the very chip it got before."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0)
    height, width = image.shape[:2]
    left, top = int(np.floor(x1 - side)), int(np.floor(y1 - side))
    right, bottom = int(np.ceil(x2 + side)), int(np.ceil(y2 + side))
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        return image, box
    inside = image[max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
    around = cv2.copyMakeBorder(inside, max(-top, 0), max(bottom - height, 0), max(-left, 0),
                                max(right - width, 0), cv2.BORDER_REPLICATE)
    return around, (x1 - left, y1 - top, x2 - left, y2 - top)


def resized(crop: Crop, image: np.ndarray) -> np.ndarray:
    """A crop already cut in `crop`'s layout at `crop`'s size."""
    import cv2

    size = crop["size"]
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA
                      if image.shape[0] > size else cv2.INTER_LINEAR)


def run_crop(meta: dict[str, Any]) -> Crop:
    """The crop a run's faces are cut as: its input size, in the layout of the crops it was
    trained on (runs on folders `prepare` did not write, or from before that was recorded:
    prepare's default margin)."""
    return {**(meta.get("crop") or {"margin": PREPARE_MARGIN}), "size": meta["img_size"]}


def jpeg_bytes(pixels: np.ndarray, quality: int = 95) -> bytes:
    """An RGB (or grey) crop as the bytes of a JPEG file: what every crop written is."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def classifier_inputs(meta: dict[str, Any], items: list[tuple[np.ndarray, Face]]
                      ) -> np.ndarray:
    """(N, size, size, channels) uint8: faces cut as a trained classifier's run was trained
    on them (`run_crop`), in its channels (what its `probabilities` takes)."""
    import cv2

    chips = np.stack(make_chips(run_crop(meta), items))
    if meta["in_chans"] == 1:
        grey = [cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) for chip in chips]
        return np.stack(grey)[..., None]
    return chips


def model_crop(name: str) -> Crop:
    """The crop a registered model takes: its pretrained weights' own layout (dlib's chip for
    dlib_resnet), else prepare's template at the model's input size."""
    from facecnn.models.catalog import model_info

    info = model_info(name)
    return dict(info.crop) if info.crop else {"size": info.img_size, "margin": PREPARE_MARGIN}


def crop_for(model_or_run: str) -> Crop:
    """`prepare --crop`: a run folder or model file (its recorded crop), else a model name."""
    path = Path(model_or_run).expanduser()
    if path.exists():
        from facecnn.inference.pytorch import read_meta

        return run_crop(read_meta(path))
    try:
        return model_crop(model_or_run)
    except FacecnnError as exc:
        raise FacecnnError(f"--crop {model_or_run!r} is neither a run folder nor a model: "
                           f"{exc}") from None

