"""The page's Unnamed tab and the cluster routes behind it, on a folder `facecnn cluster` made
of real AT&T faces (clustered once for the module): in headless Chromium against a real
`facecnn serve --clusters` (sheets shown, a cluster named, then listed among the people and
recognized, two merged, one dismissed; a person's faces shown as a grid, some moved to
another person and one removed, the folder following), and the routes' refusals on the app
itself (unknown clusters or faces, paths out of the folder, no --clusters, read-only keys,
bad bodies, conflicts)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

import test_web
from facecnn.cluster.edits import list_clusters
from facecnn.cluster.groups import UNSORTED_NAME
from facecnn.faces.config import PipelineConfig
from facecnn.serve.settings import ServeSettings
from helpers import invoke_cli, running_server, write_photos
from test_web import KEY, by_id, open_page, table_rows, wait_for

pytestmark = pytest.mark.e2e

PHOTOS = {"s1": 5, "s2": 4, "s3": 3, "s4": 3}  # AT&T people and photos of each: 4 clusters
HOG = ("--detector", "hog")  # dlib's HOG: the quickest detector, and no network to run
READER = "web-read-key-0123456789"
browser = test_web.browser  # the same headless Chromium fixture, one for this module


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """people/: `facecnn cluster` of the AT&T photos, each person's in photos/<person>/."""
    root = tmp_path_factory.mktemp("web_clusters")
    for person, count in PHOTOS.items():
        write_photos(root / "photos", [person], range(1, count + 1))
    result = invoke_cli("cluster", str(root / "photos"), "--out", str(root / "people"), *HOG,
                        "--workers", "1", "--quiet", cwd=root)
    assert result.returncode == 0, result.stderr
    (root / "keys.txt").write_text(f"{KEY} admin\n{READER} read\n")
    return root / "people"


def _copy(clustered: Path, to: Path) -> Path:
    """A folder of its own for each server (the edits change it)."""
    return Path(shutil.copytree(clustered, to / "people", symlinks=True))


def _faces(out: Path) -> dict[str, list[str]]:
    """cluster -> the photos of its faces, from clusters.json."""
    return {c["cluster"]: [f["file"] for f in c["faces"]]
            for c in json.loads((out / "clusters.json").read_text())}


@pytest.fixture(scope="module")
def served(clustered: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real `facecnn serve --gallery g.db --clusters people/` with keys; the gallery is made
    empty by the server."""
    root = tmp_path_factory.mktemp("web_clusters_served")
    out = _copy(clustered, root)
    with running_server(["--gallery", str(root / "g.db"), "--clusters", str(out), "--api-key-file",
                         str(clustered.parent / "keys.txt"), *HOG], root) as url:
        yield {"url": url, "out": out, "faces": _faces(out)}


def _api(url: str, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(method, url + path, headers={"x-api-key": KEY}, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _cards(browser: webdriver.Chrome) -> list[dict]:
    """The cards shown, read in one script (the page redraws them after each action)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#clusters li'), li => ({"
        "cluster: li.dataset.cluster, title: li.querySelector('h2').textContent,"
        "src: li.querySelector('img').src, width: li.querySelector('img').naturalWidth}))")


def _open_tab(browser: webdriver.Chrome, url: str) -> list[dict]:
    open_page(browser, url)
    browser.find_element(By.CSS_SELECTOR, '.tab[data-tab="unnamed"]').click()
    return wait_for(browser, lambda b: (cards := _cards(b)) and all(c["width"] for c in cards)
                    and cards)


def _message(browser: webdriver.Chrome) -> Any:
    return by_id(browser, "unnamed-message")


@pytest.mark.web
def test_clusters_are_shown_and_named(browser: webdriver.Chrome, served: dict) -> None:
    listed = _api(served["url"], "GET", "v1/clusters")["clusters"]
    assert len(listed) == len(PHOTOS) and UNSORTED_NAME not in [c["cluster"] for c in listed]
    assert [c["size"] for c in listed] == sorted((c["size"] for c in listed), reverse=True)
    cards = _open_tab(browser, served["url"])
    assert [c["cluster"] for c in cards] == [c["cluster"] for c in listed]
    for card, cluster in zip(cards, listed):
        assert card["title"].startswith(f"{cluster['cluster']} {cluster['size']} faces")
        assert card["src"].startswith("blob:")  # fetched with the key
        with Image.open(served["out"] / f"{cluster['cluster']}.png") as sheet:
            assert card["width"] == sheet.width

    first, size = listed[0]["cluster"], listed[0]["size"]
    field = browser.find_element(By.CSS_SELECTOR, f'input[aria-label="name for {first}"]')
    field.send_keys("unknown")  # what strangers are called: refused, shown as an error
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Name {first}"]').click()
    wait_for(browser, lambda _: "422" in _message(browser).text)
    assert "error" in _message(browser).get_attribute("class")
    assert first in [c["cluster"] for c in _cards(browser)]

    field = browser.find_element(By.CSS_SELECTOR, f'input[aria-label="name for {first}"]')
    field.clear()
    field.send_keys("Dora Maar")
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Name {first}"]').click()
    wait_for(browser, lambda b: first not in [c["cluster"] for c in _cards(b)])
    assert _message(browser).text == f"{first} is Dora Maar: {size} faces enrolled"

    browser.find_element(By.CSS_SELECTOR, '.tab[data-tab="people"]').click()
    wait_for(browser, lambda b: ["Dora Maar", str(size), "FacesRemove"]
             in table_rows(b, "gallery"))
    people = _api(served["url"], "GET", "v1/people")["people"]
    assert {"name": "Dora Maar", "faces": size} in people
    photo = Path(served["faces"][first][0])
    faces = _api(served["url"], "POST", "v1/recognize",
                 files={"image": (photo.name, photo.read_bytes())})["faces"]
    assert [f["name"] for f in faces] == ["Dora Maar"]


@pytest.mark.web
def test_clusters_are_merged_and_dismissed(browser: webdriver.Chrome, served: dict) -> None:
    listed = _api(served["url"], "GET", "v1/clusters")["clusters"]
    assert len(listed) >= 3
    (one, size_one), (two, size_two) = ((c["cluster"], c["size"]) for c in listed[-2:])
    _open_tab(browser, served["url"])
    merge = by_id(browser, "merge")
    for cluster in (one, two):
        assert not merge.is_enabled()  # merging takes two or more
        browser.find_element(By.CSS_SELECTOR,
                             f'li[data-cluster="{cluster}"] input[type=checkbox]').click()
    assert merge.is_enabled() and by_id(browser, "selected").text == "2 selected"
    merge.click()
    said = wait_for(browser, lambda _: (text := _message(browser).text).startswith("merged ")
                    and text)
    assert said in (f"merged {two} into {one}", f"merged {one} into {two}")
    kept = said.rsplit(" ", 1)[1]
    cards = wait_for(browser, lambda b: (cards := _cards(b)) and len(cards) == len(listed) - 1
                     and all(c["width"] for c in cards) and cards)
    assert next(c for c in cards if c["cluster"] == kept)["title"].startswith(
        f"{kept} {size_one + size_two} faces")

    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Dismiss {kept}"]').click()
    wait_for(browser, lambda b: kept not in [c["cluster"] for c in _cards(b)])
    assert _message(browser).text == f"dismissed {kept}"
    left = {c["cluster"] for c in _api(served["url"], "GET", "v1/clusters")["clusters"]}
    assert left == {c["cluster"] for c in listed} - {one, two}
    assert next(e for e in list_clusters(served["out"]) if e["cluster"] == kept)["dismissed"]


def _tiles(browser: webdriver.Chrome) -> list[dict]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#person-faces li'), li => ({"
        "face: li.dataset.face, title: li.querySelector('label').title,"
        "width: li.querySelector('img') ? li.querySelector('img').naturalWidth : 0}))")


def _person_of(file: str) -> str:
    return Path(file).parent.name


@pytest.mark.web
def test_one_face_is_moved_and_removed(browser: webdriver.Chrome, clustered: Path,
                                       tmp_path: Path) -> None:
    """s3's and s4's clusters merged by mistake and named Dora: the People tab shows her six
    faces; s4's three are moved to a new Eve, then one more is removed; the gallery and the
    cluster folder follow each edit."""
    out = _copy(clustered, tmp_path)
    home = {_person_of(e["faces"][0]["file"]): e["cluster"] for e in list_clusters(out)
            if e["cluster"] != UNSORTED_NAME}
    with running_server(["--gallery", str(tmp_path / "g.db"), "--clusters", str(out),
                         "--api-key-file", str(clustered.parent / "keys.txt"), *HOG],
                        tmp_path) as url:
        kept = _api(url, "POST", "v1/clusters/merge",
                    json={"clusters": [home["s3"], home["s4"]]})["cluster"]
        assert _api(url, "POST", f"v1/clusters/{kept}/name", json={"name": "Dora"})["added"] == 6
        open_page(browser, url)
        browser.find_element(By.CSS_SELECTOR, '.tab[data-tab="people"]').click()
        wait_for(browser, lambda b: ["Dora", "6", "FacesRemove"] in table_rows(b, "gallery"))
        browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Faces of Dora"]').click()
        tiles = wait_for(browser, lambda b: (t := _tiles(b)) and len(t) == 6
                         and all(x["width"] == 96 for x in t) and t)
        assert by_id(browser, "forget").get_attribute("disabled")  # nothing selected yet
        for tile in tiles:
            if "/s4/" in tile["title"]:
                browser.find_element(By.CSS_SELECTOR, f'input[aria-label="face {tile["face"]}"]'
                                     ).click()
        assert by_id(browser, "faces-selected").text == "3 selected"
        by_id(browser, "move-to").send_keys("Eve")
        by_id(browser, "move-button").click()
        message = by_id(browser, "person-message")
        wait_for(browser, lambda _: message.text == "moved 3 faces from Dora to Eve")
        wait_for(browser, lambda b: [r[:2] for r in table_rows(b, "gallery")]
                 == [["Dora", "3"], ["Eve", "3"]])
        tiles = wait_for(browser, lambda b: (t := _tiles(b)) and len(t) == 3 and t)
        assert all("/s3/" in t["title"] for t in tiles)
        named = {e["name"]: e for e in list_clusters(out) if e["name"]}
        assert {_person_of(f["file"]) for f in named["Eve"]["faces"]} == {"s4"}
        assert {_person_of(f["file"]) for f in named["Dora"]["faces"]} == {"s3"}
        assert len(list((out / "Eve").glob("*.jpg"))) == 3
        photo = Path(named["Eve"]["faces"][0]["file"])  # recognition knows at once
        answer = _api(url, "POST", "v1/recognize", files={"image": (photo.name,
                                                                    photo.read_bytes())})
        assert [f["name"] for f in answer["faces"]] == ["Eve"]

        gone = tiles[0]
        browser.find_element(By.CSS_SELECTOR, f'input[aria-label="face {gone["face"]}"]').click()
        by_id(browser, "forget").click()
        alert = wait_for(browser, expected_conditions.alert_is_present())
        assert "1 face from Dora" in alert.text
        alert.accept()
        wait_for(browser, lambda _: message.text == "removed 1 face from Dora")
        assert [t["face"] for t in _tiles(browser)] == [t["face"] for t in tiles[1:]]
        faces = _api(url, "GET", "v1/people/Dora/faces")["faces"]
        assert [str(f["id"]) for f in faces] == [t["face"] for t in tiles[1:]]
        named = {e["name"]: e for e in list_clusters(out) if e["name"]}
        assert len(named["Dora"]["faces"]) == 2 and len(list((out / "Dora").glob("*.jpg"))) == 2


# ---- the routes' refusals, on the app `facecnn serve` builds, answered in this process ----
@pytest.fixture(scope="module")
def client(clustered: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("clusters_api")
    settings = ServeSettings(gallery=str(root / "g.db"), pipeline=PipelineConfig(detector="hog"),
                             api_key_file=str(clustered.parent / "keys.txt"),
                             clusters=str(_copy(clustered, root)))
    settings.new_gallery()
    with TestClient(settings.app(), raise_server_exceptions=False) as test_client:
        test_client.headers["x-api-key"] = KEY
        yield test_client


def _refused(answer: httpx.Response, status: int, says: str) -> None:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert says in detail and "\n" not in detail


def _open(client: TestClient) -> list[str]:
    return [c["cluster"] for c in client.get("/v1/clusters").json()["clusters"]]


def test_unknown_clusters_are_404(client: TestClient) -> None:
    known = _open(client)[0]
    for answer in (client.get("/v1/clusters/cluster_999/sheet"),
                   client.post("/v1/clusters/cluster_999/name", json={"name": "Ada"}),
                   client.post("/v1/clusters/cluster_999/dismiss"),
                   client.post("/v1/clusters/merge", json={"clusters": [known, "cluster_999"]})):
        _refused(answer, 404, "no such cluster: cluster_999")
    assert known in _open(client)  # a merge refused changes nothing


@pytest.mark.parametrize("name", ["..", "%2E%2E", "cache.npz", "clusters.json", "unsorted",
                                  "cluster_001.png", "..%2Fcache.npz", "%2Fetc%2Fpasswd"])
def test_only_listed_sheets_are_served(client: TestClient, name: str) -> None:
    answer = client.get(f"/v1/clusters/{name}/sheet")
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/json"
    sheet = client.get(f"/v1/clusters/{_open(client)[0]}/sheet")
    assert sheet.status_code == 200 and sheet.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sheet_is_read_only_from_the_folder(client: TestClient) -> None:
    """Not even a clusters.json edited by hand points the server at another file."""
    out = client.app.state.service.clusters
    document = (out / "clusters.json").read_text()
    entries = json.loads(document)
    entries[0]["sheet"] = "../g.db"
    assert (out / entries[0]["sheet"]).is_file()  # the gallery beside the folder
    (out / "clusters.json").write_text(json.dumps(entries))
    try:
        _refused(client.get(f"/v1/clusters/{entries[0]['cluster']}/sheet"), 404,
                 "has no contact sheet")
    finally:
        (out / "clusters.json").write_text(document)


def test_a_read_key_reads_but_does_not_edit(client: TestClient) -> None:
    reader = {"x-api-key": READER}
    cluster = client.get("/v1/clusters", headers=reader).json()["clusters"][0]
    assert client.get("/" + cluster["sheet"], headers=reader).status_code == 200
    for answer in (client.post(f"/v1/clusters/{cluster['cluster']}/name", json={"name": "Ada"},
                               headers=reader),
                   client.post(f"/v1/clusters/{cluster['cluster']}/dismiss", headers=reader),
                   client.post("/v1/clusters/merge", headers=reader,
                               json={"clusters": _open(client)[:2]})):
        _refused(answer, 403, "admin key")
    _refused(client.get("/v1/clusters", headers={"x-api-key": ""}), 401, "x-api-key")
    assert _open(client)[0] == cluster["cluster"]


def test_bad_bodies_are_422(client: TestClient) -> None:
    first, second = _open(client)[:2]
    _refused(client.post(f"/v1/clusters/{first}/name", json={}), 422, "name")
    _refused(client.post(f"/v1/clusters/{first}/name", content=b"Ada"), 422, "missing")
    _refused(client.post(f"/v1/clusters/{first}/name", json={"name": "a/b"}), 422,
             "invalid person name")
    _refused(client.post("/v1/clusters/merge", json={"clusters": [first]}), 422, "clusters")
    _refused(client.post("/v1/clusters/merge", json={"clusters": [first, first]}), 422, "once")
    assert _open(client)[:2] == [first, second]


def test_named_and_dismissed_clusters_conflict(client: TestClient) -> None:
    listed = client.get("/v1/clusters").json()["clusters"]
    named, size = listed[0]["cluster"], listed[0]["size"]
    other, dismissed = listed[1]["cluster"], listed[-1]["cluster"]
    answer = client.post(f"/v1/clusters/{named}/name", json={"name": "Ada"}).json()
    assert {k: answer.pop(k) for k in ("cluster", "name", "added")} == {
        "cluster": named, "name": "Ada", "added": size}
    assert set(answer) == {"threshold", "threshold_source"}
    assert client.post(f"/v1/clusters/{dismissed}/dismiss").json() == {
        "cluster": dismissed, "dismissed": True}
    assert set(_open(client)) == {c["cluster"] for c in listed} - {named, dismissed}
    for cluster, why in ((named, "is named Ada"), (dismissed, "was dismissed")):
        _refused(client.post(f"/v1/clusters/{cluster}/name", json={"name": "Bo"}), 409, why)
        _refused(client.post(f"/v1/clusters/{cluster}/dismiss"), 409, why)
        _refused(client.post("/v1/clusters/merge", json={"clusters": [other, cluster]}), 409,
                 why)
        assert client.get(f"/v1/clusters/{cluster}/sheet").status_code == 200  # still there
    assert other in _open(client)


def test_without_a_cluster_folder(clustered: Path, tmp_path: Path) -> None:
    settings = ServeSettings(pipeline=PipelineConfig(detector="hog"),
                             api_key_file=str(clustered.parent / "keys.txt"))
    with TestClient(settings.app(), headers={"x-api-key": KEY}) as bare:
        for answer in (bare.get("/v1/clusters"), bare.get("/v1/clusters/cluster_001/sheet"),
                       bare.post("/v1/clusters/cluster_001/dismiss")):
            _refused(answer, 404, "start the server with --clusters DIR")
    result = invoke_cli("serve", "--clusters", str(tmp_path / "nowhere"), *HOG, cwd=tmp_path)
    assert result.returncode == 2 and "not a `facecnn cluster` output folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_face_routes(client: TestClient) -> None:
    """A person's faces listed with thumbnails; unknown people or faces 404, read keys 403,
    bad bodies 422, and nothing changed by a refusal."""
    photos = sorted(Path(f["file"]) for e in list_clusters(client.app.state.service.clusters)
                    for f in e["faces"])[:3]
    enrolled = client.post("/v1/people/Ana", files=[("images", (p.name, p.read_bytes()))
                                                     for p in photos])
    assert enrolled.status_code == 200 and enrolled.json()["added"] == 3, enrolled.text
    faces = client.get("/v1/people/Ana/faces").json()["faces"]
    assert [f["source"] for f in faces] == [f"upload:{p.name}" for p in photos]
    for face in faces:
        shown = client.get("/" + face["thumbnail"])
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(shown.content)) as thumb:
            assert thumb.size == (96, 96)
        assert len(face["box"]) == 4 and face["person"] == "Ana"
    first = faces[0]["id"]
    reader = {"x-api-key": READER}
    assert client.get("/v1/people/Ana/faces", headers=reader).status_code == 200
    for answer in (client.post("/v1/people/Ana/faces/forget", json={"faces": [first]},
                               headers=reader),
                   client.post("/v1/people/Ana/faces/move", json={"faces": [first], "to": "Bo"},
                               headers=reader)):
        _refused(answer, 403, "admin key")
    for answer, status, says in (
            (client.get("/v1/people/Nobody/faces"), 404, "no such person"),
            (client.get("/v1/people/Ana/faces/999999/thumbnail"), 404, "has no face"),
            (client.get("/v1/people/Ana/faces/0/thumbnail"), 422, "face"),
            (client.post("/v1/people/Ana/faces/forget", json={"faces": [999999]}), 404,
             "has no face"),
            (client.post("/v1/people/Ana/faces/forget", json={"faces": []}), 422, "faces"),
            (client.post("/v1/people/Ana/faces/forget", json={"faces": [2**70]}), 422, "faces"),
            (client.post("/v1/people/Ana/faces/move", json={"faces": [first]}), 422, "to"),
            (client.post("/v1/people/Ana/faces/move", json={"faces": [first], "to": "a/b"}),
             422, "invalid person name"),
            (client.post("/v1/people/Ana/faces/move", json={"faces": [first], "to": "Ana"}),
             422, "already")):
        _refused(answer, status, says)
    assert client.get("/v1/people/Ana/faces").json()["faces"] == faces  # nothing changed
    moved = client.post("/v1/people/Ana/faces/move", json={"faces": [first], "to": "Bo"})
    assert moved.status_code == 200 and [f["person"] for f in moved.json()["moved"]] == ["Bo"]
    assert moved.json()["moved"][0]["thumbnail"] == f"v1/people/Bo/faces/{first}/thumbnail"
    assert client.get("/" + moved.json()["moved"][0]["thumbnail"]).status_code == 200
    forgot = client.post("/v1/people/Ana/faces/forget", json={"faces": [f["id"] for f in
                                                                        faces[1:]]})
    assert forgot.status_code == 200 and len(forgot.json()["forgotten"]) == 2
    names = [p["name"] for p in client.get("/v1/people").json()["people"]]
    assert "Ana" not in names and "Bo" in names  # no face left, no person
