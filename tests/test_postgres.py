"""A gallery in PostgreSQL, end to end: two `facecnn serve` processes sharing one database as
two machines would (concurrent enrol, recognize and remove through both; LISTEN/NOTIFY), the
database stopped and started again under them, writers in several processes, `gallery copy`
both ways bit for bit, and bad URLs and passwords in one line. What both stores share runs on
both in test_gallery.py and test_gallery_index.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from facecnn.faces.gallery import Gallery
from helpers import HANG_GUARD, free_port, invoke_cli, running_server, write_photos
from test_serve import jpeg

pytestmark = pytest.mark.e2e

HOG = ("--detector", "hog")  # the gallery is under test, not detection: the quickest


@dataclass
class Shared:
    url: str
    root: Path
    servers: list[httpx.Client]


@pytest.fixture(scope="module")
def shared(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """s1 and s2 enrolled by the CLI into one database; two servers on it, keyless."""
    root = tmp_path_factory.mktemp("shared")
    url = postgres.new_gallery()
    photos = write_photos(root / "photos", ["s1", "s2"], range(1, 4))
    enrolled = invoke_cli("enroll", str(photos), "--gallery", url, "--quiet", *HOG, cwd=root)
    assert enrolled.returncode == 0, enrolled.stderr
    with ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(base_url=stack.enter_context(
            running_server([*HOG, "--gallery", url], root)), timeout=60)) for _ in range(2)]
        yield Shared(url, root, clients)


def recognize(server: httpx.Client, person: str, index: int) -> httpx.Response:
    return server.post("/v1/recognize", files={"image": ("q.jpg", jpeg(person, index))})


def named(server: httpx.Client, person: str, index: int) -> list[str]:
    answer = recognize(server, person, index)
    assert answer.status_code == 200, answer.text
    return [face["name"] for face in answer.json()["faces"]]


def enrol(server: httpx.Client, name: str, person: str) -> httpx.Response:
    return server.post(f"/v1/people/{name}", files=[
        ("images", (f"{i}.jpg", jpeg(person, i))) for i in range(1, 4)])


def people(server: httpx.Client) -> dict[str, int]:
    return {p["name"]: p["faces"] for p in server.get("/v1/people").json()["people"]}


def test_servers_sharing_a_database_stay_in_step(shared: Shared) -> None:
    """Enrolments through both servers, recognitions on both and a removal, all at once:
    counts are exact everywhere afterwards, and each server names whom the other enrolled."""
    a, b = shared.servers
    work = [lambda: enrol(a, "carol", "s3"), lambda: enrol(b, "dave", "s4"),
            lambda: b.delete("/v1/people/s2")]
    work += [lambda server=server: recognize(server, "s1", 8) for server in (a, b) * 3]
    with ThreadPoolExecutor(len(work)) as pool:
        answers = list(pool.map(lambda job: job(), work))
    assert [answer.status_code for answer in answers] == [200] * len(work)
    expected = {"s1": 3, "carol": 3, "dave": 3}
    assert people(a) == people(b) == expected
    listed = invoke_cli("gallery", "list", shared.url, "--json", cwd=shared.root)
    assert {p["name"]: p["faces"] for p in json.loads(listed.stdout)["people"]} == expected
    for server in (a, b):
        assert named(server, "s3", 8) == ["carol"] and named(server, "s4", 8) == ["dave"]
        assert named(server, "s2", 8) != ["s2"]


def test_a_write_reaches_an_idle_server_at_once(shared: Shared) -> None:
    """PostgreSQL NOTIFYs every write: the other server's index catches up without being
    asked anything (its /healthz shows the change count it answers from)."""
    a, b = shared.servers
    assert enrol(a, "erin", "s5").status_code == 200
    with Gallery.open(shared.url) as gallery:
        version = gallery.version()
    deadline = time.time() + HANG_GUARD  # only a guard against a hang: the notice is prompt
    while b.get("/healthz").json()["gallery_version"] != version and time.time() < deadline:
        time.sleep(0.05)
    assert b.get("/healthz").json()["gallery_version"] == version
    assert named(b, "s5", 8) == ["erin"]


def test_the_database_stopped_and_started_under_running_servers(shared: Shared,
                                                                postgres) -> None:
    """While the database is away every gallery request is a one-line 503 (health checks
    still answer); once it is back the servers carry on by themselves."""
    a, b = shared.servers
    postgres.stop()
    try:
        down = [recognize(a, "s1", 8), b.get("/v1/people"), enrol(a, "fay", "s6"),
                recognize(b, "s3", 8)]
        assert a.get("/healthz").status_code == 200
    finally:
        postgres.start()
    for answer in down:
        assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
        assert "cannot reach the gallery database" in answer.json()["detail"]
        assert "127.0.0.1" not in answer.text and "\n" not in answer.text  # in the log only
    assert named(a, "s1", 8) == ["s1"] and named(b, "s3", 8) == ["carol"]
    assert enrol(b, "fay", "s6").json()["added"] == 3
    assert named(a, "s6", 8) == ["fay"]


WRITER = """
import sys
import numpy as np
from facecnn.errors import FacecnnError
from facecnn.faces.gallery import Gallery
url, me = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(me)
with Gallery.open(url) as gallery:
    for _ in range(20):
        gallery.add(f"writer{me}", rng.normal(size=(1, 128)))
    try:
        gallery.add(["lee", "Lee", "LEE"][me], rng.normal(size=(1, 128)))
        print("added")
    except FacecnnError:
        print("refused")
"""


def test_writers_in_several_processes_lose_nothing(postgres) -> None:
    """Three processes, each its own connection as three machines would have: every face and
    every change of the counter lands, and of three look-alike names one is taken."""
    url = postgres.new_gallery()
    Gallery.create(url, "dlib", 128).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(i)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    outputs = [proc.communicate(timeout=HANG_GUARD) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 3, outputs
    assert sorted(out.strip() for out, _ in outputs) == ["added", "refused", "refused"]
    with Gallery.open(url) as gallery:
        counts = dict(gallery.people())
        assert [counts.pop(f"writer{i}") for i in range(3)] == [20] * 3
        assert list(counts.values()) == [1] and next(iter(counts)).lower() == "lee"
        assert gallery.version() == 3 * 20 + 1  # the refused writes changed nothing


def test_copy_both_ways_bit_for_bit(postgres, tmp_path: Path) -> None:
    """SQLite -> PostgreSQL -> SQLite keeps every bit: vectors (a denormal and -0.0
    included), names, sources, photo hashes, crop and threshold."""
    vectors = np.random.default_rng(0).normal(size=(5, 128)).astype(np.float32)
    vectors[0, :2] = [np.float32(1e-45), np.float32(-0.0)]
    source = tmp_path / "team.db"
    with Gallery.create(source, "dlib", 128, {"size": 150, "margin": 0.25}) as g:
        g.add("ann", vectors[:3], sources=["a.jpg", "b.jpg", "c.jpg"], hashes=["h1", "h2", None])
        g.add("Zoë", vectors[3:])
        g.set_threshold(0.4321, "manual")
        want = g.contents()
    url = postgres.new_gallery()
    there = invoke_cli("gallery", "copy", str(source), url, cwd=tmp_path)
    assert there.returncode == 0, there.stderr
    assert "copied 2 people (5 faces)" in there.stdout
    back = tmp_path / "back.db"
    assert invoke_cli("gallery", "copy", url, str(back), cwd=tmp_path).returncode == 0
    for copy in (url, str(back)):
        with Gallery.open(copy) as g:
            got = g.contents()
            assert got == want and g.threshold_source == "manual"
            assert g.crop == {"size": 150, "margin": 0.25}
            assert g.rows().vectors.tobytes() == vectors.tobytes()
    again = invoke_cli("gallery", "copy", str(source), url, cwd=tmp_path)
    assert again.returncode == 2 and "already holds 2 people" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["wrong password", "no server", "bad url", "no gallery",
                                  "serve, no server"])
def test_bad_urls_and_passwords_are_one_line(postgres, tmp_path: Path, case: str) -> None:
    secret = "not-the-password"
    nobody = f"postgresql://facecnn:{secret}@127.0.0.1:{free_port()}/faces"
    command, url, said = {
        "wrong password": ("list", postgres.url("galleries", secret),
                           "password authentication failed"),
        "no server": ("list", nobody, "cannot reach the gallery database"),
        "bad url": ("list", f"postgresql://facecnn:{secret}@[::1/faces", "invalid gallery URL"),
        "no gallery": ("list", postgres.url("postgres"), "gallery not found"),
        "serve, no server": ("serve", nobody, "cannot reach the gallery database"),
    }[case]
    args = ("serve", "--gallery", url) if command == "serve" else ("gallery", "list", url)
    result = invoke_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert secret not in result.stderr + result.stdout
    if case != "bad url":
        assert "127.0.0.1" in result.stderr  # the host
