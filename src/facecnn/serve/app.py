"""The REST API: the CLI's recognizer, gallery and classifiers behind FastAPI.

Models load once, when the app is made. Answers use the CLI's JSON shapes. Every error is a
JSON `{"detail": ...}` with a status code, never a stack trace. The pieces: `service` (models,
threads, limits), `guard` (what is refused before a body is read), `routes/*` (the
endpoints), `schemas` (their answers), `errors` (failures into answers).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from facecnn.faces.config import PipelineConfig
from facecnn.serve.errors import LogCrashes, add_handlers
from facecnn.serve.guard import Guard
from facecnn.serve.routes import ROUTERS
from facecnn.serve.routes.health import STATIC
from facecnn.serve.security import KeyStore
from facecnn.serve.service import UPLOAD_TIMEOUT_S, Service
from facecnn.serve.video import VideoLimits

MAX_PIXELS = 40_000_000
MAX_QUEUE = 32  # per process: about a second of waiting for dlib_torch on two cores


def create_app(gallery: str | Path | None = None, model: Path | None = None,
               keys: KeyStore | None = None, max_upload_mb: float = 10.0,
               max_pixels: int = MAX_PIXELS, pipeline: PipelineConfig | None = None,
               max_queue: int = MAX_QUEUE,
               clusters: Path | None = None,
               video_limits: VideoLimits | None = None,
               upload_timeout: float = UPLOAD_TIMEOUT_S) -> FastAPI:
    """The app; `gallery` a SQLite path or a postgresql:// URL, `pipeline` how faces are found
    and embedded (its embedder, if named, searches the gallery instead of the one that made
    it), `clusters` a `facecnn cluster`
    output folder for the page's Unnamed tab, `video_limits` the longest video upload,
    `upload_timeout` the most seconds a client may take to send its body."""
    service = Service(gallery, model, keys, max_upload_mb, max_pixels,
                      pipeline or PipelineConfig(), max_queue, clusters,
                      video_limits or VideoLimits(), upload_timeout)
    app = FastAPI(title="facecnn", description="Face recognition with convolutional networks.")
    app.state.service = service
    add_handlers(app)
    app.add_middleware(Guard, service=service)
    app.add_middleware(LogCrashes)  # added last, so it wraps the Guard too
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
