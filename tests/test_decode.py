"""Every reader's one door: pixel limits checked from the header, 16-bit images, non-images,
formats whose decoder would start a program, decodes that run too long."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.data.decode import (
    MAX_JPEG_SCANS,
    NotAnImage,
    TooManyPixels,
    TooSlow,
    decode_image,
    decode_or_reason,
    open_image,
    read_image,
    read_image_bytes,
    to_array,
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


# ---- issue 24: no decoder that starts a program, bounded time and memory ---------------------
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"


def test_postscript_never_reaches_a_program(tmp_path: Path, monkeypatch) -> None:
    """Pillow opens EPS by starting Ghostscript, which runs this file's endless loop."""
    import subprocess

    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or 1 / 0)
    eps = tmp_path / "holiday.jpg"
    eps.write_bytes(EPS_LOOP)
    for read in (lambda: read_image(eps), lambda: read_image_bytes(EPS_LOOP),
                 lambda: decode_image(eps, 32, 3)):
        with pytest.raises(NotAnImage, match="not an image: JPEG, PNG"):
            read()
    assert started == []


def test_a_decode_past_its_time_is_stopped(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")  # about 7 MB: many blocks to decode
    with open_image(io.BytesIO(buffer.getvalue()), seconds=0.05) as img:
        time.sleep(0.1)
        with pytest.raises(TooSlow, match="too long to decode"):
            to_array(img)
    assert read_image_bytes(buffer.getvalue()).shape == (1500, 1500, 3)


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buffer, format="JPEG", progressive=True)
    plain = buffer.getvalue()
    assert read_image_bytes(plain).shape == (64, 64, 3)  # a progressive JPEG has ~10 scans
    scans = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * (MAX_JPEG_SCANS + 1)
    with pytest.raises(NotAnImage, match="scans"):
        read_image_bytes(plain[:-2] + scans + plain[-2:])


@pytest.mark.e2e
def test_sixteen_bit_images_cost_a_few_bytes_a_pixel(tmp_path: Path) -> None:
    """A 16-bit PNG compresses to almost nothing; decoding it must not cost float64 copies."""
    gray = np.tile(np.linspace(0, 65535, 3000).astype(np.uint16), (3000, 1))
    Image.fromarray(gray).save(tmp_path / "wide.png")
    assert (tmp_path / "wide.png").stat().st_size < 200_000
    peak = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / "wide.png")],
                          capture_output=True, text=True, check=True).stdout.split()
    per_pixel = float(peak[0])
    assert per_pixel < 14, f"{per_pixel:.1f} bytes a pixel at the peak"  # was 28
    assert float(peak[1]) == pytest.approx(127.5, abs=1)


PEAK = """
import resource, sys
from facecnn.data.decode import read_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pixels = read_image(sys.argv[1])
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024 / (pixels.shape[0] * pixels.shape[1]), pixels.mean())
"""
