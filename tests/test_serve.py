"""The REST API: every endpoint, keys, limits, bad uploads, names, concurrent enrol +
recognize and the OpenAPI schemas, on the app `facecnn serve` builds, answered in this process;
two worker processes and a keyless server's origin checks through a real uvicorn process on
127.0.0.1 (test_serve_robust.py starts one as a user would)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facecnn.faces.config import PipelineConfig
from facecnn.serve.settings import ServeSettings
from helpers import canvas, copy_run, invoke_cli, running_server, write_photos
from test_decode import png_claiming

pytestmark = pytest.mark.e2e

HOG = ("--detector", "hog")  # the server's work, not detection, is under test: the quickest
HOG_PIPELINE = PipelineConfig(detector="hog")
ADMIN, READER = "admin-key-0123456789abcdef", "read-key-0123456789abcdef"


def jpeg(person: str, index: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(canvas(person, index)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, digits_run: Path):
    root = tmp_path_factory.mktemp("serve")
    photos = write_photos(root / "photos", ["s1", "s2", "s3"], range(1, 4))
    assert invoke_cli("enroll", str(photos), "--gallery", str(root / "g.db"), "--quiet", *HOG,
                      cwd=root).returncode == 0
    copy_run(digits_run, root / "train" / "exp")  # a digits classifier for /v1/classify
    (root / "keys.txt").write_text(f"{ADMIN} admin\n{READER} read  # dashboards\n")
    # The app `facecnn serve --detector hog --gallery G --model RUN --api-key-file KEYS
    # --max-upload-mb 1 --max-pixels 4000000` hands uvicorn (cli.serve.serve, one process).
    settings = ServeSettings(gallery=str(root / "g.db"), model=str(root / "train" / "exp"),
                             api_key_file=str(root / "keys.txt"), max_upload_mb=1.0,
                             max_pixels=4_000_000, pipeline=HOG_PIPELINE, max_queue=32)
    with TestClient(settings.app(), raise_server_exceptions=False) as client:  # 500s, as served
        yield client


def post(client: httpx.Client, url: str, key: str | None, **files: object) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    return client.post(url, headers=headers, files=files)


def test_keys_are_required(server: httpx.Client) -> None:
    assert post(server, "/v1/recognize", None, image=("a.jpg", jpeg("s1", 5))).status_code == 401
    wrong = post(server, "/v1/recognize", "nope-nope-nope-nope", image=("a.jpg", jpeg("s1", 5)))
    assert wrong.status_code == 401 and wrong.json()["detail"]


def test_recognize_detect_verify(server: httpx.Client) -> None:
    answer = post(server, "/v1/recognize", READER, image=("a.jpg", jpeg("s2", 8)))
    assert answer.status_code == 200
    faces = answer.json()["faces"]
    assert len(faces) == 1
    assert set(faces[0]) == {"box", "confidence", "quality", "name", "score", "distance"}
    assert faces[0]["name"] == "s2"
    detected = post(server, "/v1/detect", READER, image=("a.jpg", jpeg("s3", 7))).json()
    assert len(detected["faces"]) == 1 and len(detected["faces"][0]["landmarks"]) == 5
    assert set(detected["faces"][0]) == {"box", "confidence", "landmarks", "quality"}
    headers = {"x-api-key": READER}
    same = server.post("/v1/verify", headers=headers, files=[
        ("images", ("a.jpg", jpeg("s1", 1))), ("images", ("b.jpg", jpeg("s1", 8)))]).json()
    other = server.post("/v1/verify", headers=headers, files=[
        ("images", ("a.jpg", jpeg("s1", 1))), ("images", ("b.jpg", jpeg("s3", 8)))]).json()
    assert same["same_person"] and not other["same_person"]


def test_classify(server: httpx.Client) -> None:
    digit = Image.fromarray(np.zeros((28, 28), np.uint8))
    buffer = io.BytesIO()
    digit.save(buffer, "PNG")
    answer = post(server, "/v1/classify", READER, image=("d.png", buffer.getvalue())).json()
    assert answer["label"] in [str(d) for d in range(10)] and len(answer["top_k"]) == 3


def test_docs_show_the_answers_schemas(server: httpx.Client) -> None:
    spec = server.get("/openapi.json").json()
    answer = spec["paths"]["/v1/recognize"]["post"]["responses"]
    assert answer["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Recognition")
    assert answer["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert {"NamedFace", "Verification", "Enrolment", "Health"} <= set(
        spec["components"]["schemas"])


def test_people_enrol_and_remove_need_admin(server: httpx.Client) -> None:
    files = [("images", ("x.jpg", jpeg("s4", i))) for i in (1, 2)]
    assert server.post("/v1/people/dora", headers={"x-api-key": READER},
                       files=files).status_code == 403
    added = server.post("/v1/people/dora", headers={"x-api-key": ADMIN}, files=files)
    assert added.status_code == 200 and added.json()["added"] == 2
    assert server.get("/v1/people/dora", headers={"x-api-key": READER}).json()["faces"] == 2
    assert server.delete("/v1/people/dora", headers={"x-api-key": ADMIN}).json()["removed"] == 2
    assert server.get("/v1/people/dora", headers={"x-api-key": READER}).status_code == 404
    names = [p["name"] for p in server.get("/v1/people", headers={"x-api-key": READER}).json()[
        "people"]]
    assert names == ["s1", "s2", "s3"]


def test_bad_uploads_are_refused(server: httpx.Client, tmp_path: Path) -> None:
    text = post(server, "/v1/recognize", READER, image=("photo.jpg", b"just some text"))
    assert text.status_code == 415
    big = post(server, "/v1/recognize", READER, image=("big.jpg", os.urandom(2 * 2**20)))
    assert big.status_code == 413
    bomb = io.BytesIO()
    Image.new("1", (5000, 5000)).save(bomb, "PNG")  # a few KB that would decode to 25 MP
    assert len(bomb.getvalue()) < 2**20
    assert post(server, "/v1/recognize", READER, image=("b.png", bomb.getvalue())).status_code \
        == 413
    # over twice Pillow's own limit, where Pillow raises instead of warning (was a 500)
    huge = png_claiming(tmp_path / "huge.png", 30000, 30000).read_bytes()
    answer = post(server, "/v1/recognize", READER, image=("huge.png", huge))
    assert answer.status_code == 413 and "30000x30000" in answer.json()["detail"]
    assert post(server, "/v1/recognize", READER).status_code == 422  # no image at all
    for name in ("a%5Cb", "bell%07", "unknown"):
        answer = server.post(f"/v1/people/{name}", headers={"x-api-key": ADMIN},
                             files=[("images", ("x.jpg", jpeg("s5", 1)))])
        assert answer.status_code in (404, 422), name
        assert "Traceback" not in answer.text


def test_concurrent_enrol_and_recognize(server: httpx.Client) -> None:
    def recognize(_: int) -> int:
        return post(server, "/v1/recognize", READER, image=("a.jpg", jpeg("s1", 9))).status_code

    def enrol(name: str) -> int:
        files = [("images", ("x.jpg", jpeg("s6" if name == "eve" else "s7", i))) for i in (1, 2)]
        return server.post(f"/v1/people/{name}", headers={"x-api-key": ADMIN},
                           files=files).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(recognize, range(8))) + list(pool.map(enrol, ["eve", "finn"]))
    assert codes == [200] * 10
    people = {p["name"]: p["faces"] for p in
              server.get("/v1/people", headers={"x-api-key": READER}).json()["people"]}
    assert people == {"s1": 3, "s2": 3, "s3": 3, "eve": 2, "finn": 2}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory):
    """`--workers 2` without keys: two server processes on 127.0.0.1, everyone admin."""
    root = tmp_path_factory.mktemp("keyless")
    photos = write_photos(root / "photos", ["s1", "s2"], range(1, 4))
    assert invoke_cli("enroll", str(photos), "--gallery", str(root / "g.db"), "--quiet", *HOG,
                      cwd=root).returncode == 0
    with running_server([*HOG, "--gallery", str(root / "g.db"), "--workers", "2"],
                        root) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client


def test_worker_processes_share_the_gallery(keyless: httpx.Client) -> None:
    """What one server process enrols the other names at once."""
    added = keyless.post("/v1/people/newcomer", files=[
        ("images", (f"{i}.jpg", jpeg("s9", i))) for i in range(1, 4)])
    assert added.status_code == 200 and added.json()["added"] == 3

    def name(_: int) -> tuple[list[str], int]:
        answer = post(keyless, "/v1/recognize", None, image=("q.jpg", jpeg("s9", 7)))
        return [f["name"] for f in answer.json()["faces"]], answer.status_code

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(name, range(12)))
    assert answers == [(["newcomer"], 200)] * 12


def test_a_keyless_server_refuses_other_sites(keyless: httpx.Client) -> None:
    """Any web page could post to a keyless server on this machine: only its own page (same
    origin) and clients naming its own address (not a rebound DNS name) get in."""
    own = f"http://{keyless.base_url.host}:{keyless.base_url.port}"
    photo = ("q.jpg", jpeg("s1", 7))
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                    {"host": f"evil.example:{keyless.base_url.port}"}):
        refused = keyless.post("/v1/people/mallory", headers=headers, files={"images": photo})
        assert refused.status_code == 403 and "no API keys" in refused.json()["detail"]
        assert keyless.get("/v1/people", headers=headers).status_code == 403
    same_origin = keyless.post("/v1/recognize", headers={"origin": own}, files={"image": photo})
    assert same_origin.status_code == 200
    assert keyless.get("/", headers={"origin": own}).status_code == 200
    assert "mallory" not in keyless.get("/v1/people").text


def test_serve_takes_the_detection_flags(tmp_path: Path, monkeypatch) -> None:
    """`facecnn serve` builds its detector from the same flags as every other command: a face
    smaller than --min-size is not found."""
    import uvicorn

    started: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app))
    served = invoke_cli("serve", "--gallery", str(tmp_path / "g.db"), "--detector", "hog",
                        "--landmarks", "onet", "--upsample", "0", "--min-size", "150",
                        "--device", "cpu", cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    service = started["app"].state.service
    assert service.detector.config == PipelineConfig(detector="hog", landmarks="onet",
                                                     upsample=0, min_size=150, device="cpu")
    photo = jpeg("s1", 1)  # a 92 x 112 face on a 200 px canvas
    with TestClient(started["app"]) as client:
        assert client.post("/v1/detect", files={"image": ("a.jpg", photo)}).json() == {
            "faces": []}
    with TestClient(ServeSettings(pipeline=HOG_PIPELINE).app()) as client:
        assert len(client.post("/v1/detect", files={"image": ("a.jpg", photo)}).json()[
            "faces"]) == 1
