"""What the endpoints share: the loaded models, the gallery, the limits, and the threads that
model work runs in.

Model work (decoding, detection, embedding, classification) runs in MODEL_THREADS threads,
never on the event loop, so /healthz and every refusal answer while the models are busy; at
most `Admission.capacity` requests wait for them, the rest get 503. Writes (enrolments,
cluster edits) are admitted in a share of their own, so a flood of recognitions never shuts
them out, and then queue for the model threads in arrival order like any request. Photos,
videos and verifications all go through the CLI's own Recognizer, which is safe to share
between threads (each model takes turns behind its own lock, so one request's detection
overlaps another's embedding); this layer adds only uploads, limits and admission.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from facecnn.serve.security import KeyStore, Upload, UploadError, decode_upload
from facecnn.serve.video import VideoLimits

if TYPE_CHECKING:
    from facecnn.faces.config import PipelineConfig
    from facecnn.faces.result import Face, Result
    from facecnn.inference.base import Prediction

MODEL_THREADS = 2  # one per model stage: a detection and an embedding run at once
WRITE_SHARE = 8  # enrolments and cluster edits held at once, beside the recognitions
UPLOAD_TIMEOUT_S = 60.0  # the most a client may take to send its body (then 408)
BUSY_TIMEOUT_S = 2.0  # the most a request waits for the gallery's write lock (then 503)
RETRY_AFTER_S = 1
T = TypeVar("T")


@dataclass
class Largest:
    """The largest face of each upload that has one (its pixels, its Face, its vector), and
    the names of the uploads with none."""

    uploads: list[Upload] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    vectors: np.ndarray | None = None
    missing: list[str] = field(default_factory=list)


class Admission:
    """How many model requests this process holds at once (waiting for a thread, running), in
    two shares: recognitions ("read") and enrolments or cluster edits ("write"), each refused
    with 503 and Retry-After beyond its capacity instead of queueing without bound, so that a
    flood of one never shuts out the other. Only the event loop counts, so no lock is needed.
    A request is admitted once its whole body has arrived (serve/guard.py)."""

    def __init__(self, capacity: int, writes: int = WRITE_SHARE) -> None:
        self.capacity = {"read": capacity, "write": writes}
        self.waiting = {"read": 0, "write": 0}

    @property
    def in_flight(self) -> int:
        return sum(self.waiting.values())

    def enter(self, share: str) -> None:
        if self.waiting[share] >= self.capacity[share]:
            raise UploadError(503, f"busy: {self.waiting[share]} requests in progress; try "
                                   "again shortly", {"Retry-After": str(RETRY_AFTER_S)})
        self.waiting[share] += 1

    def leave(self, share: str) -> None:
        self.waiting[share] -= 1


class Service:
    """The models and the gallery, loaded once. `recognizer.gallery` answers recognition;
    `store`, a second connection to the same gallery, lists, enrols and removes, so a write
    waiting for the gallery's lock never holds up a recognition. Where the gallery's database
    tells of writes (PostgreSQL), the search index catches up as each one lands, not at the
    next request (which still checks the change counter, as on SQLite). `clusters`, a
    `facecnn cluster` output folder for the cluster routes, is read once here, so a wrong
    one fails at start; `location` is the gallery's, for the cluster edits that open it."""

    def __init__(self, gallery: str | Path | None, model: Path | None, keys: KeyStore | None,
                 max_upload_mb: float, max_pixels: int, pipeline: PipelineConfig,
                 max_queue: int,
                 clusters: Path | None = None,
                 video_limits: VideoLimits | None = None,
                 upload_timeout: float = UPLOAD_TIMEOUT_S) -> None:
        from facecnn.faces.detect import FaceDetector

        self.keys, self.max_pixels = keys, max_pixels
        self.clusters = clusters
        if clusters is not None:
            from facecnn.cluster.edits import list_clusters

            list_clusters(clusters)
        self.max_bytes, self.upload_timeout = int(max_upload_mb * 2**20), upload_timeout
        self.video_limits = video_limits or VideoLimits()  # the longest video upload
        self.admission = Admission(MODEL_THREADS + max_queue)
        self._threads = ThreadPoolExecutor(MODEL_THREADS, thread_name_prefix="facecnn-model")
        self._classifying = threading.Lock()
        self.recognizer = self.store = self.classifier = self.listener = self.location = None
        if gallery is not None:
            from facecnn.faces.gallery import GalleryLocation, open_gallery
            from facecnn.faces.recognize import Recognizer

            self.location = GalleryLocation.of(gallery)
            self.recognizer = Recognizer.from_config(
                pipeline.but(workers=1),
                gallery=open_gallery(self.location, busy_timeout=BUSY_TIMEOUT_S))
            self.store = open_gallery(self.location, busy_timeout=BUSY_TIMEOUT_S)
            self.listener = self.recognizer.gallery.watch(self._catch_up)
        self.detector = (self.recognizer.detector if self.recognizer is not None
                         else FaceDetector.from_config(pipeline))
        if model is not None:
            from facecnn.inference import load_classifier

            self.classifier = load_classifier(model)

    def _catch_up(self) -> None:
        """Sync the search index now (the listener's thread: another process wrote)."""
        if self.recognizer.index is not None:
            self.recognizer.index.sync()

    def gallery_version(self) -> int | None:
        """The change count the search index answers from (None: no gallery, or no index)."""
        index = self.recognizer.index if self.recognizer is not None else None
        return index.version if index is not None else None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in one of the model threads, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._threads,
                                                                partial(work, *args))

    def detect(self, upload: Upload) -> list[Face]:
        return self.detector(self.pixels(upload))

    def recognize(self, upload: Upload) -> Result:
        return self.recognizer(self.pixels(upload))

    def recognize_video(self, upload: Upload, container: str) -> dict[str, Any]:
        """`facecnn recognize clip.mp4 --json` of an uploaded video (serve/video.py), by the
        same recognizer as the photos served meanwhile."""
        from facecnn.serve.video import recognize_video

        return recognize_video(upload, container, self.recognizer, self.video_limits,
                               self.max_pixels)

    def largest_faces(self, uploads: list[Upload], *, all_needed: bool = True) -> Largest:
        """The largest face of each upload, embedded as one batch; the uploads without one
        are named (422 if `all_needed`)."""
        found = Largest()
        for upload in uploads:
            pixels = self.pixels(upload)
            faces = self.recognizer.detect(pixels)
            if faces:
                found.uploads.append(upload)
                found.images.append(pixels)
                found.faces.append(faces[0])
            else:
                found.missing.append(upload.name)
        if found.missing and all_needed:
            raise UploadError(422, f"no face found in {', '.join(found.missing)}")
        found.vectors = self.recognizer.embed(list(zip(found.images, found.faces)))
        return found

    def verify(self, uploads: list[Upload]) -> dict[str, Any]:
        """`facecnn verify`'s verdict on two uploads, at the threshold recognition uses."""
        from facecnn.apps.verify import verdict

        vectors = self.largest_faces(uploads).vectors
        return verdict(vectors[0], vectors[1], self.recognizer.embedder,
                       self.recognizer.current_threshold(), self.recognizer.gallery)

    def search(self, upload: Upload, top: int) -> list[dict[str, Any]]:
        """`facecnn search --gallery --json`: the enrolled faces nearest to the upload's
        largest face, from the recognizer's live search index."""
        from facecnn.cluster.search import nearest_enrolled

        return [hit.as_dict() for hit in nearest_enrolled(
            self.largest_faces([upload]).vectors[0], self.recognizer.gallery,
            self.recognizer.index, top)]

    def classify(self, upload: Upload, top_k: int) -> Prediction:
        from PIL import Image

        from facecnn.data.decode import to_array

        meta = self.classifier.meta
        size, channels = meta["img_size"], meta["in_chans"]
        array = to_array(Image.fromarray(self.pixels(upload)), "L" if channels == 1 else "RGB",
                         size)
        with self._classifying:
            return self.classifier.predict(array.reshape(1, size, size, channels),
                                           [upload.name], top_k)[0]

    def refit(self) -> dict[str, float | str]:
        """After a change to who is enrolled: the gallery's threshold calibrated again for
        them (faces/refit.py), as an answer's `threshold` and `threshold_source`; the
        recognizer reads it fresh for the next photo."""
        from facecnn.faces.refit import refit_threshold

        refit = refit_threshold(self.store)
        return {"threshold": refit.threshold, "threshold_source": refit.source}

    def threshold_now(self) -> dict[str, float | str]:
        """The stored threshold and its source, after an edit that refit it (cluster/edits.py)."""
        return {"threshold": self.store.threshold, "threshold_source": self.store.threshold_source}

    def pixels(self, upload: Upload) -> np.ndarray:
        """The upload as RGB pixels, within the server's limits (else 413 or 415)."""
        return decode_upload(upload.data, self.max_pixels)
