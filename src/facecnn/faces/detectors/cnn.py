"""dlib's MMOD CNN face detector run by dlib itself (C++, one core, no BLAS in dlib-bin): the
reference `dlib_cnn` is checked against."""

from __future__ import annotations

import numpy as np

from facecnn.faces import dlib_models
from facecnn.faces.detectors.base import Detection, Detector, register
from facecnn.faces.model_files import MMOD


@register("cnn", help="dlib's MMOD CNN run by dlib's C++: dlib_cnn's reference, very slow "
                      "on a CPU")
class DlibCnnCpp(Detector):
    models = (MMOD,)
    speed = "about 7 s a group photo"

    def __init__(self, upsample: int = 1, device: str = "auto") -> None:
        super().__init__(upsample, device)
        dlib_models.cnn_detector()

    def detect(self, image: np.ndarray, min_side: int) -> list[Detection]:
        found = dlib_models.cnn_detector()(image, self.upsample)
        return [Detection((float(d.rect.left()), float(d.rect.top()), float(d.rect.right()),
                           float(d.rect.bottom())), float(d.confidence)) for d in found]
