"""Shared fixtures: the real AT&T faces, small image trees made from them, a CLI runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx

import numpy as np
import pytest
from PIL import Image

# Under xdist each worker process gets one core: PyTorch's and OpenMP's default of a thread per
# core in every worker (and in every CLI process a test starts) oversubscribes the cores, and
# spinning OpenMP threads then wait on each other for most of the run. Set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# The repository sits beside the team's shared/ folder (checkouts and CI alike).
ATT_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "att_faces"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or fill the user's image cache."""
    os.environ["FACECNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def att_faces() -> Path:
    assert ATT_FACES.is_dir(), f"AT&T faces not found at {ATT_FACES}"
    return ATT_FACES


def make_jpeg_tree(root: Path, people: list[str], per_person: int, size: int = 96) -> Path:
    """Copy AT&T faces into root/<person>/*.jpg as colour JPEGs (what users have)."""
    for person in people:
        (root / person).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_person + 1):
            img = Image.open(ATT_FACES / person / f"{i}.pgm").convert("RGB").resize((size, size))
            img.save(root / person / f"{i}.jpg", quality=90)
    return root


@pytest.fixture()
def faces3(tmp_path: Path) -> Path:
    """Three people, ten JPEGs each."""
    return make_jpeg_tree(tmp_path / "faces", ["s1", "s2", "s3"], 10)


def run_cli(*args: str, cwd: Path, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real `facecnn` command in a fresh process."""
    return subprocess.run([sys.executable, "-m", "facecnn", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def tensor_files_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


@contextmanager
def running_server(args: list[str], cwd: Path) -> Iterator[str]:
    """A real `facecnn serve ARGS` process on a free 127.0.0.1 port; yields its base URL
    (ending with /) once /healthz answers, and stops it afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecnn", "serve", *args, "--host", "127.0.0.1", "--port",
         str(port)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    with serving(proc, port, lambda: proc.communicate()[1]):
        yield f"http://127.0.0.1:{port}/"


@contextmanager
def serving(proc: subprocess.Popen, port: int, stderr: Callable[[], str]) -> Iterator[None]:
    """Wait until the server process answers /healthz on 127.0.0.1:PORT (failing with the end
    of `stderr()` if it never does), and stop it afterwards."""
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"server did not start: {stderr()[-2000:]}")
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
