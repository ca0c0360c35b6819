"""Fuzzing kept in the suite (issue 24), each within a fixed budget of examples, derandomized
so CI is repeatable:

- the image reader on mutated and random files of every format it takes: pixels, or one
  ValueError line (never another exception, a program started, or a decode left running);
- the server's OpenAPI schema through schemathesis, every operation without a key, with a
  read key and with an admin key, on a real `facecnn serve` process: no 5xx, and every answer
  matches its schema within a timeout;
- the upload guard on raw HTTP requests whose declared and sent bodies disagree, clients that
  hang up or stall: never a 5xx, and /healthz answers after each one;
- tests/fuzz_corpus/: the inputs that once failed, replayed through the reader and the server.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from facecnn.data.decode import read_image_bytes
from helpers import invoke_cli, running_server, write_photos
from test_serve import ADMIN, READER, jpeg

CORPUS = Path(__file__).parent / "fuzz_corpus"
BUDGET = settings(deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
HANG_UP = ("POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
           "Content-Type: multipart/form-data; boundary=x\r\n\r\n0123456789")


@pytest.fixture(autouse=True)
def subnormal_floats() -> Iterator[None]:
    """Hypothesis draws floats with subnormals, which it refuses to do while an earlier test in
    this process left PyTorch flushing them to zero (facecnn's models turn that on)."""
    import sys

    torch = sys.modules.get("torch")
    flushing = torch is not None and float(torch.tensor([1e-39]) * 2) == 0.0
    if flushing:
        torch.set_flush_denormal(False)
    yield
    if flushing:
        torch.set_flush_denormal(True)


def _seed_images() -> dict[str, bytes]:
    """A small photo in each format the reader takes, to mutate."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    seeds = {}
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM"):
        buffer = io.BytesIO()
        pixels.save(buffer, format=fmt)
        seeds[fmt] = buffer.getvalue()
    return seeds


SEEDS = _seed_images()


def _decodes_or_says_why(data: bytes) -> None:
    try:
        pixels = read_image_bytes(data, max_pixels=4_000_000, seconds=10)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3


@settings(BUDGET, max_examples=300)
@given(fmt=st.sampled_from(sorted(SEEDS)),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 4096)))
def test_mutated_images_decode_or_say_why(fmt: str, flips: list[tuple[int, int]],
                                          cut: int | None) -> None:
    data = bytearray(SEEDS[fmt])
    for position, value in flips:
        data[position % len(data)] = value
    _decodes_or_says_why(bytes(data[:cut]))


@settings(BUDGET, max_examples=200)
@given(prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM",
                               b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP", b"P5\n", b"%!PS-"]),
       body=st.binary(max_size=2048))
@example(prefix=b"", body=(CORPUS / "eps_loop.jpg").read_bytes())
def test_random_bytes_decode_or_say_why(prefix: bytes, body: bytes) -> None:
    _decodes_or_says_why(prefix + body)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_the_corpus_still_reads_safely(name: str) -> None:
    _decodes_or_says_why((CORPUS / name).read_bytes())


# ---- the server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `facecnn serve` with keys, a gallery of two people and a cluster folder, so that
    every route has something to answer from."""
    root = tmp_path_factory.mktemp("fuzz")
    photos = write_photos(root / "photos", ["s1", "s2"], range(1, 4))
    hog = ("--detector", "hog", "--quiet")
    for command in (("enroll", str(photos), "--gallery", str(root / "g.db")),
                    ("cluster", str(photos), "--out", str(root / "people"), "--workers", "1")):
        made = invoke_cli(*command, *hog, cwd=root)
        assert made.returncode == 0, made.stderr
    (root / "keys.txt").write_text(f"{ADMIN} admin\n{READER} read\n")
    with running_server(["--gallery", str(root / "g.db"), "--clusters", str(root / "people"),
                         "--api-key-file", str(root / "keys.txt"), "--detector", "hog",
                         "--max-upload-mb", "1", "--upload-timeout", "5"], root) as url:
        yield url


@pytest.mark.e2e
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_schema(server: str, mode: GenerationMode) -> None:
    """Valid (positive) and invalid (negative) requests to every operation of the schema the
    server publishes, without a key, with a read key and with an admin key."""
    api = schemathesis.openapi.from_url(f"{server}openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    fuzzed = 0
    for operation in operations:
        @settings(BUDGET, max_examples=8)
        @given(case=operation.as_strategy(mode))
        def answered(case: schemathesis.Case) -> None:
            for key in (None, READER, ADMIN):
                headers = {"x-api-key": key} if key else {}
                response = case.call(base_url=server.rstrip("/"), headers=headers, timeout=60)
                assert response.status_code < 500, (case.as_curl_command(), response.text)
                if response.status_code < 400:
                    case.validate_response(response, checks=[content_type_conformance,
                                                             response_schema_conformance])
                elif "json" in response.headers.get("content-type", ""):
                    assert list(response.json()) == ["detail"], response.text

        try:
            answered()
            fuzzed += 1
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, operation.path
    assert fuzzed >= 10

def _send_raw(url: str, head: str, body: bytes, read_answer: bool) -> bytes:
    """Send a request's head and body over a new connection; the answer's status line if
    `read_answer`, else hang up at once."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(head.encode("latin-1") + body)
        return conn.recv(64).split(b"\r\n", 1)[0] if read_answer else b""


@pytest.mark.e2e
@settings(BUDGET, max_examples=40)
@given(declared=st.one_of(st.none(), st.integers(0, 3 * 2**20), st.just(-1)),
       sent=st.integers(0, 4096), chunked=st.booleans(),
       key=st.sampled_from([None, READER, ADMIN, "x" * 40]),
       path=st.sampled_from(["/v1/recognize", "/v1/people/zed", "/v1/verify", "/healthz",
                             "/v1/clusters/merge"]),
       read_answer=st.booleans())
@example(declared=1000, sent=10, chunked=False, key=None, path="/v1/recognize",
         read_answer=False)  # the request that once hung the server (corpus: hang_up.http)
@example(declared=1000, sent=10, chunked=False, key=READER, path="/v1/recognize",
         read_answer=False)
def test_raw_uploads_never_stall_the_server(server: str, declared: int | None, sent: int,
                                            chunked: bool, key: str | None, path: str,
                                            read_answer: bool) -> None:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1",
             "Content-Type: multipart/form-data; boundary=x"]
    if declared is not None:
        lines.append(f"Content-Length: {declared}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if key:
        lines.append(f"x-api-key: {key}")
    body = b"--x\r\n" + b"y" * sent
    status = _send_raw(server, "\r\n".join(lines) + "\r\n\r\n", body, read_answer)
    if status:
        assert int(status.split()[1]) < 500, status
    assert httpx.get(f"{server}healthz", timeout=10).status_code == 200


@pytest.mark.e2e
def test_the_corpus_of_requests_is_answered(server: str) -> None:
    for request in sorted(CORPUS.glob("*.http")):
        head, body = request.read_bytes().split(b"\r\n\r\n", 1)
        _send_raw(server, head.decode("latin-1") + "\r\n\r\n", body, read_answer=False)
        assert httpx.get(f"{server}healthz", timeout=10).status_code == 200
    for image in sorted(CORPUS.glob("*.[jp][pn]g")):
        answer = httpx.post(f"{server}v1/recognize", headers={"x-api-key": READER},
                            files={"image": (image.name, image.read_bytes())}, timeout=60)
        assert answer.status_code < 500 and list(answer.json()) in (["detail"], ["faces"])
    assert httpx.post(f"{server}v1/recognize", headers={"x-api-key": READER}, timeout=60,
                      files={"image": ("ok.jpg", jpeg("s1", 5))}).status_code == 200
