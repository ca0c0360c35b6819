"""What happens to a request before any route sees it, in raw ASGI:

1. refusals made from the request line and headers alone, before a byte of the body is read:
   a foreign page or host name on a keyless server (403), a missing or wrong key on /v1 (401),
   a declared body over the limit (413);
2. the body read whole, counted against the limit (413, whether or not it declared its length:
   chunked uploads do not) and against the clock (408 after `upload_timeout`), so a client
   that sends a byte a second holds only its own connection, never a place in the queue;
3. only then admission to the model queue (503 when full), with a share kept for writes so
   that enrolments are not starved by recognitions.

A refusal sent while the client is still sending reads the rest of a body declared within the
limit (closing on unread bytes would reset the connection before the answer is read), but
stops when the client hangs up and after DRAIN_SECONDS; every answer sent before the body
ended also closes the connection.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facecnn.serve.errors import refusal
from facecnn.serve.security import UploadError
from facecnn.serve.service import Service

ROLE = "facecnn.role"  # scope key: the caller's role ("read", "admin" or None)
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
FORM_OVERHEAD = 64 * 1024  # a multipart body's own bytes, on top of --max-upload-mb
DRAIN_SECONDS = 5.0  # the most a refusal waits for the rest of a body it will not use
WRITE_PATHS = ("/v1/people", "/v1/clusters")  # POSTs here change the gallery or its folder


def own_hosts(scope: Scope) -> set[str]:
    """The Host header values that name this server: its loopback names, at its port."""
    host, port = scope.get("server") or ("127.0.0.1", 80)
    names = {*LOCAL_NAMES, f"[{host}]" if ":" in host else host}
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


def _keyless_check(headers: Headers, scope: Scope) -> None:
    """Without keys anyone who reaches the port is admin, so only this machine may: refuse a
    page from another site (its Origin) and a host name that is not ours (DNS rebinding)."""
    own = own_hosts(scope)
    origin = headers.get("origin")
    if headers.get("host") not in own or (origin is not None
                                          and origin not in {f"http://{h}" for h in own}):
        raise UploadError(403, "this server has no API keys, so it answers only pages and "
                               "clients of its own address (start it with --api-key-file to "
                               "serve others)")


class ClientGone(Exception):
    """The client hung up before its body arrived: there is no one left to answer."""


class _Body:
    """The request body: read whole within its limits, then handed to the app from memory."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_upload: int) -> None:
        headers = Headers(scope=scope)
        self._receive, self._send, self.size = receive, send, 0
        self.limit = max_upload + FORM_OVERHEAD
        self.too_large = f"upload over {max_upload / 2**20:g} MB"
        length = headers.get("content-length")
        self.declared = int(length) if length and length.isdigit() else None
        self.ended = not self.declared and "transfer-encoding" not in headers
        self.chunks: list[bytes] | None = []  # None once handed to the app

    async def _next(self, deadline: float) -> bytes:
        """The next piece of the body; ClientGone when the client left, TimeoutError past
        `deadline` (time.monotonic)."""
        message = await asyncio.wait_for(self._receive(),
                                         max(0.0, deadline - time.monotonic()))
        if message["type"] == "http.disconnect":
            raise ClientGone
        self.ended = not message.get("more_body", False)
        data = message.get("body", b"")
        self.size += len(data)
        return data

    async def read(self, seconds: float) -> None:
        """Read the whole body: UploadError 413 over the limit, 408 after `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while not self.ended:
                self.chunks.append(await self._next(deadline))
                if self.size > self.limit:
                    raise UploadError(413, self.too_large)
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
            raise UploadError(408, f"the upload did not arrive within {seconds:g} s "
                                   "(serve --upload-timeout)") from None

    async def drain(self, seconds: float) -> None:
        """Read and drop the rest of a body declared within the limit, so that a refusal
        reaches a client still sending it; never past the limit, the deadline or a hang-up."""
        deadline = time.monotonic() + seconds
        try:
            while not self.ended and self.size <= self.limit:
                await self._next(deadline)
        except (ClientGone, asyncio.TimeoutError):
            return

    async def receive(self) -> Message:
        """The app's `receive`: the body read, in one message, then the client's own
        messages (its disconnect)."""
        if self.chunks is None:
            return await self._receive()
        body, self.chunks = b"".join(self.chunks), None
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.ended:
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"connection", b"close")]}
        await self._send(message)


class Guard:
    """The middleware: sets scope[ROLE] for the routes, or answers the refusal itself."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(scope, receive, send, self.service.max_bytes)
        try:
            scope[ROLE] = self._role(scope)
            if body.declared is not None and body.declared > body.limit:
                raise UploadError(413, body.too_large)
        except UploadError as exc:
            if body.declared is not None and body.declared <= body.limit:
                await body.drain(min(DRAIN_SECONDS, self.service.upload_timeout))
            await refusal(exc)(scope, body.receive, body.send)
            return
        try:
            await body.read(self.service.upload_timeout)
        except ClientGone:
            return
        except UploadError as exc:
            await refusal(exc)(scope, body.receive, body.send)
            return
        share = self._share(scope)
        if share is None:
            await self.app(scope, body.receive, body.send)
            return
        try:
            self.service.admission.enter(share)
        except UploadError as exc:
            await refusal(exc)(scope, body.receive, body.send)
            return
        try:
            await self.app(scope, body.receive, body.send)
        finally:
            self.service.admission.leave(share)

    def _role(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if self.service.keys is None:
            _keyless_check(headers, scope)
            return "admin"
        role = self.service.keys.role(headers.get("x-api-key"))
        if role is None and scope["path"].startswith("/v1/"):
            raise UploadError(401, "missing or wrong x-api-key header")
        return role

    @staticmethod
    def _share(scope: Scope) -> str | None:
        """Which part of the model queue a request waits in: "write" (enrolments, cluster
        edits), "read", or None (not model work)."""
        if scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            return None
        return "write" if scope["path"].startswith(WRITE_PATHS) else "read"
