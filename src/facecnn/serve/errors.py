"""How failures become answers: one JSON `detail` line and a status code, never a stack trace.

Refusals keep their status, an unknown person or face is 404, a user error (a bad name) is
422, a gallery whose
write lock another process holds or whose database is out of reach is 503 with Retry-After,
and anything else is logged with its traceback on the "facecnn.serve" logger and answered 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facecnn.errors import FacecnnError
from facecnn.faces.gallery import GalleryBusy, GalleryUnavailable, NotInGallery
from facecnn.serve.security import UploadError
from facecnn.serve.service import BUSY_TIMEOUT_S, RETRY_AFTER_S

log = logging.getLogger("facecnn.serve")


def refusal(exc: UploadError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


async def _refused(request: Request, exc: UploadError) -> JSONResponse:
    return refusal(exc)


async def _user_error(request: Request, exc: FacecnnError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _not_found(request: Request, exc: NotInGallery) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = sorted({".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()})
    return JSONResponse({"detail": f"missing or invalid: {', '.join(fields)}"}, status_code=422)


async def _busy(request: Request, exc: GalleryBusy) -> JSONResponse:
    """A write lock held elsewhere (an enroll, a backup) past BUSY_TIMEOUT_S: worth retrying.
    Any other database failure is the server's and ends in LogCrashes."""
    return refusal(UploadError(503, str(exc), {"Retry-After": str(round(BUSY_TIMEOUT_S))}))


async def _unavailable(request: Request, exc: GalleryUnavailable) -> JSONResponse:
    """The gallery's database gone (stopped, restarting, the network down): the next request
    connects again, so the server recovers by itself once it is back. Which database and why
    go to the log, not to clients."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return refusal(UploadError(503, exc.public, {"Retry-After": str(RETRY_AFTER_S)}))


def add_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UploadError, _refused)
    app.add_exception_handler(FacecnnError, _user_error)
    app.add_exception_handler(NotInGallery, _not_found)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(GalleryBusy, _busy)
    app.add_exception_handler(GalleryUnavailable, _unavailable)


class LogCrashes:
    """Outermost of the app's own middleware: an exception no handler answered is logged once
    with its traceback and answered with one JSON line (Starlette's last resort would answer
    plain text and hand the exception on for uvicorn to log a second time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if started:  # too late for an answer of our own
                raise
            await JSONResponse({"detail": "internal error (logged by the server)"},
                               status_code=500)(scope, receive, send)
