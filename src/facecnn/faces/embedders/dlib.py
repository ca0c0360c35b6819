"""dlib's face network (ResNet, 128-D, trained on dlib's 150 px chips) run by dlib's C++; its
PyTorch port is `dlib_torch` (dlib_torch.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from facecnn.data.crop_layout import LEGACY_CHIP_SHAPE
from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models
from facecnn.faces.crops import DLIB_CHIP
from facecnn.faces.embedders.base import Embedder, register
from facecnn.faces.landmarks import CHIP_SHAPES
from facecnn.faces.model_files import DLIB_5, FRM, ModelFile

RESNET = ModelFile("dlib_face_recognition_resnet_model_v1.dat", FRM, "CC0-1.0")


@register("dlib", help="dlib's ResNet (128-D), dlib's C++")
class DlibEmbedder(Embedder):
    """`landmarks`: the dlib shape chips are cut from, `dlib5` (CC0; face_recognition's
    choice) or `dlib68` (non-commercial); on AT&T both give the same accuracy (balanced
    accuracy 0.995 vs 0.994)."""

    default_threshold = 0.6  # dlib's own recommendation
    family = "dlib"
    unit_vectors = False
    vector_length = 1.4  # its vectors are 1.2-1.7 long, median 1.41 over lfw_dev's faces
    embeds_in_workers = True
    jitters = True
    models = (RESNET, DLIB_5)  # the network, and the landmarks its chips are cut from
    dim = 128

    def __init__(self, flip: bool = False, batch_size: int = 32, jitter: int = 0,
                 landmarks: str = "dlib5") -> None:
        super().__init__(flip, batch_size)
        if landmarks not in CHIP_SHAPES:
            raise FacecnnError(f"dlib chips are cut from {' or '.join(CHIP_SHAPES)} landmarks, "
                               f"not {landmarks!r}")
        self.jitter = jitter
        self.crop = {**DLIB_CHIP, "landmarks": landmarks}
        self.model = self._network()

    def _network(self) -> Any:
        return dlib_models.face_encoder()

    def match_crop(self, crop: dict[str, Any]) -> None:
        """Galleries from before the 5-point chips do not say: they were cut from 68."""
        self.crop = {**self.crop, "landmarks": crop.get("landmarks", LEGACY_CHIP_SHAPE)}

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        vectors = self.model.compute_face_descriptor(list(chips), self.jitter)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)
