"""Decode one image into the uint8 array a model eats: the single place pixels are read.

Every reader (the CLI's photos, the training cache, the server's uploads) goes through
`open_image`, which checks the pixel count from the header before anything is decoded, so a
48 KB PNG that claims 20000 x 20000 pixels costs nothing. That check replaces Pillow's own
bomb guard, which only raises at twice its limit and then with an exception type nobody
expects.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = None  # open_image checks every image against MAX_PIXELS instead
# Room for any camera's photo (108 MP phones included), refusing what would need gigabytes.
MAX_PIXELS = int(os.environ.get("FACECNN_MAX_PIXELS", 120_000_000))
_WIDE_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per pixel


class NotAnImage(ValueError):
    """The bytes are not in any image format Pillow reads."""


class TooManyPixels(ValueError):
    """The header claims more pixels than the limit: refused before decoding."""


def open_image(source: str | Path | BinaryIO, max_pixels: int | None = None) -> Image.Image:
    """Open (not decode) an image, refusing one whose header claims over `max_pixels`
    (default MAX_PIXELS, `$FACECNN_MAX_PIXELS`)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        img = Image.open(source)
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise NotAnImage(f"not an image ({type(exc).__name__})") from None
    except OSError as exc:  # after UnidentifiedImageError, which is one
        raise ValueError(f"unreadable image ({exc})") from None
    width, height = img.size
    if width * height > limit:
        img.close()
        hint = " (set FACECNN_MAX_PIXELS to allow more)" if max_pixels is None else ""
        raise TooManyPixels(f"image of {width}x{height} pixels is over the limit of "
                            f"{limit:,}{hint}")
    return img


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit) grayscale scaled to 8 bits; Pillow's convert would clip every value
    above 255 to white."""
    if img.mode not in _WIDE_GRAY:
        return img
    values = np.asarray(img, dtype=np.float64)
    top = 1.0 if img.mode == "F" and values.max(initial=0) <= 1.0 else (
        65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0)
    return Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8))


def to_array(img: Image.Image, mode: str = "RGB", size: int | None = None) -> np.ndarray:
    """Decode an opened image upright (EXIF orientation applied) into a uint8 array in `mode`
    ("RGB"/"L"), resized to size x size when `size` is given.

    JPEGs much larger than `size` are decoded at reduced scale (PIL draft mode), which is
    most of the speed of building the training cache.
    """
    try:
        if size is not None:
            img.draft(mode, (size, size))
        img = _eight_bit(ImageOps.exif_transpose(img)).convert(mode)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.array(img, dtype=np.uint8)  # writable: torch.from_numpy needs it
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"unreadable image ({exc})") from None


def read_image(path: str | Path, mode: str = "RGB", size: int | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """The pixels of an image file (see `to_array`). Raises ValueError (NotAnImage,
    TooManyPixels or plain) with a short reason for anything that is not a readable image."""
    with open_image(path, max_pixels) as img:
        return to_array(img, mode, size)


def read_image_bytes(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """`read_image` for bytes already in memory (an upload)."""
    with open_image(io.BytesIO(data), max_pixels) as img:
        return to_array(img)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Contiguous uint8 RGB (dlib and the detectors need it) from an RGB or gray array;
    anything else is a one-line error."""
    from facecnn.errors import FacecnnError

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise FacecnnError(f"faces are found in uint8 RGB or gray images, not {image.dtype} "
                           f"of shape {image.shape}")
    return np.ascontiguousarray(image)


def decode_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """(size, size, channels) uint8 model input of `path`: gray for 1 channel, else RGB."""
    array = read_image(path, "L" if channels == 1 else "RGB", size)
    return array.reshape(size, size, channels)


def decode_or_reason(args: tuple[str, int, int]) -> np.ndarray | str:
    """`decode_image` for worker pools: returns the error reason instead of raising."""
    try:
        return decode_image(*args)
    except ValueError as exc:
        return str(exc)
