"""Decode one image into the uint8 array a model eats: the single place pixels are read.

Every reader (the CLI's photos, the training cache, the server's uploads, cluster sheets) goes
through `open_image`, which
- tries only the formats in FORMATS, whose decoders run inside this process: Pillow would open
  an EPS or PDF-like file (named .jpg or not) by starting Ghostscript, a program of its own;
- checks the pixel count from the header before anything is decoded, so a 48 KB PNG that
  claims 20000 x 20000 pixels costs nothing (Pillow's own bomb guard only raises at twice its
  limit, with an exception type nobody expects);
- refuses a JPEG of more scans than any encoder writes (each scan is a pass over every pixel);
- and stops a decode that runs past DECODE_SECONDS, between two blocks of the file.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = None  # open_image checks every image against MAX_PIXELS instead
# Room for any camera's photo (108 MP phones included), refusing what would need gigabytes.
MAX_PIXELS = int(os.environ.get("FACECNN_MAX_PIXELS", 120_000_000))
_WIDE_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per pixel
# What photos come as, each decoded by a library inside this process (phones' multi-picture
# JPEGs open as JPEG, then say MPO).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM", "AVIF")
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF, GIF, PGM/PPM or AVIF"
MAX_JPEG_SCANS = 500  # progressive encoders write about 10; libjpeg-turbo's advised cap
DECODE_SECONDS = float(os.environ.get("FACECNN_DECODE_SECONDS", 30))
_CONVERT_ROWS = 1 << 20  # pixels converted at a time from 16 or 32 bits to 8


class NotAnImage(ValueError):
    """The bytes are not in any image format Pillow reads."""


class TooManyPixels(ValueError):
    """The header claims more pixels than the limit: refused before decoding."""


class TooSlow(ValueError):
    """The decode ran past its time: stopped between two blocks of the file."""


class _Deadline(io.RawIOBase):
    """The image's bytes, read through a clock: Pillow's decoders pull the file block by
    block, so a read past the deadline stops the decode (TimeoutError) instead of letting it
    run on."""

    def __init__(self, raw: BinaryIO, seconds: float) -> None:
        self.raw, self.deadline = raw, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if time.monotonic() > self.deadline:
            raise TimeoutError
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


def open_image(source: str | Path | BinaryIO, max_pixels: int | None = None,
               seconds: float | None = None) -> Image.Image:
    """Open (not decode) an image of one of FORMATS, refusing one whose header claims over
    `max_pixels` (default MAX_PIXELS, `$FACECNN_MAX_PIXELS`); its decode stops after
    `seconds` (default DECODE_SECONDS, `$FACECNN_DECODE_SECONDS`)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:  # a photo's bytes in memory: the image needs no file left open
        raw = io.BytesIO(Path(source).read_bytes()) if isinstance(source, (str, Path)) \
            else source
        img = Image.open(_Deadline(raw, DECODE_SECONDS if seconds is None else seconds),
                         formats=FORMATS)
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise NotAnImage(f"not an image: {FORMAT_NAMES} expected "
                         f"({type(exc).__name__})") from None
    except (OSError, TimeoutError) as exc:  # after UnidentifiedImageError, which is one
        raise ValueError(f"unreadable image ({exc})") from None
    width, height = img.size
    problem = None
    if width * height > limit:
        hint = " (set FACECNN_MAX_PIXELS to allow more)" if max_pixels is None else ""
        problem = TooManyPixels(f"image of {width}x{height} pixels is over the limit of "
                                f"{limit:,}{hint}")
    elif img.format in ("JPEG", "MPO") and _jpeg_scans(img.fp) > MAX_JPEG_SCANS:
        problem = NotAnImage(f"a JPEG of over {MAX_JPEG_SCANS} scans (encoders write about "
                             "10): refused rather than decoded")
    if problem is not None:
        img.close()
        raise problem
    return img


def _jpeg_scans(fp: BinaryIO) -> int:
    """Start-of-scan markers in a JPEG: inside compressed data a 0xFF byte is always followed
    by 0x00 or a restart marker, so every FF DA pair is a scan."""
    where = fp.tell()
    fp.seek(0)
    scans = 0
    tail = b""
    for block in iter(lambda: fp.read(1 << 20), b""):
        scans += (tail + block).count(b"\xff\xda")
        tail = block[-1:]
    fp.seek(where)
    return scans


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit) grayscale scaled to 8 bits; Pillow's convert would clip every value
    above 255 to white. Converted a slice of rows at a time, in 32-bit floats: a 40 MP 16-bit
    PNG needs a few bytes a pixel, not the 25 of whole-image float64 arithmetic."""
    if img.mode not in _WIDE_GRAY:
        return img
    values = np.asarray(img)
    peak = float(values.max(initial=0))
    top = 1.0 if img.mode == "F" and peak <= 1.0 else (
        65535.0 if img.mode.startswith("I;16") or peak > 255 else 255.0)
    out = np.empty(values.shape, np.uint8)
    step = max(1, _CONVERT_ROWS // max(1, values.shape[1]))
    for start in range(0, values.shape[0], step):
        rows = values[start:start + step].astype(np.float32)
        rows *= np.float32(255.0 / top)
        np.clip(np.rint(rows, out=rows), 0, 255, out=rows)
        out[start:start + step] = rows
    return Image.fromarray(out)


def to_array(img: Image.Image, mode: str = "RGB", size: int | None = None) -> np.ndarray:
    """Decode an opened image upright (EXIF orientation applied) into a uint8 array in `mode`
    ("RGB"/"L"), resized to size x size when `size` is given.

    JPEGs much larger than `size` are decoded at reduced scale (PIL draft mode), which is
    most of the speed of building the training cache.
    """
    try:
        if size is not None:
            img.draft(mode, (size, size))
        img = _eight_bit(ImageOps.exif_transpose(img))
        gray = mode == "RGB" and img.mode == "L"  # made RGB in numpy: 3 bytes a pixel, not 10
        img = img.convert("L" if gray else mode)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        array = np.array(img, dtype=np.uint8)  # writable: torch.from_numpy needs it
        return np.repeat(array[:, :, None], 3, axis=2) if gray else array
    except TimeoutError:
        raise TooSlow("the image took too long to decode (stopped)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"unreadable image ({exc})") from None


def read_image(path: str | Path, mode: str = "RGB", size: int | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """The pixels of an image file (see `to_array`). Raises ValueError (NotAnImage,
    TooManyPixels, TooSlow or plain) with a short reason for anything that is not a readable
    image."""
    with open_image(path, max_pixels) as img:
        return to_array(img, mode, size)


def read_reduced(path: str | Path, factor: int) -> tuple[np.ndarray, float]:
    """`read_image` (RGB) of a JPEG decoded at down to 1/`factor` of its size in each side
    (draft mode skips most of the decode: a thumbnail of a 12 MP photo's face needs none of
    it), and by how much each side was reduced (1.0 for other formats)."""
    with open_image(path) as img:
        width = img.size[0]
        if factor > 1:
            img.draft("RGB", (width // factor, img.size[1] // factor))
        return to_array(img), width / img.size[0]


def read_image_bytes(data: bytes, max_pixels: int | None = None,
                     seconds: float | None = None) -> np.ndarray:
    """`read_image` for bytes already in memory (an upload)."""
    with open_image(io.BytesIO(data), max_pixels, seconds) as img:
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
