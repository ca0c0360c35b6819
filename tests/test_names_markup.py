"""What the user reads is what is stored: names and paths with brackets print as written, never
as rich markup ("[b]madonna" is not a second, bold "madonna"); and an enrol that lost photos to
another run at the same time says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facecnn.apps.enroll as enroll_module
from facecnn.faces.gallery import Gallery
from helpers import CliResult, invoke_cli, write_photos

HOG = ("--detector", "hog")  # the quickest detector: these tests are about what is printed


def table_column(stdout: str) -> list[str]:
    """The first column of a rich table's body rows."""
    return [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]


def test_a_name_with_markup_is_a_name_as_written(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with Gallery.create(db, "dlib", 128) as gallery:
        for seed, name in enumerate(["mindy_kaling", "madonna"]):
            vectors = np.random.default_rng(seed).normal(size=(2, 128))
            gallery.add(name, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    renamed = invoke_cli("gallery", "rename", str(db), "mindy_kaling", "[b]madonna", cwd=tmp_path)
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.strip() == "renamed mindy_kaling to [b]madonna"
    listed = invoke_cli("gallery", "list", str(db), cwd=tmp_path)
    assert table_column(listed.stdout) == ["[b]madonna", "madonna"]
    removed = invoke_cli("gallery", "remove", str(db), "[b]madonna", cwd=tmp_path)
    assert removed.stdout.strip().startswith("removed [b]madonna (2 faces); threshold ")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, CliResult]:
    """A person folder "[b]s1" (and s2, with a blank "[i]blank.jpg") enrolled into
    "faces [u].db", and the enrol's result."""
    root = tmp_path_factory.mktemp("markup")
    photos = write_photos(root / "photos", ["s1", "s2"], range(1, 4))
    (photos / "s1").rename(photos / "[b]s1")
    Image.new("RGB", (120, 120), (90, 90, 90)).save(photos / "s2" / "[i]blank.jpg")
    db = root / "faces [u].db"
    result = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet",
                        "--workers", "1", cwd=root)
    assert result.returncode == 0, result.stderr
    return root, db, result


@pytest.mark.e2e
def test_a_person_folder_with_brackets_is_enrolled_and_listed_as_written(
        enrolled: tuple[Path, Path, CliResult]) -> None:
    root, db, result = enrolled
    assert f"no face: {root / 'photos' / 's2' / '[i]blank.jpg'}" in result.stderr
    assert f"enrolled 6 new faces of 2 people into {db};" in result.stdout
    listed = invoke_cli("gallery", "list", str(db), cwd=root)
    assert listed.stdout.startswith(f"{db} (dlib, threshold ")
    assert table_column(listed.stdout) == ["[b]s1", "s2"]


@pytest.mark.e2e
def test_recognize_prints_paths_and_names_as_written(
        enrolled: tuple[Path, Path, CliResult]) -> None:
    root, db, _ = enrolled
    photo = Path("[b]shots", "photo [1] [i]s1.jpg")  # relative: the table's row stays one line
    (root / photo).parent.mkdir()
    write_photos(root / "more", ["s1"], range(5, 6))
    shutil.copy(root / "more" / "s1" / "5.jpg", root / photo)
    result = invoke_cli("recognize", *HOG, str(photo), "--gallery", str(db), "--quiet",
                        "--workers", "1", cwd=root)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "photo [1]" in line)
    file, faces = (cell.strip() for cell in row.split("│")[1:3])
    assert file == str(photo)
    assert faces.startswith("[b]s1 (")


@pytest.mark.e2e
def test_an_enrol_that_lost_photos_to_another_run_says_so(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    photos = write_photos(tmp_path / "photos", ["s4", "s5"], range(1, 5))
    db = tmp_path / "g.db"
    real_embed = enroll_module._embed

    def another_run_ends_first(folder, todo, pipeline, report, reporter, *rest):  # noqa: ANN001, ANN202
        """The same enrol, started a moment later, writes its photos while this one embeds."""
        monkeypatch.setattr(enroll_module, "_embed", real_embed)
        enroll_module.enroll(folder, db, pipeline.embedder, pipeline.detector, workers=1)
        return real_embed(folder, todo, pipeline, report, reporter, *rest)

    monkeypatch.setattr(enroll_module, "_embed", another_run_ends_first)
    result = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet",
                        "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f"enrolled 0 new faces of 0 people into {db}; 8 photos were enrolled by another "
            "run meanwhile (nothing added for them); the faces of 8 photos came from an "
            "earlier run's cache; threshold ") in result.stdout  # the other run kept them
    listed = invoke_cli("gallery", "list", str(db), "--json", cwd=tmp_path)
    assert '"faces": 4' in listed.stdout and listed.stdout.count('"faces": 4') == 2
