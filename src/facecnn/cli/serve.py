"""`facecnn serve`: the REST API and web page, on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from facecnn.cli.options import (
    CROPS,
    DETECTOR,
    DEVICE,
    LANDMARKS,
    MIN_SIZE,
    UPSAMPLE,
    embedder_option,
    gallery_option,
)
from facecnn.errors import FacecnnError
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.terminal import console


def serve(
    gallery: Optional[GalleryLocation] = gallery_option(None, "Gallery for recognize/verify/people "
                                            "(created, empty, if missing; several servers "
                                            "may share one on PostgreSQL)."),
    model: Optional[Path] = typer.Option(None, help="A run or model.onnx for /v1/classify."),
    host: Optional[str] = typer.Option(None, help="Default 0.0.0.0 with keys, else 127.0.0.1."),
    port: int = typer.Option(8000),
    api_key_file: Optional[Path] = typer.Option(None, help=escape("Lines `KEY [read|admin]` "
                                                "(or $FACECNN_API_KEYS).")),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest upload (413 beyond)."),
    max_pixels: int = typer.Option(40_000_000, min=1),
    max_video_seconds: float = typer.Option(30.0, min=0.1, help="Longest video upload to "
                                            "/v1/recognize (413 beyond)."),
    max_video_frames: int = typer.Option(900, min=1, help="Most frames of a video upload "
                                         "(413 beyond)."),
    embedder: Optional[str] = embedder_option(None, "Search the gallery with this embedder "
                                              "(default: the one that made it, but dlib_torch "
                                              "for dlib galleries: same vectors, ~3.5x "
                                              "faster); a new gallery is made for it (default "
                                              "dlib)."),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    device: str = DEVICE,
    workers: int = typer.Option(1, min=1, help="Server processes (one per core serves about "
                                "that many times more requests; the gallery is shared)."),
    max_queue: int = typer.Option(32, min=0, help="Model requests each process holds beyond "
                                  "the two it works on; more get 503 with Retry-After."),
    upload_timeout: float = typer.Option(60.0, min=0.1, help="Seconds a client may take to "
                                         "send its request body (408 after; a slow upload "
                                         "never holds a place in the model queue)."),
    clusters: Optional[Path] = typer.Option(None, metavar="DIR", help="A `facecnn cluster` "
                                            "--out folder: the page's Unnamed tab names "
                                            "(into --gallery), merges and dismisses its "
                                            "clusters."),
) -> None:
    """REST API, web page at / and OpenAPI docs at /docs, on one port."""
    import uvicorn

    from facecnn.faces.config import PipelineConfig
    from facecnn.serve.security import KeyStore
    from facecnn.serve.settings import ServeSettings, log_config

    keys = KeyStore.load(api_key_file)
    local = ("127.0.0.1", "localhost")
    if keys is None and host not in (None, *local):
        raise FacecnnError("without API keys the server only listens on 127.0.0.1; give "
                           "--api-key-file to serve other machines")
    host = host or ("0.0.0.0" if keys else "127.0.0.1")

    def text(path: Path | None) -> str | None:
        return str(path.resolve()) if path is not None else None

    location = gallery.absolute() if gallery is not None else None
    pipeline = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                              min_size=min_size, crops=crops, embedder=embedder, device=device)
    settings = ServeSettings(location and location.target, text(model), text(api_key_file),
                             max_upload_mb, max_pixels, pipeline, max_queue, text(clusters),
                             max_video_seconds, max_video_frames, upload_timeout)
    made_for = settings.new_gallery() if gallery is not None else None
    if made_for is not None:
        console.print(f"created the empty gallery {location} "
                      f"({made_for}): enrol people with POST /v1/people/NAME or on the web "
                      "page", highlight=False)
    if workers == 1:
        app = settings.app()
    else:
        problem = settings.problem()  # one line here rather than a traceback from every worker
        if problem:
            raise FacecnnError(problem)
        settings.export(workers)
        app = "facecnn.serve.settings:app_from_env"
    if host in local:
        reach = "this machine only" + ("; no API keys" if keys is None else "")
    else:
        reach = "reachable from the network; every /v1 call needs an API key"
    console.print(f"serving http://{host}:{port} ({reach})", highlight=False)
    uvicorn.run(app, factory=workers > 1, workers=workers, host=host, port=port,
                log_level="warning", log_config=log_config())


def register(app: typer.Typer) -> None:
    app.command()(serve)
