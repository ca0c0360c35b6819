"""A gallery enrolled with --flip (or --jitter) is searched with the same views: an enrolled
photo, recognized again, lands where its own stored vector does (at its distance from its
person's mean direction), whether one photo (dlib's C++) or a folder (dlib's network in
PyTorch, batched) is recognized; faces of other views are never mixed in;
older galleries (no views recorded) read as none."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facecnn.faces.gallery import Gallery
from facecnn.faces.gallery.search import directions, unit
from helpers import make_jpeg_tree, run_cli

PEOPLE = ["s1", "s2", "s3"]


@pytest.fixture(scope="module")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("views")
    photos = make_jpeg_tree(root / "photos", PEOPLE, 6, size=160)
    gallery = root / "flip.db"
    result = run_cli("enroll", str(photos), "--gallery", str(gallery), "--flip", "--quiet",
                     cwd=root)
    assert result.returncode == 0, result.stderr
    return photos, gallery


def distances(result_stdout: str) -> dict[str, float]:
    return {Path(r["file"]).name: r["faces"][0]["distance"] for r in json.loads(result_stdout)}


def stored_distances(gallery: Gallery) -> dict[str, float]:
    """person_photo -> the distance of the photo's stored vector from its person's mean
    direction: where the photo must land when searched as it was enrolled."""
    refs, owners, names = gallery.vectors()
    people = directions(refs, owners, len(names), gallery.length)
    faces = gallery.contents().faces
    sources = {bytes(face[1]): face[2] for face in faces}
    landed = np.linalg.norm(unit(refs, gallery.length) - people[owners], axis=1)
    return {f"{Path(sources[v.tobytes()]).parent.name}_{Path(sources[v.tobytes()]).name}":
            float(d) for v, d in zip(refs, landed)}


@pytest.mark.e2e
def test_an_enrolled_photo_lands_on_its_own_flipped_vector(flipped: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    photos, gallery = flipped
    with Gallery.open(gallery) as opened:
        assert opened.views == {"flip": True, "jitter": 0}
        expected = stored_distances(opened)
    assert len(expected) >= 15  # of 18
    one = run_cli("recognize", str(photos / "s1" / "1.jpg"), "--gallery", str(gallery),
                  "--json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    # unflipped, it landed 0.04-0.07 away from there
    assert abs(distances(one.stdout)["1.jpg"] - expected["s1_1.jpg"]) < 1e-3
    folder = tmp_path / "many"
    for person in PEOPLE:  # 18 photos: batched, in PyTorch
        for photo in (photos / person).iterdir():
            shutil.copy(photo, folder.mkdir(exist_ok=True) or folder / f"{person}_{photo.name}")
    many = run_cli("recognize", str(folder), "--gallery", str(gallery), "--json", cwd=tmp_path)
    assert many.returncode == 0, many.stderr
    assert max(abs(d - expected[name]) for name, d in distances(many.stdout).items()
               if name in expected) < 1e-3


@pytest.mark.e2e
def test_faces_of_other_views_are_not_mixed_in(flipped: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    photos, gallery = flipped
    before = gallery.read_bytes()
    more = make_jpeg_tree(tmp_path / "more", ["s4"], 3, size=160)
    result = run_cli("enroll", str(more), "--gallery", str(gallery), cwd=tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "\n" not in message and "--flip" in message and "Traceback" not in message
    assert gallery.read_bytes() == before


def test_an_older_gallery_has_no_extra_views(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Gallery.create(path, "dlib", 128).close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'views'")
    with Gallery.open(path) as gallery:
        assert gallery.views == {"flip": False, "jitter": 0}
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('views', '{\"flip\": 3}')")
    with pytest.raises(Exception, match="views"):
        Gallery.open(path)
