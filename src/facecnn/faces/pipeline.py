"""Photos -> their faces (faces/result.py: boxes, points, vectors), in worker processes when
there are many photos.

dlib's detectors and network, and MTCNN on onnxruntime, each use one core in a worker, so on
a machine with N cores a folder of photos goes through up to N times faster in N processes
(workers start by fork, their BLAS and OpenMP pools held to one thread: facecnn/workers.py).
Workers load the detector (and dlib's network) once; the main process keeps the gallery
and everything else. Embedders that batch in PyTorch are not fork-safe and are faster on
whole batches, so for them workers only detect and cut the aligned chips, and the main
process embeds the chips of many photos at once. Detectors in PyTorch (on a GPU) run
batches in the main process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facecnn.data.crop_layout import same_layout
from facecnn.data.decode import read_image
from facecnn.errors import FacecnnError
from facecnn.faces import embedders
from facecnn.faces.config import PipelineConfig
from facecnn.faces.crops import crop_face, make_chips, resized
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import Embedder
from facecnn.faces.face_cache import FaceCache, recipe_key
from facecnn.faces.quality import face_quality
from facecnn.faces.result import Face, Result
from facecnn.fileio import file_hash
from facecnn.workers import worker_pool

MIN_FILES_PER_WORKER = 8  # below this a pool's start-up costs more than it saves
DETECT_BATCH = 8  # photos a network detector sees at once in the main process
Job = tuple[Path, "str | None", "dict[str, Any] | None"]  # (photo, pick, prepare's crop)
PICKS = ("largest", "center")  # which one face of a photo to keep (None: all of them)
NO_FACE = "no face found"


@dataclass
class PipelineSpec:
    """Everything a worker process needs to rebuild the pipeline (picklable)."""

    detector: PipelineConfig  # the detection fields: workers build their detector from it
    embedder: Embedder | None  # None when workers only cut chips (pickles as its recipe)
    crop: dict[str, Any]  # the embedder's
    landmarks: bool  # whether its chips need the five ArcFace points


class _Worker:
    def __init__(self, spec: PipelineSpec, detector: FaceDetector | None = None,
                 embedder: Embedder | None = None) -> None:
        self.detector = detector or FaceDetector.from_config(spec.detector)
        self.spec = spec
        self.embedder = embedder or spec.embedder

    def __call__(self, job: Job) -> Result:
        return self.batch([job])[0]

    def batch(self, jobs: list[Job]) -> list[Result]:
        """The faces of several photos; their detection runs as one batch (network detectors
        are faster so, and on a GPU much faster)."""
        images: dict[int, Any] = {}
        results: list[Result | None] = [None] * len(jobs)
        for k, (file, _, _) in enumerate(jobs):
            try:
                images[k] = read_image(file)
            except ValueError as exc:
                results[k] = Result(file, error=str(exc))
        unknown = [k for k in images if jobs[k][2] is None]  # else `prepare` cut the face
        faces = dict(zip(unknown, self.detector.detect_batch([images[k] for k in unknown],
                                                            self.spec.landmarks)))
        for k, image in images.items():
            file, pick, crop = jobs[k]
            results[k] = (self._result(file, image, picked(faces[k], image.shape, pick))
                          if crop is None else self._prepared(file, image, crop))
        return results

    def _prepared(self, file: Path, image: Any, crop: dict[str, Any]) -> Result:
        """A crop `prepare` cut: its face is where its layout puts it, and one cut in the
        embedder's own layout is embedded as it is (resized), not cut a second time."""
        face = crop_face(crop, image.shape[1])
        face.quality = face_quality(image, face)
        if not same_layout(crop, self.spec.crop):
            return self._result(file, image, [face])
        chips = resized(self.spec.crop, image)[None]
        if self.spec.embedder is None:
            return Result(file, [face], chips=chips)
        return Result(file, with_vectors([face], self.embedder.vectors_of(chips)))

    def _result(self, file: Path, image: Any, faces: list[Face]) -> Result:
        if not faces:
            return Result(file, error=NO_FACE)
        items = [(image, face) for face in faces]
        if self.spec.embedder is None:
            return Result(file, faces, chips=make_chips(self.spec.crop, items))
        return Result(file, with_vectors(faces, self.embedder.embed(items)))


def with_vectors(faces: list[Face], vectors: np.ndarray) -> list[Face]:
    """The faces, each given its row of `vectors` (the record is enriched in place)."""
    for face, vector in zip(faces, vectors):
        face.vector = vector
    return faces


def picked(faces: list[Face], shape: tuple[int, ...], pick: str | None) -> list[Face]:
    """All faces (largest first), or the one `pick` names: the largest, or the one whose
    box centre is nearest the image centre (LFW's subject is the face in the middle)."""
    if pick is None or not faces:
        return faces
    if pick == "largest":
        return faces[:1]
    middle = np.array([shape[1], shape[0]]) / 2
    return [min(faces, key=lambda f: float(np.hypot(*((np.add(f.box[:2], f.box[2:]) / 2)
                                                      - middle))))]


_worker: _Worker | None = None


def _init_worker(spec: PipelineSpec) -> None:
    global _worker
    _worker = _Worker(spec)


def _run_job(job: Job) -> Result:
    return _worker(job)


class FacePipeline:
    """`FacePipeline(detector, embedder).run(files)` yields each file's `Result` (its faces
    embedded, largest first), in file order."""

    def __init__(self, detector: FaceDetector, embedder: Embedder,
                 workers: int | None = None) -> None:
        self.spec = PipelineSpec(detector.config,
                                 embedder if embedder.embeds_in_workers else None,
                                 embedder.crop, embedder.needs_landmarks)
        self.local = _Worker(self.spec, detector, embedder)
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
        self.reused = 0  # photos the last run answered from its cache

    @classmethod
    def from_config(cls, config: PipelineConfig, embedder: Embedder | None = None) -> FacePipeline:
        """The pipeline `config` describes; `embedder` replaces the one it names (a
        gallery's, say)."""
        return cls(FaceDetector.from_config(config), embedder or embedders.from_config(config),
                   config.workers)

    @property
    def embedder(self) -> Embedder:
        return self.local.embedder

    @property
    def detector(self) -> FaceDetector:
        return self.local.detector

    def recipe(self) -> dict[str, Any]:
        """What decides a photo's faces and vectors (not where they ran): cached faces are
        reused only under the same recipe."""
        embedder, found = self.embedder, self.detector.config
        detector = {"name": found.detector, "upsample": found.upsample,
                    "min_size": found.min_size, "max_side": found.max_side,
                    "landmarks": found.landmarks,
                    **({"crops": True} if found.crops else {})}  # older caches stay valid
        return {"embedder": embedder.name, "crop": embedder.crop, "flip": embedder.flip,
                "jitter": getattr(embedder, "jitter", 0), "detector": detector}

    def run(self, files: list[Path], *, pick: str | None = None,
            crop: dict[str, Any] | None = None, cache: FaceCache | None = None,
            hashes: list[str | None] | None = None,
            advance: Callable[[int], None] = lambda n: None) -> Iterator[Result]:
        """Each file's Result, in order. With a `cache`, photos whose content it holds (under
        this recipe) are answered from it, and every new answer is kept there as it comes,
        so an interrupted run's work is not lost; `hashes`: the files' content hashes where
        the caller has them already (None: unreadable)."""
        if pick not in (None, *PICKS):
            raise FacecnnError(f"pick one face by {' or '.join(PICKS)}, not {pick!r}")
        kept, digests, key = {}, {}, ""
        if cache is not None:
            key = recipe_key({**self.recipe(), "pick": pick, "prepared_crop": crop})
            for k, file in enumerate(files):
                with contextlib.suppress(OSError):  # unreadable: its error comes below
                    digests[k] = file_hash(file) if hashes is None else hashes[k]
                    if digests[k] is None:
                        continue
                    hit = cache.get(key, digests[k], file)
                    if hit is not None:
                        kept[k] = hit
        found = self._detect([f for k, f in enumerate(files) if k not in kept], pick, crop)
        if self.spec.embedder is None:
            found = self._embed_batches(found)
        self.reused = len(kept)
        for k in range(len(files)):
            result = kept[k] if k in kept else next(found)
            if cache is not None and k not in kept and digests.get(k) and \
                    result.error in (None, NO_FACE):
                cache.put(key, digests[k], result)
            yield result
            advance(1)

    def _detect(self, files: list[Path], pick: str | None,
                crop: dict[str, Any] | None) -> Iterator[Result]:
        jobs = [(file, pick, crop) for file in files]
        workers = min(self.workers, len(jobs) // MIN_FILES_PER_WORKER)
        if not self.detector.in_workers(self.spec.landmarks):  # PyTorch: batches, here
            for start in range(0, len(jobs), DETECT_BATCH):
                yield from self.local.batch(jobs[start:start + DETECT_BATCH])
            return
        if workers < 2:
            yield from map(self.local, jobs)
            return
        with worker_pool(workers, _init_worker, (self.spec,)) as pool:
            for job, result in zip(jobs, pool.map(_run_job, jobs, chunksize=4)):
                # workers take no whole image as the face with O-Net on a GPU (`looks_whole`)
                yield self.local(job) if result.error == NO_FACE and self.detector.onet.on_gpu \
                    else result

    def _embed_batches(self, found: Iterator[Result]) -> Iterator[Result]:
        """Embed the chips of consecutive photos together, `batch_size` faces or more at a
        time, and hand the photos on in their order."""
        pending: list[Result] = []

        def flush() -> Iterator[Result]:
            with_chips = [r for r in pending if r.chips is not None]
            if with_chips:
                vectors = self.embedder.vectors_of(np.concatenate([r.chips for r in with_chips]))
                start = 0
                for result in with_chips:
                    with_vectors(result.faces, vectors[start:start + len(result.faces)])
                    result.chips = None
                    start += len(result.faces)
            yield from pending
            pending.clear()

        for result in found:
            pending.append(result)
            if sum(len(r.faces) for r in pending) >= self.embedder.batch_size:
                yield from flush()
        yield from flush()
