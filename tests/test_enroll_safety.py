"""Enrolment never loses or doubles anything: reruns, concurrent runs, kill -9 half-way, a
threshold set by hand, failed runs, and recognize's report of unreadable inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import HANG_GUARD, invoke_cli, write_photos

pytestmark = pytest.mark.e2e

# These tests are about the gallery, not detection: dlib's HOG is the quickest detector for them
HOG = ("--detector", "hog")


def listing(db: Path, cwd: Path) -> dict:
    result = invoke_cli("gallery", "list", str(db), "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def faces_of(db: Path, cwd: Path) -> dict[str, int]:
    return {p["name"]: p["faces"] for p in listing(db, cwd)["people"]}


def test_enrolling_a_folder_again_adds_nothing(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s1", "s2", "s3"], range(1, 5))
    db = tmp_path / "g.db"
    first = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    threshold = listing(db, tmp_path)["threshold"]
    again = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "enrolled 0 new faces" in again.stdout
    assert "12 photos were already enrolled" in again.stdout
    assert faces_of(db, tmp_path) == {"s1": 4, "s2": 4, "s3": 4}
    assert listing(db, tmp_path)["threshold"] == pytest.approx(threshold) and threshold > 0.2
    # a copy of a photo under another name, even in another person's folder, is the same photo
    (photos / "s3" / "copy.jpg").write_bytes((photos / "s1" / "1.jpg").read_bytes())
    third = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet", cwd=tmp_path)
    assert "13 photos were already enrolled" in third.stdout
    assert faces_of(db, tmp_path) == {"s1": 4, "s2": 4, "s3": 4}


def test_two_enrolls_of_one_folder_at_once(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s4", "s5"], range(1, 5))
    db = tmp_path / "g.db"
    procs = [subprocess.Popen([sys.executable, "-m", "facecnn", "enroll", *HOG, str(photos),
                               "--gallery", str(db), "--quiet", "--workers", "1"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=HANG_GUARD) == 0, proc.stderr.read()
    assert faces_of(db, tmp_path) == {"s4": 4, "s5": 4}
    assert listing(db, tmp_path)["threshold"] > 0.2


KILL_HALF_WAY = """
import os, signal, sys
from pathlib import Path
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import create_embedder
from facecnn.apps.enroll import enroll
from facecnn.progress import Reporter

class KillAfter(Reporter):
    def task(self, description, total):
        from contextlib import contextmanager
        @contextmanager
        def bar():
            done = [0]
            def advance(n):
                done[0] += n
                if done[0] == int(sys.argv[3]):
                    os.kill(os.getpid(), signal.SIGKILL)  # as a user's kill -9 would
            yield advance
        return bar()

enroll(Path(sys.argv[1]), Path(sys.argv[2]), create_embedder("dlib"), FaceDetector("hog"),
       workers=1, reporter=KillAfter())
"""


def test_killed_enroll_leaves_the_gallery_whole_and_a_rerun_completes_it(tmp_path: Path) -> None:
    first = write_photos(tmp_path / "first", ["s1", "s2"], range(1, 4))
    more = write_photos(tmp_path / "more", ["s1", "s2", "s6", "s7"], range(1, 4))
    db = tmp_path / "g.db"
    assert invoke_cli("enroll", *HOG, str(first), "--gallery", str(db), "--quiet",
                   cwd=tmp_path).returncode == 0
    before = listing(db, tmp_path)
    for kill_at in (1, 5):  # the 6 photos not yet enrolled: after the first, near the end
        killed = subprocess.run([sys.executable, "-c", KILL_HALF_WAY, str(more), str(db),
                                 str(kill_at)], cwd=tmp_path, capture_output=True,
                                timeout=HANG_GUARD)
        assert killed.returncode == -9, killed.stderr.decode()[-2000:]
        assert listing(db, tmp_path) == before  # nothing, not some people without a threshold
    rerun = invoke_cli("enroll", *HOG, str(more), "--gallery", str(db), "--quiet", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "enrolled 6 new faces of 2 people" in rerun.stdout
    assert faces_of(db, tmp_path) == {"s1": 3, "s2": 3, "s6": 3, "s7": 3}


def test_a_threshold_set_by_hand_is_kept(tmp_path: Path) -> None:
    first = write_photos(tmp_path / "first", ["s1", "s2"], range(1, 4))
    more = write_photos(tmp_path / "more", ["s8", "s9"], range(1, 4))
    db = tmp_path / "g.db"
    assert invoke_cli("enroll", *HOG, str(first), "--gallery", str(db), "--threshold", "0.55",
                   "--quiet", cwd=tmp_path).returncode == 0
    kept = invoke_cli("enroll", *HOG, str(more), "--gallery", str(db), "--quiet", cwd=tmp_path)
    assert kept.returncode == 0 and "keeping the threshold 0.5500 set by hand" in kept.stdout
    assert listing(db, tmp_path)["threshold"] == 0.55
    redo = invoke_cli("enroll", *HOG, str(more), "--gallery", str(db), "--calibrate", "--quiet",
                   cwd=tmp_path)
    assert redo.returncode == 0 and "(calibrated)" in redo.stdout
    assert listing(db, tmp_path)["threshold"] != 0.55


def test_failed_enroll_leaves_no_gallery_and_names_what_it_skipped(tmp_path: Path) -> None:
    walls = tmp_path / "walls"
    for person in ("a", "b"):
        (walls / person).mkdir(parents=True)
        Image.new("RGB", (120, 120), (90, 90, 90)).save(walls / person / "1.jpg")
    failed = invoke_cli("enroll", *HOG, str(walls), "--gallery", str(tmp_path / "g.db"),
                        cwd=tmp_path)
    assert failed.returncode == 2 and "no face found" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "g.db").exists()
    photos = write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 3))
    (photos / "nobody").mkdir()
    (photos / "bad\u202ename").mkdir()
    refused = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(tmp_path / "g.db"),
                         cwd=tmp_path)
    assert refused.returncode == 2 and "invalid person name" in refused.stderr
    (photos / "bad\u202ename").rmdir()
    ok = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(tmp_path / "g.db"), "--quiet",
                 cwd=tmp_path)
    assert ok.returncode == 0 and f"empty person folder skipped: {photos / 'nobody'}" in ok.stderr


def test_recognize_reports_unreadable_files(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 3))
    db = tmp_path / "g.db"
    assert invoke_cli("enroll", *HOG, str(photos), "--gallery", str(db), "--quiet",
                   cwd=tmp_path).returncode == 0
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    alone = invoke_cli("recognize", *HOG, str(text), "--gallery", str(db), cwd=tmp_path)
    assert alone.returncode == 2 and "unreadable" in alone.stdout
    assert "none of the 1 images could be read" in alone.stderr and "Traceback" not in alone.stderr
    mixed = invoke_cli("recognize", *HOG, str(photos / "s1" / "1.jpg"), str(text), "--gallery",
                       str(db), "--json", cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    records = {Path(r["file"]).name: r for r in json.loads(mixed.stdout)}
    assert records["1.jpg"]["faces"][0]["name"] == "s1"
    assert "not an image" in records["notes.jpg"]["error"]


def test_metadata_beside_photos_is_passed_by(tmp_path: Path) -> None:
    """Takeout's .json beside every photo, a README, Windows' Thumbs.db: enroll and prepare
    read the photos alone and report nothing unreadable; a sidecar given by name is read and
    refused."""
    photos = write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 3))
    for photo in list(photos.rglob("*.jpg")):
        (photo.parent / f"{photo.name}.json").write_text('{"title": "x"}')
    (photos / "s1" / "README.md").write_text("# my photos")
    (photos / "s2" / "Thumbs.db").write_bytes(bytes(64))
    enrolled = invoke_cli("enroll", *HOG, str(photos), "--gallery", str(tmp_path / "g.db"),
                          "--quiet", cwd=tmp_path)
    assert enrolled.returncode == 0 and "enrolled 4 new faces" in enrolled.stdout
    assert "unreadable" not in enrolled.stderr, enrolled.stderr
    prepared = invoke_cli("prepare", *HOG, str(photos), str(tmp_path / "crops"), "--quiet",
                          cwd=tmp_path)
    assert prepared.returncode == 0 and "from 4 images" in prepared.stdout
    assert "0 unreadable" in prepared.stdout and "unreadable:" not in prepared.stderr
    named = invoke_cli("recognize", *HOG, str(photos / "s1" / "1.jpg.json"), "--gallery",
                       str(tmp_path / "g.db"), cwd=tmp_path)
    assert named.returncode == 2 and "unreadable" in named.stdout
