"""Decode one image file into the uint8 array a model eats: the single place pixels are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 200_000_000  # refuse decompression bombs, allow large real photos


def read_image(path: str | Path, mode: str = "RGB", size: int | None = None) -> np.ndarray:
    """Read `path` upright (EXIF orientation applied) as a uint8 array in `mode` ("RGB"/"L"),
    resized to size x size when `size` is given.

    JPEGs much larger than `size` are decoded at reduced scale (PIL draft mode), which is
    most of the speed of building the training cache.
    Raises ValueError with a short reason for anything that is not a readable image.
    """
    try:
        with Image.open(path) as img:
            if size is not None:
                img.draft(mode, (size, size))
            img = ImageOps.exif_transpose(img).convert(mode)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.array(img, dtype=np.uint8)  # writable: torch.from_numpy needs it
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not an image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"unreadable image ({exc})") from None


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
