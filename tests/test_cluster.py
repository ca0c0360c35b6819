"""`facecnn cluster` and `facecnn search` on real faces: five Johns' chips, AT&T faces pasted
into photos, and photos of several AT&T people side by side, clustered once for the module
(in-process CLI); each algorithm is scored on the same cached vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.cluster import ALGORITHMS, DEFAULT_ALGORITHM, Settings, cluster_vectors, score
from facecnn.cluster.cache import LibraryCache
from helpers import canvas, digest, invoke_cli, run_cli

pytestmark = pytest.mark.e2e

JOHNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "johns"
ATT = ["s1", "s2", "s3", "s4"]
GROUPS = [[("s1", 6), ("s2", 10), ("s3", 6)], [("s4", 7), ("s1", 7)], [("s2", 8), ("s3", 8)]]
FAST = ("--detector", "hog", "--workers", "1", "--quiet")  # dlib's HOG: no network to run
# Floors on this library for pairwise precision, recall and BCubed F, each (measured with dlib:
# chinese_whispers 1.0 on all three; hdbscan and dbscan 1.0, 0.94, 0.98: one face unsorted)
FLOORS = {"chinese_whispers": 0.95, "hdbscan": 0.9, "dbscan": 0.9}


def _library(root: Path) -> dict[str, list[str]]:
    """Johns' chips (4 each), AT&T faces in canvases (4 each), 3 group photos, a photo with
    no face and a text file; returns file name -> the people in it, left to right."""
    truth = {}
    for person in sorted(p for p in JOHNS.iterdir() if p.is_dir()):
        (root / person.name).mkdir(parents=True)
        for chip in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy(chip, root / person.name / chip.name)
            truth[f"{person.name}/{chip.name}"] = [person.name]
    for person in ATT:
        for i in range(1, 5):
            truth[_photo(root / person / f"{i}.jpg", [(person, i)])] = [person]
    for k, faces in enumerate(GROUPS):
        truth[_photo(root / "groups" / f"group{k}.jpg", faces)] = [p for p, _ in faces]
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(root / "groups" / "wall.jpg")
    (root / "broken.jpg").write_text("not a photo")
    # what sits beside photos in a real library, never read as photos
    for sidecar in ("groups/group0.jpg.json", "notes.txt", "README.md", "groups/Thumbs.db"):
        (root / sidecar).write_text("{}")
    _clip(root / "holiday.mp4")
    return truth


def _clip(path: Path) -> None:
    """A short video of an AT&T face: not a photo, so a library leaves it out."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 200))
    for _ in range(5):
        writer.write(canvas("s1", 1)[:, :, ::-1].copy())
    writer.release()


def _photo(path: Path, faces: list[tuple[str, int]]) -> str:
    """A photo of these AT&T faces side by side; its name relative to the library."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.hstack([canvas(p, i) for p, i in faces])).save(path, quality=95)
    return f"{path.parent.name}/{path.name}"


def _truth(library: Path, truth: dict[str, list[str]], files: list[str],
           boxes: np.ndarray) -> list[str]:
    """The person of each face: a group photo's faces in order of their boxes' x."""
    people = []
    for file, box in zip(files, boxes):
        name = Path(file).relative_to(library.resolve()).as_posix()
        xs = sorted(b[0] for f, b in zip(files, boxes) if f == file)
        people.append(truth[name][xs.index(box[0])])
    return people


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cluster")
    library = root / "photos"
    truth = _library(library)
    before = digest(library)
    result = invoke_cli("cluster", str(library), "--out", str(root / "people"), "--json",
                        *FAST, cwd=root)
    assert result.returncode == 0, result.stderr
    cache = LibraryCache.load(root / "people" / "cache.npz",
                              json.loads(str(np.load(root / "people" / "cache.npz")["recipe"])))
    return {"root": root, "library": library, "out": root / "people", "truth": truth,
            "before": before, "report": json.loads(result.stdout), "cache": cache,
            "people": _truth(library, truth, cache.files, cache.boxes)}


def test_every_face_found_and_sources_untouched(clustered: dict) -> None:
    report = clustered["report"]
    assert report["photos"] == len(clustered["truth"]) + 2  # the wall and the broken file too
    assert report["faces"] == 20 + 16 + 7
    assert sorted(Path(f).name for f in report["no_face"]) == ["broken.jpg", "wall.jpg"]
    assert [Path(f).name for f in report["videos_left_out"]] == ["holiday.mp4"]
    assert digest(clustered["library"]) == clustered["before"]


def test_the_summary_tells_faceless_photos_from_files_that_are_no_photos(clustered: dict
                                                                         ) -> None:
    again = invoke_cli("cluster", str(clustered["library"]), "--out", str(clustered["out"]),
                       *FAST, cwd=clustered["root"])
    assert again.returncode == 0, again.stderr
    assert ("(0 embedded now, 1 without a face, 1 unreadable or not images: --json says why)"
            in again.stdout), again.stdout


def test_the_run_clusters_people_apart(clustered: dict) -> None:
    names = sorted(set(clustered["cache"].clusters) - {""})
    found = score(clustered["people"], [names.index(c) if c else -1
                                        for c in clustered["cache"].clusters])
    floor = FLOORS[DEFAULT_ALGORITHM]
    assert min(found.pairwise_precision, found.pairwise_recall, found.bcubed_f) >= floor, found
    assert found.clusters == 9  # 5 Johns, 4 AT&T people (each 4 + group faces)


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_each_algorithm_above_its_floor(clustered: dict, algorithm: str) -> None:
    labels = cluster_vectors(clustered["cache"].vectors, algorithm, Settings(0.6, 3))
    found = score(clustered["people"], labels)
    assert min(found.pairwise_precision, found.pairwise_recall,
               found.bcubed_f) >= FLOORS[algorithm], found


def test_clusters_json_folders_and_pages(clustered: dict) -> None:
    out = clustered["out"]
    document = json.loads((out / "clusters.json").read_text())
    names = [c["cluster"] for c in document]
    sizes = [c["size"] for c in document if c["cluster"] != "unsorted"]
    assert sizes == sorted(sizes, reverse=True)
    assert names[0] == "cluster_001" and "cluster_009" in names
    for entry in document:
        assert set(entry) == {"cluster", "name", "folder", "sheet", "dismissed", "faces", "size",
                              "cohesion"}
        assert entry["name"] is None and entry["folder"] == entry["cluster"]  # nobody named
        assert entry["size"] == len(entry["faces"])
        assert all(set(f) == {"file", "box", "score", "quality"} and len(f["box"]) == 4
                   for f in entry["faces"])
        folder = out / entry["folder"]
        assert len(list(folder.glob("*.jpg"))) == entry["size"]  # one crop per face
        links = list((folder / ".photos").iterdir())
        assert {str(p.resolve()) for p in links} == {f["file"] for f in entry["faces"]}
        assert all(p.is_symlink() for p in links)
        assert (out / entry["sheet"]).is_file()
    page = (out / "index.html").read_text()
    assert page.index('"cluster_001.png"') < page.index('"cluster_009.png"')
    with Image.open(next((out / "cluster_001").glob("*.jpg"))) as crop:
        assert crop.size == (150, 150)


def test_a_cluster_folder_goes_into_enroll(clustered: dict, tmp_path: Path) -> None:
    people = tmp_path / "people"
    shutil.copytree(clustered["out"] / "cluster_001", people / "cluster_001", symlinks=True)
    shutil.copy(clustered["out"] / "prepare_report.json", people)
    result = invoke_cli("enroll", str(people), "--gallery", str(tmp_path / "g.db"),
                        "--no-calibrate", "--threshold", "0.6", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = invoke_cli("gallery", "list", str(tmp_path / "g.db"), "--json", cwd=tmp_path)
    enrolled = {p["name"]: p["faces"] for p in json.loads(listed.stdout)["people"]}
    assert enrolled == {"cluster_001": clustered["report"]["clusters"][0]["size"]}


def test_rerun_keeps_names_and_assigns_new_photos(clustered: dict) -> None:
    root = clustered["root"]
    out = root / "people_again"
    shutil.copytree(clustered["out"], out, symlinks=True)
    before = {c["cluster"]: {(f["file"], tuple(f["box"])) for f in c["faces"]}
              for c in json.loads((out / "clusters.json").read_text())}
    new = root / "new"
    added = {_photo(new / "s1" / "9.jpg", [("s1", 9)]): "s1",
             _photo(new / "s3" / "10.jpg", [("s3", 10)]): "s3"}
    for i in (1, 2, 3):
        added[_photo(new / "s5" / f"{i}.jpg", [("s5", i)])] = "s5"
    result = invoke_cli("cluster", str(clustered["library"]), str(new), "--out", str(out),
                        "--json", *FAST, cwd=root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["embedded"] == len(added)  # the rest came from the cache
    after = {c["cluster"]: {(f["file"], tuple(f["box"])) for f in c["faces"]}
             for c in json.loads((out / "clusters.json").read_text())}
    for name, faces in before.items():
        if name != "unsorted":
            assert faces <= after[name]
    home = {f: name for name, faces in after.items() for f, _ in faces}
    person_of = dict(zip(clustered["cache"].files, clustered["people"]))
    for name, person in added.items():
        cluster = home[str((new / name).resolve())]
        if person == "s5":
            assert cluster == "cluster_010"  # a new person: the next number
        else:  # the cluster most of whose faces are that person's
            old = [person_of[f] for f, _ in before[cluster]]
            assert max(set(old), key=old.count) == person


def test_search_finds_the_same_person_first(clustered: dict) -> None:
    query = clustered["library"] / "John_Simm"
    face = sorted(query.glob("*.jpg"))[0]
    result = invoke_cli("search", str(face), "--in", str(clustered["library"]), "--cache",
                        str(clustered["out"]), "--top", "3", "--json", *FAST,
                        cwd=clustered["root"])
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3  # the other three chips of his
    assert all(Path(h["file"]).parent.name == "John_Simm" for h in hits)
    assert str(face.resolve()) not in {h["file"] for h in hits}
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)


def test_search_embeds_what_is_not_cached(clustered: dict, tmp_path: Path) -> None:
    library = tmp_path / "few"
    for i in (1, 2):
        _photo(library / f"s2_{i}.jpg", [("s2", i)])
    _photo(library / "s4_1.jpg", [("s4", 1)])
    args = ("search", str(clustered["library"] / "s2" / "3.jpg"), "--in", str(library),
            "--json", *FAST)
    first = invoke_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    hits = json.loads(first.stdout)
    assert [Path(h["file"]).name for h in hits][:2] in (["s2_1.jpg", "s2_2.jpg"],
                                                        ["s2_2.jpg", "s2_1.jpg"])
    again = invoke_cli(*args, cwd=tmp_path)
    assert json.loads(again.stdout) == hits


@pytest.mark.parametrize("case", ["no photos", "only videos", "no face", "unknown algorithm"])
def test_bad_input_is_one_line(clustered: dict, tmp_path: Path, case: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    extra = []
    if case == "no face":
        Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(photos / "wall.jpg")
    if case == "unknown algorithm":
        extra = ["--algorithm", "kmeans"]
    if case == "only videos":
        _clip(photos / "holiday.mp4")
    result = invoke_cli("cluster", str(photos), "--out", str(tmp_path / "people"), *FAST,
                        *extra, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {"no photos": "no photos found", "no face": "no face found",
            "only videos": "no photos found in", "unknown algorithm":
            "unknown clustering algorithm"}[case] in result.stderr
    assert ("1 videos: photos are grouped; `facecnn recognize VIDEO`" in result.stderr) == (
        case == "only videos")
    assert not (tmp_path / "people").exists()


def test_out_that_is_a_file_or_foreign_folder_is_refused(tmp_path: Path) -> None:
    """A real process: the error comes before any model is loaded, and nothing is touched."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "taken").write_text("mine")
    result = run_cli("cluster", "photos", "--out", "taken", cwd=tmp_path)
    assert result.returncode == 2 and "is a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    result = invoke_cli("cluster", "photos", "--out", "folder", cwd=tmp_path)
    assert result.returncode == 2 and "did not write" in result.stderr
    assert (tmp_path / "taken").read_text() == "mine"
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["notes.txt"]


def test_copy_puts_copies_not_links_and_leaves_the_photos(tmp_path: Path) -> None:
    photos = [tmp_path / "photos" / f"{i}.jpg" for i in (1, 2, 3)]
    for i, path in enumerate(photos, 1):
        _photo(path, [("s5", i)])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos}
    result = invoke_cli("cluster", str(tmp_path / "photos"), "--out", str(tmp_path / "people"),
                        "--copy", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    placed = list((tmp_path / "people" / "cluster_001" / ".photos").iterdir())
    assert len(placed) == 3 and not any(p.is_symlink() for p in placed)
    assert sorted(p.read_bytes() for p in placed) == sorted(b for b, _ in before.values())
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos} == before
