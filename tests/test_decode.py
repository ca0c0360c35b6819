"""Every reader's one door: pixel limits checked from the header, 16-bit images, non-images."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.data.decode import (
    NotAnImage,
    TooManyPixels,
    decode_or_reason,
    read_image,
    read_image_bytes,
)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's header."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))
    return path


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 1000 and Image.open(bomb).size == (20000, 20000)
    with pytest.raises(TooManyPixels, match="20000x20000 pixels is over the limit"):
        read_image(bomb)
    with pytest.raises(TooManyPixels):
        read_image_bytes(bomb.read_bytes(), max_pixels=1000)
    assert "over the limit" in decode_or_reason((str(bomb), 32, 3))  # the training cache
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(small)
    with pytest.raises(TooManyPixels):
        read_image(small, max_pixels=40 * 30 - 1)
    assert read_image(small, max_pixels=40 * 30).shape == (30, 40, 3)


def test_sixteen_bit_images_keep_their_brightness(tmp_path: Path) -> None:
    gray = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    rgb = read_image(tmp_path / "gray16.png")
    expected = np.rint(gray / 257.0)
    assert np.abs(rgb[..., 0].astype(float) - expected).max() <= 1  # not clipped to white
    assert rgb.mean() == pytest.approx(127.5, abs=1)
    assert read_image(tmp_path / "gray16.png", "L", size=8).shape == (8, 8)


def test_non_images_say_so(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(NotAnImage, match="not an image"):
        read_image(text)
    with pytest.raises(NotAnImage):
        read_image_bytes(b"GIF89a nonsense")
    with pytest.raises(ValueError, match="unreadable"):
        read_image(tmp_path / "missing.jpg")
