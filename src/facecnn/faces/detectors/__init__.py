"""Face detectors as plug-ins: each module registers one or more `Detector`s by name, so a
new detector is one new file here (imported below). Heavy libraries are imported when a
detector is built, not here, so listing the names stays instant."""

from facecnn.faces.detectors.base import DETECTORS, Detection, Detector, ModelFile

# isort: off
# imported for registering themselves, in the order `facecnn detectors` lists them
from facecnn.faces.detectors import hog  # noqa: F401, E402
from facecnn.faces.detectors import haar  # noqa: F401, E402
from facecnn.faces.detectors import mtcnn  # noqa: F401, E402
from facecnn.faces.detectors import dlib_cnn  # noqa: F401, E402
from facecnn.faces.detectors import cnn  # noqa: F401, E402
# isort: on

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_MIN_SIZE", "DETECTORS", "Detection", "Detector",
           "ModelFile", "create_detector"]
# The best recall at a cost a folder of photos can bear (benchmarks/detect.py and the README):
# MTCNN finds smaller faces than dlib's HOG, finds every face HOG finds on our test photos,
# and its MIT-licensed weights need no non-commercial landmark model for its five points.
DEFAULT_DETECTOR = "mtcnn"
# The smallest face side kept: MTCNN's smallest window. Crowds of 18-44 px faces went from AP
# 0.60 at 20 px to 1.00, group photos and LFW's subjects unchanged, for 20-50% more time.
DEFAULT_MIN_SIZE = 12


def create_detector(name: str, *, upsample: int = 1, device: str = "auto") -> Detector:
    """The detector registered as `name` (a one-line error with the choices otherwise)."""
    return DETECTORS.get(name)(upsample=upsample, device=device)
