"""The REST API: the CLI's recognizer, gallery and classifiers behind FastAPI.

Models load once, when the app is made. Answers use the CLI's JSON shapes. Every error is a
JSON `{"detail": ...}` with a status code, never a stack trace.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from facecnn.errors import FacecnnError
from facecnn.serve.security import KeyStore, UploadError, decode_upload

if TYPE_CHECKING:
    from facecnn.faces.embed import Embedder

MAX_PIXELS = 40_000_000
SETTINGS_ENV = "FACECNN_SERVE_SETTINGS"
STATIC = Path(__file__).with_name("static")


class Service:
    """Everything the endpoints share: loaded models, the gallery, limits and one lock, since
    dlib's network is not safe to call from several threads at once."""

    def __init__(self, gallery: Path | None, model: Path | None, keys: KeyStore | None,
                 max_upload_mb: float, max_pixels: int, detector: str,
                 embedder: Embedder | None = None) -> None:
        from facecnn.faces.detect import FaceDetector

        self.keys, self.max_pixels = keys, max_pixels
        self.max_bytes = int(max_upload_mb * 2**20)
        self.lock = threading.Lock()
        self.detector = FaceDetector(detector)
        self.recognizer = self.classifier = None
        self.gallery_path = gallery
        if gallery is not None:
            from facecnn.faces.recognize import Recognizer

            self.recognizer = Recognizer(gallery=gallery, detector=self.detector, workers=1,
                                         embedder=embedder)
        if model is not None:
            from facecnn.classify import load_classifier

            self.classifier = load_classifier(model)

    def role_of(self, request: Request) -> str:
        if self.keys is None:
            return "admin"  # no keys: the server listens on 127.0.0.1 only
        role = self.keys.role(request.headers.get("x-api-key"))
        if role is None:
            raise UploadError(401, "missing or wrong x-api-key header")
        return role

    async def image(self, upload: UploadFile) -> Any:
        data = await upload.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise UploadError(413, f"upload over {self.max_bytes / 2**20:g} MB")
        return decode_upload(data, self.max_pixels)

    def need_gallery(self) -> Any:
        if self.recognizer is None:
            raise UploadError(404, "this server has no gallery (start it with --gallery)")
        return self.recognizer


def create_app(gallery: Path | None = None, model: Path | None = None,
               keys: KeyStore | None = None, max_upload_mb: float = 10.0,
               max_pixels: int = MAX_PIXELS, detector: str = "hog",
               embedder: Embedder | None = None) -> FastAPI:
    """The app; `embedder` (an Embedder) searches the gallery instead of the one that made it."""
    service = Service(gallery, model, keys, max_upload_mb, max_pixels, detector, embedder)
    app = FastAPI(title="facecnn", description="Face recognition with convolutional networks.")

    @app.exception_handler(UploadError)
    async def refused(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(FacecnnError)
    async def user_error(request: Request, exc: FacecnnError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()})
        return JSONResponse({"detail": f"missing or invalid: {', '.join(fields)}"},
                            status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > service.max_bytes + 64 * 1024:
            return JSONResponse({"detail": f"upload over {service.max_bytes / 2**20:g} MB"},
                                status_code=413)
        return await call_next(request)

    def reader(request: Request) -> str:
        return service.role_of(request)

    def admin(request: Request) -> str:
        if service.role_of(request) != "admin":
            raise UploadError(403, "this key is read-only; enrolling and removing need an "
                                   "admin key")
        return "admin"

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The web page needs no key to load; its API calls send the one typed into it."""
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "gallery": str(service.gallery_path) if service.gallery_path
                else None, "classifier": service.classifier is not None}

    @app.post("/v1/detect")
    async def detect(image: UploadFile = File(...), _: str = Depends(reader)) -> dict:
        pixels = await service.image(image)
        with service.lock:
            faces = service.detector(pixels)
        return {"faces": [{"box": [int(round(v)) for v in f.box], "score": round(f.score, 4),
                           "landmarks": f.landmarks.round(1).tolist()} for f in faces]}

    @app.post("/v1/recognize")
    async def recognize(image: UploadFile = File(...), _: str = Depends(reader)) -> dict:
        recognizer = service.need_gallery()
        pixels = await service.image(image)
        with service.lock:
            results = recognizer(pixels)
        return {"faces": [r.to_dict() for r in results]}

    @app.post("/v1/verify")
    async def verify(images: list[UploadFile] = File(...), _: str = Depends(reader)) -> dict:
        import numpy as np

        recognizer = service.need_gallery()
        if len(images) != 2:
            raise UploadError(422, "send exactly two files in the field `images`")
        vectors = []
        for upload in images:
            pixels = await service.image(upload)
            with service.lock:
                faces = recognizer.detector(pixels)
                if not faces:
                    raise UploadError(422, f"no face found in {upload.filename}")
                vectors.append(recognizer.embedder.embed([(pixels, faces[0])])[0])
        distance = float(np.linalg.norm(vectors[0] - vectors[1]))
        limit = recognizer.gallery.threshold or recognizer.embedder.default_threshold
        return {"distance": round(distance, 4), "threshold": limit,
                "same_person": distance <= limit, "embedder": recognizer.embedder.name}

    @app.get("/v1/people")
    def people(_: str = Depends(reader)) -> dict:
        gallery = service.need_gallery().gallery
        return {"people": [{"name": n, "faces": c} for n, c in gallery.people()]}

    @app.get("/v1/people/{name}")
    def person(name: str, _: str = Depends(reader)) -> dict:
        for person_name, count in service.need_gallery().gallery.people():
            if person_name == name:
                return {"name": name, "faces": count}
        raise UploadError(404, f"no such person: {name}")

    @app.post("/v1/people/{name}")
    async def enrol(name: str, images: list[UploadFile] = File(...),
                    _: str = Depends(admin)) -> dict:
        from facecnn.faces.gallery import check_name

        recognizer = service.need_gallery()
        check_name(name)
        items, skipped = [], []
        for upload in images:
            pixels = await service.image(upload)
            with service.lock:
                faces = recognizer.detector(pixels)
            if faces:
                items.append((pixels, faces[0]))
            else:
                skipped.append(upload.filename)
        if not items:
            raise UploadError(422, "no face found in any uploaded image")
        with service.lock:
            vectors = recognizer.embedder.embed(items)
        added = recognizer.gallery.add(name, vectors, [f"upload:{name}"] * len(items))
        return {"name": name, "added": added, "no_face": skipped}

    @app.delete("/v1/people/{name}")
    def remove(name: str, _: str = Depends(admin)) -> dict:
        return {"name": name, "removed": service.need_gallery().gallery.remove(name)}

    @app.post("/v1/classify")
    async def classify(image: UploadFile = File(...), top_k: int = 3,
                       _: str = Depends(reader)) -> dict:
        import numpy as np
        from PIL import Image

        if service.classifier is None:
            raise UploadError(404, "this server has no classifier (start it with --model)")
        meta = service.classifier.meta
        pixels = await service.image(image)
        mode = "L" if meta["in_chans"] == 1 else "RGB"
        resized = Image.fromarray(pixels).convert(mode).resize(
            (meta["img_size"], meta["img_size"]), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.uint8).reshape(1, meta["img_size"],
                                                            meta["img_size"], -1)
        with service.lock:
            probs = service.classifier.probabilities(array)[0]
        order = np.argsort(-probs)[:max(top_k, 1)]
        ranked = [[meta["classes"][i], float(probs[i])] for i in order]
        return {"label": ranked[0][0], "score": ranked[0][1], "top_k": ranked}

    return app


@dataclass
class ServeSettings:
    """What `facecnn serve` was asked for, in a form worker processes can be handed (the keys
    travel as their file's path or stay in $FACECNN_API_KEYS, never in these settings)."""

    gallery: str | None = None
    model: str | None = None
    api_key_file: str | None = None
    max_upload_mb: float = 10.0
    max_pixels: int = MAX_PIXELS
    detector: str = "hog"
    embedder: str | None = None

    def app(self) -> FastAPI:
        embedder = None
        name = self.embedder or self._default_embedder()
        if name is not None:
            from facecnn.faces.embed import create_embedder

            embedder = create_embedder(name)
        path = (lambda p: Path(p) if p is not None else None)
        return create_app(path(self.gallery), path(self.model),
                          KeyStore.load(path(self.api_key_file)), self.max_upload_mb,
                          self.max_pixels, self.detector, embedder)

    def _default_embedder(self) -> str | None:
        """dlib galleries are served by dlib's network in PyTorch: the same vectors, about
        3.5x the requests per second of dlib's own runtime (benchmarks/serve_load.py)."""
        if self.gallery is None or not Path(self.gallery).is_file():
            return None  # create_app says what is missing
        from facecnn.faces.gallery import Gallery

        with Gallery.open(Path(self.gallery)) as gallery:
            return "dlib_torch" if gallery.embedder == "dlib" else None

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
    return ServeSettings(**json.loads(os.environ[SETTINGS_ENV])).app()
