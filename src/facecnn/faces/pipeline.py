"""Photos -> (boxes, embedding vectors), in worker processes when there are many photos.

dlib's detector and network each use one core, so on a machine with N cores a folder of
photos goes through up to N times faster in N processes. Workers load the detector and the
embedder once; the main process keeps the gallery and everything else.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facecnn.data.decode import read_image
from facecnn.faces.align import crop_box
from facecnn.faces.detect import FaceDetector, landmarks_in
from facecnn.faces.embed import Embedder, create_embedder

MIN_FILES_PER_WORKER = 8  # below this a pool's start-up costs more than it saves
NO_FACE = "no face found"


@dataclass
class FileFaces:
    """The faces of one photo, largest first; `error` says why there are none to be had."""

    file: Path
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    vectors: np.ndarray | None = None
    error: str | None = None


@dataclass
class PipelineSpec:
    """Everything a worker process needs to rebuild the pipeline (picklable)."""

    detector: dict[str, Any]
    embedder: str
    embedder_options: dict[str, Any] = field(default_factory=dict)


class _Worker:
    def __init__(self, spec: PipelineSpec, detector: FaceDetector | None = None,
                 embedder: Embedder | None = None) -> None:
        self.detector = detector or FaceDetector(**spec.detector)
        self.embedder = embedder or create_embedder(spec.embedder, **spec.embedder_options)

    def __call__(self, job: tuple[Path, bool, dict[str, Any] | None]) -> FileFaces:
        file, largest_only, crop = job
        try:
            image = read_image(file)
        except ValueError as exc:
            return FileFaces(file, error=str(exc))
        if crop is not None:  # a crop `prepare` wrote: the face's place is known
            faces = [landmarks_in(image, crop_box(image.shape[1], crop["margin"]))]
        else:
            faces = self.detector(image)
        if largest_only:
            faces = faces[:1]
        if not faces:
            return FileFaces(file, error=NO_FACE)
        return FileFaces(file, [f.box for f in faces],
                         self.embedder.embed([(image, face) for face in faces]))


_worker: _Worker | None = None


def _init_worker(spec: PipelineSpec) -> None:
    global _worker
    _worker = _Worker(spec)


def _run_job(job: tuple[Path, bool, dict[str, Any] | None]) -> FileFaces:
    return _worker(job)


class FacePipeline:
    """`FacePipeline(detector, embedder).run(files)` yields `FileFaces` in file order."""

    def __init__(self, detector: FaceDetector, embedder: Embedder, workers: int | None = None) -> None:
        self.spec = PipelineSpec(detector.options, embedder.name, embedder.options)
        self.local = _Worker(self.spec, detector, embedder)
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 8)

    @property
    def embedder(self) -> Embedder:
        return self.local.embedder

    @property
    def detector(self) -> FaceDetector:
        return self.local.detector

    def run(self, files: list[Path], *, largest_only: bool = False,
            crop: dict[str, Any] | None = None,
            advance: Callable[[int], None] = lambda n: None) -> Iterator[FileFaces]:
        jobs = [(file, largest_only, crop) for file in files]
        workers = min(self.workers, len(jobs) // MIN_FILES_PER_WORKER)
        if workers < 2:
            for job in jobs:
                yield self.local(job)
                advance(1)
            return
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(self.spec,)) as pool:
            for result in pool.map(_run_job, jobs, chunksize=4):
                yield result
                advance(1)
