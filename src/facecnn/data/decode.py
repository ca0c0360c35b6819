"""Decode one image file into the uint8 array a model eats: the single place pixels are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 200_000_000  # refuse decompression bombs, allow large real photos


def decode_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """Read `path`, apply its EXIF orientation, convert to gray or RGB, resize to size x size.

    Returns (size, size, channels) uint8. JPEGs are decoded at reduced scale when much larger
    than `size` (PIL draft mode), which is most of the speed of the first epoch.
    Raises ValueError with a short reason for anything that is not a readable image.
    """
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            img.draft(mode, (size, size))
            img = ImageOps.exif_transpose(img)
            img = img.convert(mode)
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not an image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"unreadable image ({exc})") from None
    return array.reshape(size, size, channels)


def decode_or_reason(args: tuple[str, int, int]) -> np.ndarray | str:
    """`decode_image` for worker pools: returns the error reason instead of raising."""
    try:
        return decode_image(*args)
    except ValueError as exc:
        return str(exc)
