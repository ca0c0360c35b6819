"""Clusters and a gallery together, on real AT&T faces pasted into photos: `cluster --gallery`
names the enrolled people and clusters the rest; `gallery name|merge|split` turn clusters into
people and fix mistakes, on both stores; the folder edits of cluster/edits.py; `search
--gallery` and POST /v1/search. Faces are embedded once for the module (in-process CLI)."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facecnn.cluster import edits, lock
from facecnn.data.folders import class_folders
from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.crops import DLIB_CHIP
from facecnn.faces.gallery import Gallery
from helpers import canvas, digest, invoke_cli, write_photos

FAST = ("--detector", "hog", "--workers", "1", "--quiet")
PAIRS = [5, 6]  # photos of s3 and s4 side by side


def _photo(path: Path, faces: list[tuple[str, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.hstack([canvas(p, i) for p, i in faces])).save(path, quality=95)
    return path


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """s1 and s2 enrolled in g.db; a library of s1..s4 (4 photos each) and two photos of s3
    and s4 together, clustered with the gallery."""
    root = tmp_path_factory.mktemp("cluster_gallery")
    library = write_photos(root / "photos", ["s1", "s2", "s3", "s4"], range(1, 5))
    for i in PAIRS:
        _photo(library / "pairs" / f"{i}.jpg", [("s3", i), ("s4", i)])
    enrolled = write_photos(root / "enrol", ["s1", "s2"], range(6, 9))
    result = invoke_cli("enroll", str(enrolled), "--gallery", str(root / "g.db"),
                        "--no-calibrate", "--threshold", "0.6", *FAST, cwd=root)
    assert result.returncode == 0, result.stderr
    with Gallery.open(root / "g.db") as g:
        enrolled_people = g.people()
    before = digest(library)
    result = invoke_cli("cluster", str(library), "--gallery", str(root / "g.db"), "--out",
                        str(root / "people"), "--json", *FAST, cwd=root)
    assert result.returncode == 0, result.stderr
    document = json.loads((root / "people" / "clusters.json").read_text())
    # the unnamed clusters by the person most of their faces' photos are of
    of = {}
    for entry in document:
        folders = [Path(f["file"]).parent.name for f in entry["faces"]]
        of[max(set(folders) - {"pairs"}, key=folders.count)] = entry["cluster"]
    return {"root": root, "library": library, "out": root / "people", "gallery": root / "g.db",
            "before": before, "report": json.loads(result.stdout), "document": document,
            "cluster_of": of, "enrolled": enrolled_people}


def _copy(named: dict, to: Path) -> Path:
    shutil.copytree(named["out"], to, symlinks=True)
    return to


def _one_line_error(result, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr, result.stderr


@pytest.mark.e2e
def test_cluster_names_enrolled_people_and_clusters_the_rest(named: dict) -> None:
    by_name = {e["name"]: e for e in named["document"] if e["name"]}
    assert set(by_name) == {"s1", "s2"}
    assert named["report"]["known"] == 8
    out = named["out"]
    for person, entry in by_name.items():
        assert entry["folder"] == person and entry["size"] == 4
        assert {Path(f["file"]).parent.name for f in entry["faces"]} == {person}
        assert len(list((out / person).glob("*.jpg"))) == 4 and (out / f"{person}.png").is_file()
        assert entry["cluster"].startswith("cluster_") and not (out / entry["cluster"]).exists()
    unnamed = [e for e in named["document"] if e["name"] is None and e["cohesion"] is not None]
    assert sorted(e["size"] for e in unnamed) == [6, 6]  # 4 photos + the 2 pairs each
    for person in ("s3", "s4"):
        entry = next(e for e in unnamed if e["cluster"] == named["cluster_of"][person])
        assert {Path(f["file"]).parent.name for f in entry["faces"]} == {person, "pairs"}
        assert (out / entry["folder"]).is_dir() and entry["folder"] == entry["cluster"]
    assert digest(named["library"]) == named["before"]


@pytest.mark.e2e
def test_rerun_keeps_names_and_numbers(named: dict, tmp_path: Path) -> None:
    out = _copy(named, tmp_path / "people")
    new = tmp_path / "new"
    _photo(new / "s1_9.jpg", [("s1", 9)])
    _photo(new / "s3_9.jpg", [("s3", 9)])
    result = invoke_cli("cluster", str(named["library"]), str(new), "--gallery",
                        str(named["gallery"]), "--out", str(out), "--json", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["embedded"] == 2
    after = {e["cluster"]: e for e in edits.list_clusters(out)}
    for entry in named["document"]:
        assert after[entry["cluster"]]["name"] == entry["name"]
    home = {Path(f["file"]).name: e["cluster"] for e in after.values() for f in e["faces"]}
    s1 = next(e["cluster"] for e in named["document"] if e["name"] == "s1")
    assert home["s1_9.jpg"] == s1 and home["s3_9.jpg"] == named["cluster_of"]["s3"]


@pytest.mark.e2e
def test_named_people_grow_without_the_gallery(named: dict, tmp_path: Path) -> None:
    """A rerun without --gallery puts a named person's new photos into their folder, as it
    does for unnamed clusters, and the names hold over reruns; a stranger joins nobody."""
    out = _copy(named, tmp_path / "people")
    new = tmp_path / "new"
    for i in (9, 10):
        _photo(new / f"s1_{i}.jpg", [("s1", i)])
    _photo(new / "s3_9.jpg", [("s3", 9)])
    _photo(new / "s9_1.jpg", [("s9", 1)])
    for rerun in range(2):
        result = invoke_cli("cluster", str(named["library"]), str(new), "--out", str(out),
                            "--json", *FAST, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["embedded"] == (4 if rerun == 0 else 0)
        after = {e["cluster"]: e for e in edits.list_clusters(out)}
        for entry in named["document"]:
            assert after[entry["cluster"]]["name"] == entry["name"]
        home = {Path(f["file"]).name: e for e in after.values() for f in e["faces"]}
        assert home["s1_9.jpg"]["name"] == home["s1_10.jpg"]["name"] == "s1"
        assert home["s3_9.jpg"]["cluster"] == named["cluster_of"]["s3"]
        assert home["s9_1.jpg"]["name"] is None
    assert len(list((out / "s1").glob("*.jpg"))) == home["s1_9.jpg"]["size"] == 4 + 2


@pytest.mark.e2e
def test_name_merge_split_round_trip(named: dict, new_location: Callable[[], str],
                                     tmp_path: Path) -> None:
    out = _copy(named, tmp_path / "people")
    location = new_location()  # made by the first name, from the cache's embedder
    s3, s4 = named["cluster_of"]["s3"], named["cluster_of"]["s4"]

    def name(folder: Path, person: str) -> int:
        result = invoke_cli("gallery", "name", location, str(folder), "--as", person, "--json",
                            cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["added"]

    crops = {p.name: p.stat().st_ino for p in (out / s3).glob("*.jpg")}
    assert name(out / s3, "dora") == 6
    assert (out / "dora").is_dir() and not (out / s3).exists()  # the folder is the person's
    # the same crop files, moved (not cut from the photos again)
    assert {p.name: p.stat().st_ino for p in (out / "dora").glob("*.jpg")} == crops
    assert name(out / "dora", "dora") == 0  # naming again adds nothing
    # the pairs' s4 faces are other faces of the same photos: each its own hash
    assert name(out / s4, "dora_2") == 6
    entries = {e["cluster"]: e for e in edits.list_clusters(out)}
    assert (entries[s3]["name"], entries[s4]["name"]) == ("dora", "dora_2")
    with Gallery.open(location) as g:
        assert g.people() == [("dora", 6), ("dora_2", 6)]
        assert (g.embedder, g.crop, g.threshold_source) == ("dlib", DLIB_CHIP, "calibrated")
        # the named clusters' threshold, as `enroll` would fit it: under dlib's 0.6
        before, threshold = _faces_of(g), g.threshold
        assert threshold < 0.6
    merged = invoke_cli("gallery", "merge", location, "dora", "dora_2", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    with Gallery.open(location) as g:
        assert g.people() == [("dora", 12)]
        assert g.threshold_source == "calibrated" and g.threshold != threshold
    split = invoke_cli("gallery", "split", location, "dora", "--clusters", "2", "--json",
                       cwd=tmp_path)
    assert split.returncode == 0, split.stderr
    assert {p: v["faces"] for p, v in json.loads(split.stdout).items()} == {"dora": 6,
                                                                            "dora_2": 6}
    with Gallery.open(location) as g:
        assert _faces_of(g) == before  # the same vectors under the same names
        assert g.threshold == threshold  # and the threshold follows them back


def _cli_json(location: str, cwd: Path, *args: str) -> dict:
    result = invoke_cli("gallery", *args[:1], location, *args[1:], "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _crops(out: Path, folder: str) -> set[str]:
    return {p.name for p in (out / folder).glob("*.jpg")}


@pytest.mark.e2e
def test_one_face_forgotten_and_moved_with_the_folder(named: dict,
                                                      new_location: Callable[[], str],
                                                      tmp_path: Path) -> None:
    """s3's and s4's clusters merged by mistake and named s3: `gallery faces` lists the 12,
    `gallery move` takes s4's six to a new s4 (gallery and folder), `gallery forget` takes one
    more from s3, and a rerun with the gallery keeps every decision."""
    out = _copy(named, tmp_path / "people")
    location = new_location()
    s3, s4 = named["cluster_of"]["s3"], named["cluster_of"]["s4"]
    edits.merge_clusters(out, [s3, s4])
    assert _cli_json(location, tmp_path, "name", str(out / s3), "--as", "s3")["added"] == 12
    listed = _cli_json(location, tmp_path, "faces", "s3", "--thumbnails",
                       str(tmp_path / "thumbs"))
    assert len(listed["faces"]) == 12
    for face in listed["faces"]:
        x1, y1, x2, y2 = face["box"]
        with Image.open(face["source"]) as photo:
            assert 0 <= x1 < x2 <= photo.width and 0 <= y1 < y2 <= photo.height
        with Image.open(face["thumbnail"]) as thumb:
            assert thumb.size == (96, 96) and thumb.format == "JPEG"

    def is_s4(face: dict) -> bool:  # in its own photos, or the right half of a pair
        folder = Path(face["source"]).parent.name
        return folder == "s4" or (folder == "pairs" and face["box"][0] >= 200)

    wrong = [str(f["id"]) for f in listed["faces"] if is_s4(f)]
    assert len(wrong) == 6
    crops_before = _crops(out, "s3")
    moved = _cli_json(location, tmp_path, "move", "s3", *wrong, "--to", "s4", "--clusters",
                      str(out))
    assert sorted(str(f["id"]) for f in moved["moved"]) == sorted(wrong)
    with Gallery.open(location) as g:
        assert g.people() == [("s3", 6), ("s4", 6)]
    assert len(_crops(out, "s3")) == 6 and len(_crops(out, "s4")) == 6
    assert _crops(out, "s3") | _crops(out, "s4") == crops_before  # moved, not cut again
    entries = {e["name"]: e for e in edits.list_clusters(out) if e["name"]}
    assert {Path(f["file"]).parent.name for f in entries["s4"]["faces"]} == {"s4", "pairs"}

    one = next(f for f in _cli_json(location, tmp_path, "faces", "s3")["faces"]
               if Path(f["source"]).parent.name == "s3")
    forgotten = _cli_json(location, tmp_path, "forget", "s3", str(one["id"]), "--clusters",
                          str(out))
    assert [f["source"] for f in forgotten["forgotten"]] == [one["source"]]
    entries = {e["name"]: e for e in edits.list_clusters(out) if e["name"]}
    assert one["source"] not in [f["file"] for f in entries["s3"]["faces"]]
    assert len(_crops(out, "s3")) == 5

    rerun = invoke_cli("cluster", str(named["library"]), "--gallery", location, "--out",
                       str(out), *FAST, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    entries = {e["name"]: e for e in edits.list_clusters(out) if e["name"]}
    assert one["source"] not in [f["file"] for f in entries["s3"]["faces"]]  # kept out
    assert len(entries["s3"]["faces"]) == 5 and len(entries["s4"]["faces"]) == 6

    for args, message in [(("forget", "s3", str(one["id"])), "'s3' has no face"),
                          (("move", "s3", wrong[0], "--to", "s4"), "'s3' has no face"),
                          (("faces", "nobody"), "no such person")]:
        _one_line_error(invoke_cli("gallery", args[0], location, *args[1:], cwd=tmp_path),
                        message)


def _faces_of(g: Gallery) -> dict[str, set[bytes]]:
    vectors, owners, names = g.vectors()
    return {n: {v.tobytes() for v in vectors[owners == i]} for i, n in enumerate(names)}


def test_split_names_and_refusals(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 128))
    faces = np.concatenate([c + 0.01 * rng.normal(size=(3, 128)) for c in centres])
    with Gallery.create(tmp_path / "g.db", "dlib", 128) as g:
        g.add("ann", faces[:5])
        g.add("bob", faces[5:])
        with pytest.raises(FacecnnError, match="1 names given for the 2 new"):
            g.split("ann", 3, ["x"])
        with pytest.raises(FacecnnError, match="already exists"):
            g.split("ann", 2, ["bob"])
        with pytest.raises(FacecnnError, match="too few"):
            g.split("bob", 2)
        assert set(g.split("ann", 2, ["cy"])) == {"ann", "cy"}
        assert dict(g.people()) == {"ann": 3, "bob": 1, "cy": 2}
        with pytest.raises(FacecnnError, match="into itself"):
            g.merge("ann", ["ann"])


@pytest.mark.e2e
def test_folder_edits(named: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _copy(named, tmp_path / "people")
    s1 = next(e["cluster"] for e in named["document"] if e["name"] == "s1")
    s3, s4 = named["cluster_of"]["s3"], named["cluster_of"]["s4"]
    listed = edits.list_clusters(out)
    assert {"cluster", "size", "cohesion", "name", "dismissed", "sheet"} <= set(listed[0])
    assert all((out / e["sheet"]).is_file() for e in listed)
    assert edits.merge_clusters(out, [s3, s4]) == s3
    entries = {e["cluster"]: e for e in edits.list_clusters(out)}
    assert s4 not in entries and entries[s3]["size"] == 12 and not (out / s4).exists()
    assert len(list((out / s3).glob("*.jpg"))) == 12
    edits.dismiss_cluster(out, s3)
    assert {e["cluster"]: e for e in edits.list_clusters(out)}[s3]["dismissed"]
    people = {p.name for p in class_folders(out)}  # what enroll and train would take
    assert s3 not in people and "unsorted" not in people and "s1" in people
    for call, text in ((lambda: edits.name_cluster(out, "cluster_999", "g.db", "x"),
                        "no cluster 'cluster_999'"),
                       (lambda: edits.merge_clusters(out, [s1, s3]), "is named s1"),
                       (lambda: edits.merge_clusters(out, [s3, "unsorted"]), "no cluster"),
                       (lambda: edits.dismiss_cluster(out, "s1"), "named cluster cannot"),
                       (lambda: edits.list_clusters(named["library"]), "not a `facecnn cluster`"),
                       (lambda: edits.name_cluster(out, s1, "g.db", "bad/name"), "slashes")):
        with pytest.raises(FacecnnError, match=text):
            call()
    # a new photo of the dismissed person joins the dismissed cluster: not offered again
    new = _photo(tmp_path / "new" / "s3_10.jpg", [("s3", 10)])
    result = invoke_cli("cluster", str(named["library"]), str(new.parent), "--out", str(out),
                        *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = {e["cluster"]: e for e in edits.list_clusters(out)}
    assert entries[s3]["dismissed"] and entries[s3]["size"] == 13
    assert not [e for e in entries.values() if e["name"] is None and not e["dismissed"]
                and e["cohesion"] is not None]
    monkeypatch.setattr(lock, "WAIT_S", 0.1)
    with lock.locked(out), pytest.raises(FacecnnError, match="being written by another"):
        edits.dismiss_cluster(out, s3)


def _query(path: Path) -> Path:
    Image.fromarray(canvas("s1", 10)).save(path, quality=95)
    return path


@pytest.mark.e2e
def test_search_gallery_and_post_search(named: dict, tmp_path: Path) -> None:
    from facecnn.serve.app import create_app

    face = _query(tmp_path / "face.jpg")
    result = invoke_cli("search", str(face), "--gallery", str(named["gallery"]), "--top", "3",
                        "--json", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["person"] for h in hits] == ["s1"] * 3  # the three enrolled photos of s1
    assert {Path(h["source"]).name for h in hits} == {"6.jpg", "7.jpg", "8.jpg"}
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    served = shutil.copy(named["gallery"], tmp_path / "served.db")
    with TestClient(create_app(gallery=served, pipeline=PipelineConfig(detector="hog"))) as client:
        def search(top: int) -> list[dict]:
            answer = client.post("/v1/search", params={"top": top},
                                 files={"image": ("face.jpg", face.read_bytes())})
            assert answer.status_code == 200, answer.text
            return answer.json()

        assert search(3) == hits  # what the CLI says
        with Gallery.open(served) as g:  # a face enrolled while the server runs is found
            rows = g.rows()
            sources = g.faces(rows.ids.tolist())
            nearest = next(v for i, v in zip(rows.ids, rows.vectors)
                           if sources[int(i)][1] == hits[0]["source"])
            g.add("s2", nearest[None], ["again.jpg"])
        assert search(2) == [hits[0], {**hits[0], "person": "s2", "source": "again.jpg"}]
        blank = io.BytesIO()
        Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(blank, "PNG")
        none = client.post("/v1/search", files={"image": ("wall.png", blank.getvalue())})
        assert none.status_code == 422 and "no face found" in none.json()["detail"]


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["unknown cluster", "not a cluster folder", "unknown person",
                                  "split unknown", "embedder mismatch", "name mismatch",
                                  "in and gallery", "neither"])
def test_bad_input_is_one_line(named: dict, tmp_path: Path, case: str) -> None:
    gallery, out = str(named["gallery"]), named["out"]
    if case in ("embedder mismatch", "name mismatch"):
        Gallery.create(tmp_path / "other.db", "another_embedder", 128).close()
    face = str(_query(tmp_path / "face.jpg"))
    args, text = {
        "unknown cluster": (("gallery", "name", gallery, str(out / "cluster_999"), "--as", "x"),
                            "no cluster 'cluster_999'"),
        "not a cluster folder": (("gallery", "name", gallery, str(named["library"] / "s1"),
                                  "--as", "x"), "not a `facecnn cluster` output"),
        "unknown person": (("gallery", "merge", gallery, "s1", "nobody"), "no such person"),
        "split unknown": (("gallery", "split", gallery, "nobody"), "no such person"),
        "embedder mismatch": (("cluster", str(named["library"]), "--gallery",
                               str(tmp_path / "other.db"), "--out", str(tmp_path / "people"),
                               *FAST), "made with another_embedder"),
        "name mismatch": (("gallery", "name", str(tmp_path / "other.db"),
                           str(out / named["cluster_of"]["s3"]), "--as", "x"),
                          "refusing to mix"),
        "in and gallery": (("search", face, "--in", str(named["library"]), "--gallery", gallery),
                           "exactly one of --in"),
        "neither": (("search", face), "exactly one of --in"),
    }[case]
    before = (out / "clusters.json").read_text()
    _one_line_error(invoke_cli(*args, cwd=tmp_path), text)
    assert (out / "clusters.json").read_text() == before
    assert not (tmp_path / "people").exists()
    with Gallery.open(gallery) as g:
        assert g.people() == named["enrolled"]
