"""What every pretrained model file is: where it comes from and who may use it, for
`facecnn detectors` and docs/models.md (users shipping a product need to know)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFile:
    """A weight file a detector, landmark step or embedder loads."""

    name: str
    source: str
    licence: str


FRM = "face-recognition-models (PyPI)"
DLIB_68 = ModelFile("shape_predictor_68_face_landmarks.dat", FRM,
                    "iBUG 300-W terms: no commercial use")
DLIB_5 = ModelFile("shape_predictor_5_face_landmarks.dat", FRM, "CC0-1.0")
MTCNN = ModelFile("pnet.lz4, rnet.lz4, onet.lz4", "mtcnn (PyPI)", "MIT")
MMOD = ModelFile("mmod_human_face_detector.dat", FRM, "CC0-1.0")
