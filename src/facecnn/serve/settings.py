"""What `facecnn serve` was asked for, handed to one or several server processes, and the
server's logging."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.serve.app import MAX_PIXELS, MAX_QUEUE, create_app
from facecnn.serve.security import KeyStore
from facecnn.serve.service import UPLOAD_TIMEOUT_S
from facecnn.serve.video import VideoLimits

SETTINGS_ENV = "FACECNN_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    """The settings in a form worker processes can be handed (the keys travel as their file's
    path or stay in $FACECNN_API_KEYS, never in these settings)."""

    gallery: str | None = None
    model: str | None = None
    api_key_file: str | None = None
    max_upload_mb: float = 10.0
    max_pixels: int = MAX_PIXELS
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    max_queue: int = MAX_QUEUE
    clusters: str | None = None
    max_video_seconds: float = VideoLimits.seconds
    max_video_frames: int = VideoLimits.frames
    upload_timeout: float = UPLOAD_TIMEOUT_S

    def app(self) -> FastAPI:
        def path(value: str | None) -> Path | None:
            return Path(value) if value is not None else None

        return create_app(self.gallery, path(self.model),
                          KeyStore.load(path(self.api_key_file)), self.max_upload_mb,
                          self.max_pixels, self.pipeline, self.max_queue, path(self.clusters),
                          VideoLimits(self.max_video_seconds, self.max_video_frames),
                          self.upload_timeout)

    def new_gallery(self) -> str | None:
        """Create the gallery, empty, for --embedder or DEFAULT_EMBEDDER if it is missing, so
        people can be enrolled through the API; returns the embedder's name (None: it was
        there)."""
        from facecnn.faces.embedders import DEFAULT_EMBEDDER, create_embedder
        from facecnn.faces.gallery import Gallery, GalleryLocation

        if GalleryLocation.of(self.gallery).exists():
            return None
        embedder = create_embedder(self.pipeline.embedder or DEFAULT_EMBEDDER)
        Gallery.open_or_create(self.gallery, embedder.name, embedder.dim, embedder.crop,
                               embedder.views).close()
        return embedder.name

    def problem(self) -> str | None:
        """Load everything once in a throwaway process: what is wrong comes back as one line,
        and the process that supervises the workers stays small."""
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(_load_problem, self).result()

    def export(self, workers: int) -> None:
        """Put the settings where `app_from_env` in each worker process finds them, and give
        each worker its share of the cores for PyTorch and OpenMP."""
        os.environ[SETTINGS_ENV] = json.dumps(asdict(self))
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def _load_problem(settings: ServeSettings) -> str | None:
    try:
        settings.app()
    except FacecnnError as exc:
        return str(exc)
    return None


def app_from_env() -> FastAPI:
    """uvicorn's app factory in each process of `facecnn serve --workers N`."""
    values = json.loads(os.environ[SETTINGS_ENV])
    return ServeSettings(**{**values, "pipeline": PipelineConfig.from_dict(values["pipeline"])}
                         ).app()


def log_config() -> dict[str, Any]:
    """uvicorn's logging plus the "facecnn" loggers (the exceptions behind 500s) on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["facecnn"] = {"format": "%(asctime)s %(levelname)s %(name)s: "
                                                 "%(message)s"}
    config["handlers"]["facecnn"] = {"class": "logging.StreamHandler", "formatter": "facecnn",
                                     "stream": "ext://sys.stderr"}
    config["loggers"]["facecnn"] = {"handlers": ["facecnn"], "level": "INFO",
                                    "propagate": False}
    return config
