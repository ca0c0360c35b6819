"""What the tests share (conftest.py keeps the fixtures): the AT&T photos as users have them,
the `facecnn` command run in this process or in a fresh one, and real servers."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

# The repository sits beside the team's shared/ folder (checkouts and CI alike).
ATT_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "att_faces"

# Only a guard against a hung process: never a bound a busy machine could run past.
HANG_GUARD = 1800


# ---- photos ----------------------------------------------------------------------------------
def make_jpeg_tree(root: Path, people: list[str], per_person: int, size: int = 96) -> Path:
    """Copy AT&T faces into root/<person>/*.jpg as colour JPEGs (what users have)."""
    for person in people:
        (root / person).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_person + 1):
            img = Image.open(ATT_FACES / person / f"{i}.pgm").convert("RGB").resize((size, size))
            img.save(root / person / f"{i}.jpg", quality=90)
    return root


def canvas(person: str, index: int, side: int = 200, scale: float = 1.0,
           offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """An AT&T face (92 x 112 gray) pasted, optionally rescaled, into a grey RGB canvas."""
    face = Image.open(ATT_FACES / person / f"{index}.pgm").convert("RGB")
    if scale != 1.0:
        face = face.resize((round(92 * scale), round(112 * scale)), Image.Resampling.BICUBIC)
    out = np.full((side, side, 3), 90, np.uint8)
    top = (side - face.height) // 2 + offset[1]
    left = (side - face.width) // 2 + offset[0]
    out[top:top + face.height, left:left + face.width] = np.asarray(face)
    return out


def write_photos(root: Path, people: list[str], indices: range) -> Path:
    """root/<person>/<i>.jpg: each AT&T face in its canvas, as a JPEG."""
    for person in people:
        (root / person).mkdir(parents=True, exist_ok=True)
        for i in indices:
            Image.fromarray(canvas(person, i)).save(root / person / f"{i}.jpg", quality=95)
    return root


def digest(folder: Path) -> str:
    """One hash of every file below `folder`, names included."""
    h = hashlib.sha1()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def read_rows(run: Path) -> list[dict[str, str]]:
    """A run's results.csv, one dict per epoch."""
    with (run / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a finished run's folder at `to` (the conftest fixture digits_run's, say)."""
    shutil.copytree(run, to)
    return to


def tensor_files_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


# ---- the command -----------------------------------------------------------------------------
def run_cli(*args: str, cwd: Path, timeout: float = HANG_GUARD,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real `facecnn` command in a fresh process (`python -m facecnn ARGS`)."""
    return subprocess.run([sys.executable, "-m", "facecnn", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


@dataclass
class CliResult:
    """What `run_cli` gives, for a command run in this process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def _flushing_denormals() -> bool:
    import torch

    return float(torch.tensor([1e-39]) * 2) == 0.0


def _exit_status(exc: SystemExit) -> int:
    """The status the interpreter exits with for `exc` (printing a message code, as it does)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _as_a_process(args: Sequence[str]) -> int:
    """Run the console script's own entry, `facecnn.cli:main` (which turns FacecnnError into
    `error: ...` on stderr and its exit code, and Ctrl-C into 130), in the interpreter state
    `python -m facecnn ARGS` starts with; returns the exit status that process would have."""
    from typer._click import formatting

    from facecnn.cli import main

    script = Path(sys.modules["facecnn"].__file__).with_name("__main__.py")
    stand_in = types.ModuleType("__main__")  # click names the program after __main__
    stand_in.__package__ = "facecnn"
    saved_argv, saved_main, saved_hook = sys.argv, sys.modules["__main__"], sys.excepthook
    sys.argv, sys.modules["__main__"] = [str(script), *args], stand_in
    formatting.FORCED_WIDTH = None  # CliRunner forces 80 columns; a real process does not
    try:
        main()
        return 0
    except SystemExit as exc:
        return _exit_status(exc)
    except Exception:  # uncaught: what the interpreter prints, and its exit status
        traceback.print_exc()
        return 1
    finally:
        sys.argv, sys.modules["__main__"] = saved_argv, saved_main
        sys.excepthook = saved_hook  # Typer installs its own
        sys.stdout.flush()
        sys.stderr.flush()


def invoke_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """`facecnn ARGS` run in this process, as `run_cli` runs it in a fresh one: from `cwd`,
    with `env` added to the environment, giving the same exit code, stdout and stderr (apart).

    Typer's CliRunner isolates the streams and the environment; its `invoke` would call the
    Typer app itself, past the error handling of the console script, so the entry function is
    called inside the runner's isolation instead. Loaded models stay loaded for the next call;
    the process-wide settings a command changes (the working folder, the environment, the
    logging handlers, denormal flushing) are put back."""
    torch_loaded = "torch" in sys.modules
    flushing = _flushing_denormals() if torch_loaded else False
    before, environ = os.getcwd(), dict(os.environ)
    loggers = [logging.getLogger(), logging.getLogger("facecnn")]
    logging_state = [(log, list(log.handlers), log.level, log.propagate) for log in loggers]
    os.chdir(cwd)
    try:
        with CliRunner().isolation(env=env) as (stdout, stderr, _):
            status = _as_a_process(args)
            out, err = stdout.getvalue(), stderr.getvalue()
    finally:
        os.chdir(before)
        if dict(os.environ) != environ:  # what the command itself set stays in its "process"
            os.environ.clear()
            os.environ.update(environ)
        for log, handlers, level, propagate in logging_state:
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate = propagate
        if "torch" in sys.modules:
            import torch

            torch.set_flush_denormal(flushing)
    return CliResult(list(args), status, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"))


# ---- servers ---------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(args: list[str], cwd: Path) -> Iterator[str]:
    """A real `facecnn serve ARGS` process on a free 127.0.0.1 port; yields its base URL
    (ending with /) once /healthz answers, and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecnn", "serve", *args, "--host", "127.0.0.1", "--port",
         str(port)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    with serving(proc, port, lambda: proc.communicate()[1]):
        yield f"http://127.0.0.1:{port}/"


@contextmanager
def serving(proc: subprocess.Popen, port: int, stderr: Callable[[], str]) -> Iterator[None]:
    """Wait until the server process answers /healthz on 127.0.0.1:PORT (failing with the end
    of `stderr()` if it exits first, or hangs), and stop it afterwards."""
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"server did not start: {stderr()[-2000:]}")
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=HANG_GUARD)
