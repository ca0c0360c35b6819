"""Name the faces in images, videos and camera frames: detect -> embed -> gallery, or detect ->
align -> a trained CNN classifier (seed C's system). Strangers come out "unknown".
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.decode import as_rgb, read_image
from facecnn.errors import FacecnnError
from facecnn.faces import embedders
from facecnn.faces.config import PipelineConfig
from facecnn.faces.crops import classifier_inputs
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import Embedder, create_embedder
from facecnn.faces.gallery import UNKNOWN, Gallery, open_gallery
from facecnn.faces.pipeline import FacePipeline, with_vectors
from facecnn.faces.result import Face, Result
from facecnn.faces.threshold import Threshold, resolve_threshold

# an embedder giving the same vectors for less CPU a face: dlib's network in PyTorch, faster
# than dlib's C++ on batches and on one face at a time (what video tracks embed), once
# PyTorch's 1.5 s import is paid: for a few photos dlib's C++ answers sooner
FASTER = {"dlib": "dlib_torch"}
FEW_PHOTOS = 4


class Recognizer:
    """`Recognizer(gallery="team.db")("photo.jpg") -> Result`: its faces, largest first, each
    named (a path, an RGB numpy array or a PIL image).

    With a gallery: identification by the gallery's metric, unknown above `threshold`, else the
    gallery's stored threshold (read at every answer), else the embedder's default. With
    `model=RUN`: seed C's classifier, unknown below `min_confidence` softmax probability. A gallery
    made by an embedder in FASTER is searched with its faster twin (the same vectors) unless
    `embedder` is given or `photos` says that only a few (FEW_PHOTOS or fewer) are coming.

    Faces are named by the gallery's namer (faces/namers.py: each person's mean direction, or
    the FAISS index of an older "euclidean" gallery), synced with the gallery before every
    answer, so writes from any process count at once; while it is empty, everyone is unknown.
    The FAISS index is kept either way: `search` answers from it.

    Safe to share between threads (a server's, a video's decoder and namer): each stage takes
    turns at its own model (the detector's lock, the embedder's or classifier's lock here, the
    index's), so one call's detection overlaps another's embedding.
    """

    def __init__(self, *, gallery: str | Path | Gallery | None = None,
                 model: str | Path | None = None,
                 detector: FaceDetector | None = None, threshold: float | None = None,
                 min_confidence: float = 0.5,
                 embedder: Embedder | None = None, device: str = "auto",
                 workers: int | None = None, photos: int | None = None) -> None:
        if (gallery is None) == (model is None):
            raise FacecnnError("give either a gallery (--gallery) or a trained model (--model)")
        self.detector = detector or FaceDetector()
        self._embedding = threading.Lock()  # dlib's network is not safe in two threads at once
        self.threshold, self.min_confidence = threshold, min_confidence
        self.gallery = self.classifier = self.index = self.namer = None
        if gallery is not None:
            self.gallery = gallery if isinstance(gallery, Gallery) else open_gallery(gallery)
            made_by = self.gallery.embedder
            # the faster twin cannot jitter, and is slower to start than a few photos take
            own = (photos is not None and photos <= FEW_PHOTOS) or self.gallery.views["jitter"]
            self.embedder = embedder or create_embedder(
                made_by if own else FASTER.get(made_by, made_by), device=device)
            self.gallery.check_embedder(self.embedder)
            self.pipeline = FacePipeline(self.detector, self.embedder, workers)
            from facecnn.faces.index import GalleryIndex
            from facecnn.faces.namers import namer_for

            self.index = GalleryIndex.for_gallery(self.gallery, must_save=False)
            self.namer = namer_for(self.gallery, self.index)
            self._index_lock = threading.Lock()  # a sync may append to the index
        else:
            from facecnn.inference import load_classifier

            self.classifier = load_classifier(Path(model), device)

    @classmethod
    def from_config(cls, config: PipelineConfig, **answering: Any) -> Recognizer:
        """The recognizer whose detector and embedder `config` describes (the gallery's own
        embedder unless it names one); `answering`: gallery or model, threshold,
        min_confidence, photos."""
        return cls(detector=FaceDetector.from_config(config),
                   embedder=embedders.from_config(config) if config.embedder else None,
                   device=config.device, workers=config.workers, **answering)

    def __call__(self, source: str | Path | np.ndarray | Any) -> Result:
        image, file = as_image(source)
        faces = self.detect(image)
        return Result(file, self.name_faces(image, faces) if faces else [], image=image)

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces of an RGB image, with the five points only where the chips need them
        (dlib's chips need none: the landmark step is skipped for them)."""
        landmarks = self.gallery is None or self.embedder.needs_landmarks
        return self.detector.detect_batch([image], landmarks)[0]

    def name_embedded(self, faces: list[Face]) -> list[Face]:
        """Gallery answers for faces already embedded (by this process or a worker): exactly
        Gallery.identify's (names, scores and distances; a FAISS index up to its exact limit
        of faces)."""
        if not faces:
            return faces
        threshold = self.current_threshold().value
        vectors = np.stack([face.vector for face in faces])
        with self._index_lock:
            self.namer = self.namer.sync()
            if len(self.namer) == 0:  # nobody enrolled yet: everyone is a stranger
                return [face.named(UNKNOWN, 0.0, None) for face in faces]
            matches = self.namer.identify(vectors, threshold)
        return [face.named(m.name, m.score, m.distance) for face, m in zip(faces, matches)]

    def current_threshold(self) -> Threshold:
        """The threshold of this answer, by the one rule (faces/threshold.py)."""
        return resolve_threshold(self.threshold, self.gallery, self.embedder)

    def embed(self, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
        """The gallery embedder's vectors of (image, face) pairs, as one batch."""
        with self._embedding:
            return self.embedder.embed(items)

    def name_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """The faces of an RGB image, embedded and named (the records are enriched)."""
        if self.gallery is not None:
            vectors = self.embed([(image, face) for face in faces])
            return self.name_embedded(with_vectors(faces, vectors))
        meta = self.classifier.meta
        crops = classifier_inputs(meta, [(image, face) for face in faces])
        with self._embedding:
            probs = self.classifier.probabilities(crops)
        for face, p in zip(faces, probs):
            best = int(np.argmax(p))
            face.named(meta["classes"][best] if p[best] >= self.min_confidence else UNKNOWN,
                       float(p[best]), None)
        return faces


def as_image(source: str | Path | np.ndarray | Any) -> tuple[np.ndarray, str | Path]:
    """An RGB array and a name for a photo given as a path, an RGB numpy array or a PIL
    image."""
    if isinstance(source, (str, Path)):
        return read_image(Path(source)), source
    if isinstance(source, np.ndarray):
        return as_rgb(source), "image"
    if hasattr(source, "convert"):  # a PIL image
        return np.asarray(source.convert("RGB")), getattr(source, "filename", "") or "image"
    raise FacecnnError(f"give a photo as a path, a numpy array or a PIL image, not "
                       f"{type(source).__name__}")
