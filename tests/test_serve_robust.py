"""The REST server under pressure, through one real `facecnn serve` process started as a user
would (no --host, keys, a gallery that does not exist yet): chunked uploads, a full queue, a
gallery locked by another process, a threshold calibrated after start, a crash logged."""

from __future__ import annotations

import io
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from PIL import Image

from facecnn.faces.embedders.dlib import DlibEmbedder
from facecnn.faces.gallery import UNKNOWN, Gallery, match
from helpers import canvas, free_port, invoke_cli, serving, write_photos
from test_serve import ADMIN, READER, jpeg

MAX_QUEUE = 1
UPLOAD_TIMEOUT = 3  # seconds
CAPACITY = 2 + MAX_QUEUE  # the server's two model threads, plus its queue
MB = 2**20


@dataclass
class Server:
    client: httpx.Client
    port: int
    root: Path
    gallery: Path
    out: Path
    err: Path


@contextmanager
def serve_as_user(args: list[str], cwd: Path) -> Iterator[tuple[int, Path, Path]]:
    """`facecnn serve ARGS` on a free port and whatever host it picks itself; yields the port
    and the files its stdout and stderr go to, once /healthz answers on 127.0.0.1."""
    port = free_port("")
    out, err = cwd / "serve.out", cwd / "serve.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "facecnn", "serve", *args, "--port",
                                 str(port)], cwd=cwd, stdout=stdout, stderr=stderr)
    with serving(proc, port, err.read_text):
        yield port, out, err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("robust")
    (root / "keys.txt").write_text(f"{ADMIN} admin\n{READER} read\n")
    gallery = root / "new.db"
    with serve_as_user(["--detector", "hog", "--gallery", str(gallery), "--api-key-file",
                        str(root / "keys.txt"), "--upload-timeout", str(UPLOAD_TIMEOUT),
                        "--max-upload-mb", "1", "--max-queue", str(MAX_QUEUE)],
                       root) as (port, out, err):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield Server(client, port, root, gallery, out, err)


def recognize(server: Server, person: str, index: int) -> httpx.Response:
    return server.client.post("/v1/recognize", headers={"x-api-key": READER},
                              files={"image": ("q.jpg", jpeg(person, index))})


def enrol(server: Server, name: str, person: str, indices: range) -> httpx.Response:
    return server.client.post(f"/v1/people/{name}", headers={"x-api-key": ADMIN}, files=[
        ("images", (f"{i}.jpg", jpeg(person, i))) for i in indices])


def scored_at(face: dict, threshold: float) -> bool:
    """Whether a recognized face's name and score are those of `threshold`."""
    expected = match("someone", face["distance"], threshold)
    return (face["name"] == UNKNOWN) == (expected.name == UNKNOWN) and \
        abs(face["score"] - expected.score) < 2e-4


def multipart(image: bytes) -> tuple[bytes, str]:
    """The body and content type httpx would send for one file in the field `image`."""
    request = httpx.Request("POST", "http://x/", files={"image": ("a.jpg", image)})
    return request.read(), request.headers["content-type"]


def endless_file(count: int, sent: list[int]) -> tuple[Iterator[bytes], str]:
    """A chunked upload (no Content-Length) of one file of `count` 64 KB chunks that never
    ends properly, and its content type; `sent` gets each chunk's size as httpx takes it."""
    body, content_type = multipart(b"")

    def chunks() -> Iterator[bytes]:
        yield body[:body.index(b"\r\n\r\n") + 4]  # the part's headers: the file starts
        for _ in range(count):
            sent.append(64 * 1024)
            yield b"x" * (64 * 1024)

    return chunks(), content_type


def test_serve_help_shows_the_key_file_format(tmp_path: Path) -> None:
    shown = invoke_cli("serve", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "KEY [read|admin]" in shown.stdout


@pytest.mark.e2e
def test_a_missing_gallery_is_created_and_strangers_are_unknown(server: Server) -> None:
    assert f"created the empty gallery {server.gallery}" in server.out.read_text()
    answer = recognize(server, "s1", 1)
    assert answer.status_code == 200, answer.text
    assert [face["name"] for face in answer.json()["faces"]] == ["unknown"]
    assert server.client.get("/v1/people", headers={"x-api-key": READER}).json() == {
        "people": []}


@pytest.mark.e2e
def test_a_keyed_server_says_it_is_reachable_and_healthz_hides_the_gallery(
        server: Server) -> None:
    said = server.out.read_text()
    assert f"serving http://0.0.0.0:{server.port}" in said and "reachable from the network" \
        in said
    assert server.client.get("/healthz").json() == {"status": "ok"}
    detailed = server.client.get("/healthz", headers={"x-api-key": READER})
    assert detailed.json()["gallery"] is True and detailed.json()["capacity"] == CAPACITY
    assert str(server.root) not in detailed.text and "new.db" not in detailed.text


@pytest.mark.e2e
def test_a_chunked_upload_with_a_wrong_key_is_refused_before_it_is_read(
        server: Server) -> None:
    """No Content-Length, 256 MB on offer: 401 at once, and the connection is closed instead
    of the rest being read."""
    sent: list[int] = []
    body, content_type = endless_file(256 * 16, sent)
    answer = server.client.post("/v1/recognize", content=body, headers={
        "x-api-key": "wrong-key-wrong-key-wrong", "content-type": content_type})
    assert answer.status_code == 401 and answer.json()["detail"]
    assert sum(sent) < 64 * MB


@pytest.mark.e2e
def test_a_chunked_upload_over_the_limit_is_cut_off(server: Server) -> None:
    sent: list[int] = []
    body, content_type = endless_file(64 * 16, sent)
    answer = server.client.post("/v1/recognize", content=body, headers={
        "x-api-key": READER, "content-type": content_type})
    assert answer.status_code == 413 and answer.json() == {"detail": "upload over 1 MB"}
    assert sum(sent) < 32 * MB


def big_jpeg() -> bytes:
    """A photo whose detection takes a while (about 9 MP), in well under the 1 MB limit."""
    buffer = io.BytesIO()
    Image.fromarray(canvas("s2", 5, side=3000)).save(buffer, "JPEG", quality=50)
    assert len(buffer.getvalue()) < MB
    return buffer.getvalue()


def in_flight(server: Server) -> int:
    return server.client.get("/healthz", headers={"x-api-key": READER},
                             timeout=5).json()["in_flight"]


@pytest.mark.e2e
def test_a_full_queue_answers_503_while_writes_keep_their_share(server: Server) -> None:
    """CAPACITY slow recognitions fill the server: the next gets 503 with Retry-After, while
    an enrolment is still taken and every held one is answered once its turn comes."""
    photo = big_jpeg()

    def slow(_: int) -> httpx.Response:
        return server.client.post("/v1/recognize", headers={"x-api-key": READER},
                                  files={"image": ("big.jpg", photo)})

    with ThreadPoolExecutor(CAPACITY) as pool:
        answers = pool.map(slow, range(CAPACITY))
        deadline = time.time() + 60
        while in_flight(server) < CAPACITY and time.time() < deadline:
            time.sleep(0.02)
        refused = recognize(server, "s2", 6)
        enrolled = enrol(server, "dora", "s6", range(1, 3))
        assert [a.status_code for a in answers] == [200] * CAPACITY
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "busy" in refused.json()["detail"]
    assert enrolled.status_code == 200, enrolled.text
    assert in_flight(server) == 0


@pytest.mark.e2e
def test_slow_uploads_hold_no_place_in_the_queue(server: Server) -> None:
    """Twice CAPACITY clients dribble their uploads: real requests are answered meanwhile,
    and each dribbler gets 408 once --upload-timeout has passed."""
    body, content_type = multipart(jpeg("s2", 5))

    def dribble(_: int) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for byte in range(len(body)):
                yield body[byte:byte + 1]
                time.sleep(1)
        return server.client.post("/v1/recognize", content=chunks(), headers={
            "x-api-key": READER, "content-type": content_type})

    with ThreadPoolExecutor(2 * CAPACITY) as pool:
        slow = [pool.submit(dribble, i) for i in range(2 * CAPACITY)]
        time.sleep(1)
        for index in (6, 7, 8):
            assert recognize(server, "s2", index).status_code == 200
        timed_out = [future.result() for future in slow]
    assert [a.status_code for a in timed_out] == [408] * 2 * CAPACITY
    assert "--upload-timeout" in timed_out[0].json()["detail"]


def raw_request(port: int, head: str, body: bytes) -> None:
    """Send a request's head and part of its body, then hang up without reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)


@pytest.mark.e2e
@pytest.mark.parametrize("key", [None, READER], ids=["refused", "admitted"])
def test_a_client_that_hangs_up_mid_body_stalls_nothing(server: Server, key: str | None) -> None:
    """Content-Length 1000, 10 bytes, gone: refused (401) or read, the server lets go of it
    and keeps answering."""
    for _ in range(3):
        raw_request(server.port, "\r\n".join([
            "POST /v1/recognize HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 1000",
            "Content-Type: multipart/form-data; boundary=x", *([f"x-api-key: {key}"] if key
                                                               else [])]), b"0123456789")
    for _ in range(3):
        assert server.client.get("/healthz", timeout=10).status_code == 200
    assert recognize(server, "s1", 3).status_code == 200
    assert in_flight(server) == 0


@pytest.mark.e2e
def test_a_postscript_upload_is_not_an_image(server: Server) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"
    answer = server.client.post("/v1/recognize", headers={"x-api-key": READER},
                                files={"image": ("holiday.jpg", eps)})
    assert answer.status_code == 415 and "not an image" in answer.json()["detail"]
    assert recognize(server, "s1", 3).status_code == 200


@pytest.mark.e2e
def test_a_locked_gallery_is_503_and_holds_up_nothing_else(server: Server) -> None:
    """Another process holds the gallery's write lock: the enrolment waits a little and gets
    503; health checks and recognitions keep answering meanwhile."""
    holder = sqlite3.connect(server.gallery, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    answered = 0
    try:
        with ThreadPoolExecutor(1) as pool:
            enrolling = pool.submit(enrol, server, "carl", "s3", range(1, 3))
            while not enrolling.done():
                assert server.client.get("/healthz", timeout=5).status_code == 200
                assert recognize(server, "s1", 2).status_code == 200
                answered += 1
            locked = enrolling.result()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.status_code == 503 and locked.headers["retry-after"]
    assert "locked" in locked.json()["detail"] and "\n" not in locked.text
    assert answered >= 1
    assert enrol(server, "carl", "s3", range(1, 3)).json()["added"] == 2


@pytest.mark.e2e
def test_the_threshold_follows_the_gallery_after_start(server: Server) -> None:
    """The server's own enrolment calibrates the threshold, and its answers use it; once a
    CLI enroll stores another (here set by hand), the very next answers use that."""
    enrolled = enrol(server, "ann", "s1", range(1, 4))
    assert enrolled.status_code == 200
    assert enrolled.json()["threshold_source"] == "calibrated"

    def score_and_threshold(person: str) -> tuple[dict, float]:
        face = recognize(server, person, 8).json()["faces"][0]
        verdict = server.client.post("/v1/verify", headers={"x-api-key": READER}, files=[
            ("images", ("a.jpg", jpeg(person, 8))), ("images", ("b.jpg", jpeg(person, 9)))])
        return face, verdict.json()["threshold"]

    face, before = score_and_threshold("s1")
    assert before == enrolled.json()["threshold"] and scored_at(face, before)
    assert before < DlibEmbedder.default_threshold
    photos = write_photos(server.root / "photos", ["s4", "s5"], range(1, 4))
    by_cli = invoke_cli("enroll", "--detector", "hog", str(photos), "--gallery",
                        str(server.gallery), "--threshold", "0.45", "--quiet", cwd=server.root)
    assert by_cli.returncode == 0, by_cli.stderr
    with Gallery.open(server.gallery) as gallery:
        calibrated = gallery.threshold
    assert calibrated is not None and calibrated != before
    face, after = score_and_threshold("s4")
    assert after == calibrated and scored_at(face, calibrated) and not scored_at(face, before)


@pytest.mark.e2e
def test_an_unexpected_error_is_logged_and_answered_in_one_line(server: Server) -> None:
    """A gallery broken under the server's feet: 500 with one JSON line, and the traceback
    in the server's log under facecnn.serve."""
    with sqlite3.connect(server.gallery, isolation_level=None) as db:
        db.execute("ALTER TABLE people RENAME TO people_away")
        try:
            broken = server.client.get("/v1/people", headers={"x-api-key": READER})
        finally:
            db.execute("ALTER TABLE people_away RENAME TO people")
    assert broken.status_code == 500 and list(broken.json()) == ["detail"]
    assert "Traceback" not in broken.text
    log = server.err.read_text()
    assert "facecnn.serve" in log and "GET /v1/people" in log and "no such table" in log
