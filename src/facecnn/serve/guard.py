"""Refusals made from the request line and headers alone, in raw ASGI, before a byte of the
body is read: a foreign page or host name on a keyless server (403), a missing or wrong key on
/v1 (401), a declared body over the limit (413), a full queue of model work (503).

The body is then counted as it arrives and cut off at the limit (413), whether or not it
declared its length (chunked uploads do not), and an answer sent before the body ended closes
the connection, so the rest of an upload is never read.
"""

from __future__ import annotations

from contextlib import suppress

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facecnn.serve.errors import refusal
from facecnn.serve.security import UploadError
from facecnn.serve.service import Service

ROLE = "facecnn.role"  # scope key: the caller's role ("read", "admin" or None)
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
FORM_OVERHEAD = 64 * 1024  # a multipart body's own bytes, on top of --max-upload-mb


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


class _Body:
    """The request body as the app reads it: counted against the limit, and whether it has
    ended, so that an answer sent before then also closes the connection."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_upload: int) -> None:
        headers = Headers(scope=scope)
        self._receive, self._send, self.size = receive, send, 0
        self.limit = max_upload + FORM_OVERHEAD
        self.too_large = f"upload over {max_upload / 2**20:g} MB"
        length = headers.get("content-length")
        self.declared = int(length) if length and length.isdigit() else None
        self.ended = not self.declared and "transfer-encoding" not in headers

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            self.ended = not message.get("more_body", False)
            if self.size > self.limit:  # FastAPI hands an HTTPException from here on as is
                raise HTTPException(413, self.too_large)
        return message

    async def drain(self) -> None:
        """Read the rest of a body declared within the limit, so that a refusal reaches a
        client still sending it (closing on unread bytes resets the connection instead)."""
        with suppress(HTTPException):  # longer than it said: cut off after all
            while not self.ended:
                await self.receive()

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
        model_work = scope["method"] == "POST" and scope["path"].startswith("/v1/")
        try:
            scope[ROLE] = self._role(scope)
            if body.declared is not None and body.declared > body.limit:
                raise UploadError(413, body.too_large)
            if model_work:
                self.service.admission.enter()
        except UploadError as exc:
            if body.declared is not None and body.declared <= body.limit:
                await body.drain()
            await refusal(exc)(scope, body.receive, body.send)
            return
        try:
            await self.app(scope, body.receive, body.send)
        finally:
            if model_work:
                self.service.admission.leave()

    def _role(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if self.service.keys is None:
            _keyless_check(headers, scope)
            return "admin"
        role = self.service.keys.role(headers.get("x-api-key"))
        if role is None and scope["path"].startswith("/v1/"):
            raise UploadError(401, "missing or wrong x-api-key header")
        return role
