"""Name the faces in images, videos and camera frames: detect -> embed -> gallery, or detect ->
align -> a trained CNN classifier (seed C's system). Strangers come out "unknown".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.crops import make_chips, run_crop
from facecnn.faces.detect import Face, FaceDetector
from facecnn.faces.embedders import Embedder, create_embedder
from facecnn.faces.gallery import UNKNOWN, Gallery, open_gallery
from facecnn.faces.pipeline import FacePipeline
from facecnn.faces.threshold import Threshold, resolve_threshold

UNCERTAIN = "uncertain"  # a video track whose views disagree (facecnn.video.votes)
# an embedder giving the same vectors for less CPU a face: dlib's network in PyTorch, faster
# than dlib's C++ on one face at a time (what video tracks embed)
FASTER = {"dlib": "dlib_torch"}


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]
    name: str
    score: float
    distance: float | None
    track: int | None = None  # in videos: the face's track (one person followed over time)

    def to_dict(self) -> dict[str, Any]:
        out = {"box": [int(round(v)) for v in self.box], "name": self.name,
               "score": round(float(self.score), 4),
               "distance": None if self.distance is None else round(float(self.distance), 4)}
        return out if self.track is None else {**out, "track": self.track}


class Recognizer:
    """`Recognizer(gallery="team.db")(rgb_image) -> [FaceResult, ...]`.

    With a gallery: nearest-neighbour (or per-person mean) identification, unknown above
    `threshold`, else the gallery's stored threshold (read at every answer), else the
    embedder's default. With `model=RUN`: seed C's classifier, unknown below `min_confidence`
    softmax probability. `fast`: search a gallery made by an embedder in FASTER with its faster
    twin (same vectors) unless `embedder` is given.

    Mode "nearest" searches the gallery's FAISS index (loaded or built once, then synced with
    the gallery before every answer, so writes from any process count at once; while it is
    empty, everyone is unknown); mode "mean"
    scans the per-person means in the gallery: an index of means would need rebuilding on
    every enrolment of someone already known, and there are far fewer people than faces.

    Safe to share between threads (a server's, a video's decoder and namer): each stage takes
    turns at its own model (the detector's lock, the embedder's or classifier's lock here, the
    index's), so one call's detection overlaps another's embedding.
    """

    def __init__(self, *, gallery: str | Path | Gallery | None = None,
                 model: str | Path | None = None,
                 detector: FaceDetector | None = None, threshold: float | None = None,
                 mode: str = "nearest", min_confidence: float = 0.5,
                 embedder: Embedder | None = None, device: str = "auto",
                 workers: int | None = None, fast: bool = False) -> None:
        if (gallery is None) == (model is None):
            raise FacecnnError("give either a gallery (--gallery) or a trained model (--model)")
        self.detector = detector or FaceDetector()
        self._embedding = threading.Lock()  # dlib's network is not safe in two threads at once
        self.threshold, self.mode, self.min_confidence = threshold, mode, min_confidence
        self.gallery = self.classifier = self.index = None
        if gallery is not None:
            self.gallery = gallery if isinstance(gallery, Gallery) else open_gallery(gallery)
            made_by = self.gallery.embedder
            self.embedder = embedder or create_embedder(
                FASTER.get(made_by, made_by) if fast else made_by, device=device)
            self.gallery.check_embedder(self.embedder)
            self.pipeline = FacePipeline(self.detector, self.embedder, workers)
            if mode == "nearest":
                from facecnn.faces.index import GalleryIndex

                self.index = GalleryIndex.for_gallery(self.gallery, must_save=False)
                self._index_lock = threading.Lock()  # a sync may append to the index
        else:
            from facecnn.inference import load_classifier

            self.classifier = load_classifier(Path(model), device)

    def __call__(self, image: np.ndarray) -> list[FaceResult]:
        faces = self.detect(image)
        return self.name_faces(image, faces) if faces else []

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces of an RGB image, with the five points only where the chips need them
        (dlib's chips need none: the landmark step is skipped for them)."""
        landmarks = self.gallery is None or self.embedder.needs_landmarks
        return self.detector.detect_batch([image], landmarks)[0]

    def name_vectors(self, boxes: list[tuple[float, float, float, float]],
                     vectors: np.ndarray) -> list[FaceResult]:
        """Gallery answers for faces already embedded (by this process or a worker); the
        index answers exactly as Gallery.identify (names, scores and distances) up to its
        exact limit of faces."""
        threshold = self.current_threshold().value
        if self.index is None:
            matches = self.gallery.identify(vectors, threshold=threshold, mode=self.mode)
        else:
            with self._index_lock:
                self.index = self.index.sync()
                if len(self.index) == 0:  # nobody enrolled yet: everyone is a stranger
                    return [FaceResult(box, UNKNOWN, 0.0, None) for box in boxes]
                matches = self.index.identify(vectors, threshold)
        return [FaceResult(box, m.name, m.score, m.distance) for box, m in zip(boxes, matches)]

    def current_threshold(self) -> Threshold:
        """The threshold of this answer, by the one rule (faces/threshold.py)."""
        return resolve_threshold(self.threshold, self.gallery, self.embedder)

    def embed(self, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
        """The gallery embedder's vectors of (image, face) pairs, as one batch."""
        with self._embedding:
            return self.embedder.embed(items)

    def name_faces(self, image: np.ndarray, faces: list[Face]) -> list[FaceResult]:
        if self.gallery is not None:
            return self.name_vectors([f.box for f in faces],
                                     self.embed([(image, face) for face in faces]))
        meta = self.classifier.meta
        crops = make_chips(run_crop(meta), [(image, face) for face in faces])
        if meta["in_chans"] == 1:
            crops = cv2.cvtColor(np.concatenate(crops), cv2.COLOR_RGB2GRAY).reshape(
                len(faces), meta["img_size"], meta["img_size"], 1)
        with self._embedding:
            probs = self.classifier.probabilities(crops)
        results = []
        for face, p in zip(faces, probs):
            best = int(np.argmax(p))
            name = meta["classes"][best] if p[best] >= self.min_confidence else UNKNOWN
            results.append(FaceResult(face.box, name, float(p[best]), None))
        return results


def draw(image_bgr: np.ndarray, results: list[FaceResult]) -> np.ndarray:
    """Seed C's display: green box with 'name score' for known faces, red 'unknown' (orange
    'uncertain' for a video track whose views disagree), after the track's number."""
    out = image_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for r in results:
        colour = {UNKNOWN: (0, 0, 255), UNCERTAIN: (0, 140, 255)}.get(r.name, (0, 200, 0))
        x1, y1, x2, y2 = (int(round(v)) for v in r.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = r.name if r.name in (UNKNOWN, UNCERTAIN) else f"{r.name} {r.score:.2f}"
        if r.track is not None:
            label = f"#{r.track} {label}"
        scale = 0.4 * thickness + 0.1
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - h - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + w + 2, top + h + base + 2), colour, cv2.FILLED)
        cv2.putText(out, label, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return out
