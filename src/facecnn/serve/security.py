"""API keys (stored hashed, read-only or admin) and what an upload may be before it is decoded."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecnn.data.decode import NotAnImage, TooManyPixels, read_image_bytes
from facecnn.errors import FacecnnError

ROLES = ("read", "admin")
KEYS_ENV = "FACECNN_API_KEYS"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyStore:
    """sha256 of each key -> role. The keys themselves are never kept in memory."""

    roles: dict[str, str]

    @classmethod
    def parse(cls, text: str, source: str) -> "KeyStore":
        """Lines `KEY [read|admin]` (admin by default); `#` starts a comment."""
        roles = {}
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            role = fields[1] if len(fields) > 1 else "admin"
            if len(fields) > 2 or role not in ROLES or len(fields[0]) < 16:
                raise FacecnnError(f"{source}, line {number}: expected `KEY [read|admin]` with "
                                   "a key of at least 16 characters")
            roles[_digest(fields[0])] = role
        if not roles:
            raise FacecnnError(f"{source} holds no API keys")
        return cls(roles)

    @classmethod
    def load(cls, file: Path | None) -> "KeyStore | None":
        """Keys from --api-key-file, else from $FACECNN_API_KEYS (`;`-separated lines)."""
        if file is not None:
            if not file.is_file():
                raise FacecnnError(f"API key file not found: {file}")
            return cls.parse(file.read_text(), str(file))
        if os.environ.get(KEYS_ENV):
            return cls.parse(os.environ[KEYS_ENV].replace(";", "\n"), KEYS_ENV)
        return None

    def role(self, key: str | None) -> str | None:
        if not key:
            return None
        digest = _digest(key)
        for known, role in self.roles.items():
            if hmac.compare_digest(known, digest):
                return role
        return None


@dataclass
class Upload:
    """An uploaded file: its name (for messages and sources) and its bytes."""

    name: str
    data: bytes


class UploadError(Exception):
    """A request refused before any model saw it: HTTP status, a one-line reason and any
    headers the answer needs (Retry-After on 503)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Upright RGB pixels of an uploaded image. The format is sniffed from the bytes (a text
    file named .jpg is refused with 415) and the size is checked from the header before the
    pixels are decoded (413), so a decompression bomb costs nothing."""
    try:
        return read_image_bytes(data, max_pixels)
    except NotAnImage:
        raise UploadError(415, "not an image (JPEG, PNG, BMP, WebP, ...)") from None
    except TooManyPixels as exc:
        raise UploadError(413, str(exc)) from None
    except ValueError:
        raise UploadError(422, "the image could not be decoded") from None
