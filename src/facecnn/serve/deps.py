"""Dependencies the routes share: the service, what it must be serving, and who is calling.

All are `async def`, so FastAPI runs them on the event loop: a plain `def` would wait for a
free worker thread, and /healthz must never wait for anything."""

from __future__ import annotations

from fastapi import Depends, Request, UploadFile
from fastapi.security import APIKeyHeader

from facecnn.serve.guard import ROLE
from facecnn.serve.security import Upload, UploadError
from facecnn.serve.service import Service

# Declared for /docs ("Authorize"); the Guard middleware checks the key before any body is read.
API_KEY = APIKeyHeader(name="x-api-key", auto_error=False,
                       description="A read or admin key (not needed on a server without keys).")


async def service(request: Request) -> Service:
    return request.app.state.service


async def caller(request: Request) -> str | None:
    """The caller's role: "read", "admin", or None (no key, on a server with keys)."""
    return request.scope.get(ROLE)


async def with_gallery(served: Service = Depends(service)) -> Service:
    if served.recognizer is None:
        raise UploadError(404, "this server has no gallery (start it with --gallery)")
    return served


async def with_classifier(served: Service = Depends(service)) -> Service:
    if served.classifier is None:
        raise UploadError(404, "this server has no classifier (start it with --model)")
    return served


async def admin(role: str | None = Depends(caller)) -> None:
    if role != "admin":
        raise UploadError(403, "this key is read-only; changing the gallery or its clusters "
                               "needs an admin key")


async def read(upload: UploadFile) -> Upload:
    """An upload's name and bytes (the Guard kept the whole body within the limit)."""
    return Upload(upload.filename or "upload", await upload.read())
