"""A gallery file in trouble is one line naming the trouble, exit 2, and the file as it was: a
read-only file system or an immutable file (which still read), a full disk, a damaged page, a
vector of the wrong length, a folder given as the gallery. A first enroll killed before its
commit leaves no file, and a server's 503 for an unreachable database names no database.

Read-only and full file systems are real ones: small tmpfs mounts, which need root (CI runs
as root, as these tests do).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from facecnn.faces.gallery import open_gallery
from helpers import HANG_GUARD, CliResult, free_port, invoke_cli, write_photos

HOG = ("--detector", "hog")  # the gallery is under test, not detection: the quickest


def _system(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({done.stderr.strip()}): these tests make real "
                    f"file systems and need root, as CI runs them")


@contextmanager
def tmpfs(where: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at `where` for the block."""
    where.mkdir()
    _system("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where))
    try:
        yield where
    finally:
        _system("umount", "--lazy", str(where))


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 3))


def enroll(photos: Path, gallery: Path) -> CliResult:
    return invoke_cli("enroll", *HOG, str(photos), "--gallery", str(gallery), "--quiet",
                      cwd=photos.parent)


def enrolled(photos: Path, gallery: Path) -> Path:
    made = enroll(photos, gallery)
    assert made.returncode == 0, made.stderr
    return gallery


def one_line(result: CliResult, said: str) -> None:
    """Exit 2 and one line on stderr that says `said`, never a bug's line or a traceback."""
    assert result.returncode == 2, result.stderr
    assert said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def people(gallery: Path) -> dict[str, int]:
    listed = invoke_cli("gallery", "list", str(gallery), "--json", cwd=gallery.parent)
    assert listed.returncode == 0, listed.stderr
    return {p["name"]: p["faces"] for p in json.loads(listed.stdout)["people"]}


def reads_and_refuses_writes(gallery: Path, photos: Path, why: str) -> None:
    """Listing and recognizing work; a rename and an enroll say `why`, and change nothing."""
    before = digest(gallery)
    assert people(gallery) == {"s1": 2, "s2": 2}
    found = invoke_cli("recognize", *HOG, str(photos / "s1" / "1.jpg"), "--gallery",
                       str(gallery), "--json", cwd=photos.parent)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["faces"][0]["name"] == "s1"
    renamed = invoke_cli("gallery", "rename", str(gallery), "s1", "ann", cwd=photos.parent)
    one_line(renamed, f"{gallery} is read-only: {why}")
    more = write_photos(photos.parent / "more", ["s3"], range(1, 3))
    one_line(enroll(more, gallery), f"{gallery} is read-only: {why}")
    assert digest(gallery) == before


@pytest.mark.e2e
def test_a_read_only_file_system_reads_and_refuses_writes(tmp_path: Path, photos: Path) -> None:
    with tmpfs(tmp_path / "medium") as medium:
        gallery = enrolled(photos, medium / "g.db")
        _system("mount", "-o", "remount,ro", str(medium))
        reads_and_refuses_writes(gallery, photos, "it is on a read-only file system")


@pytest.mark.e2e
def test_an_immutable_file_reads_and_refuses_writes(tmp_path: Path, photos: Path) -> None:
    gallery = enrolled(photos, tmp_path / "g.db")
    _system("chattr", "+i", str(gallery))
    try:
        reads_and_refuses_writes(gallery, photos, "the file is immutable or append-only")
    finally:
        _system("chattr", "-i", str(gallery))


@pytest.mark.e2e
@pytest.mark.parametrize("room", [0, 36 << 10], ids=["none", "to open, not to write"])
def test_a_full_disk_is_one_line_and_changes_nothing(tmp_path: Path, photos: Path,
                                                     room: int) -> None:
    """No room at all fails the opening; room for SQLite's shared memory (32 KiB) but not for
    one more page fails the write. A new gallery on the full disk is not made at all."""
    more = write_photos(tmp_path / "more", ["s3"], range(1, 3))
    with tmpfs(tmp_path / "disk") as disk:
        gallery = enrolled(photos, disk / "g.db")
        before = digest(gallery)
        (disk / "filler").write_bytes(bytes(_free(disk) - room))
        one_line(enroll(more, gallery), f"no space left on the disk of {gallery}")
        new = disk / "new.db"
        one_line(enroll(more, new), f"no space left on the disk of {new}")
        (disk / "filler").unlink()
        assert digest(gallery) == before and people(gallery) == {"s1": 2, "s2": 2}
        # beside SQLite's own -wal and -shm, no new gallery and no temporary of one
        assert [p.name for p in disk.iterdir() if not p.name.startswith("g.db")] == []


def _free(folder: Path) -> int:
    found = os.statvfs(folder)
    return found.f_bavail * found.f_frsize


@pytest.mark.e2e
def test_a_damaged_page_is_one_line(tmp_path: Path, photos: Path) -> None:
    gallery = enrolled(photos, tmp_path / "g.db")
    data = bytearray(gallery.read_bytes())
    for page in range(4096, len(data), 4096):  # every page's header but the file's first
        data[page:page + 64] = b"\xff" * 64
    gallery.write_bytes(data)
    for args in (("gallery", "list", str(gallery)), ("gallery", "rename", str(gallery), "s1",
                                                      "ann")):
        one_line(invoke_cli(*args, cwd=tmp_path), f"the gallery file {gallery} is damaged")
    assert gallery.read_bytes() == data


@pytest.mark.e2e
def test_a_vector_of_the_wrong_length_is_one_line(tmp_path: Path, photos: Path) -> None:
    gallery = enrolled(photos, tmp_path / "g.db")
    with sqlite3.connect(gallery) as db:
        db.execute("UPDATE embeddings SET vector = zeroblob(500) WHERE id = 2")
    db.close()
    before = digest(gallery)
    found = invoke_cli("recognize", *HOG, str(photos / "s1" / "1.jpg"), "--gallery",
                       str(gallery), cwd=tmp_path)
    one_line(found, "1 of the 4 face vectors stored are not 128 float32 values (512 bytes)")
    assert digest(gallery) == before


@pytest.mark.e2e
def test_a_folder_given_as_the_gallery_is_one_line(tmp_path: Path, photos: Path) -> None:
    folder = tmp_path / "galleries"
    folder.mkdir()
    one_line(enroll(photos, folder), f"{folder} is a folder, not a gallery file")
    one_line(invoke_cli("gallery", "list", str(folder), cwd=tmp_path),
             f"{folder} is a folder, not a gallery file")
    assert list(folder.iterdir()) == []


KILLED_IN_FIRST_COMMIT = """
import os, signal, sys
from pathlib import Path
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import create_embedder
from facecnn.apps.enroll import enroll
from facecnn.faces.gallery import Gallery

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # as a user's kill -9 would: faces added, no commit

Gallery.calibrate = killed
enroll(Path(sys.argv[1]), Path(sys.argv[2]), create_embedder("dlib"), FaceDetector("hog"),
       workers=1)
"""


@pytest.mark.e2e
def test_a_first_enroll_killed_before_its_commit_leaves_no_file(tmp_path: Path,
                                                                 photos: Path) -> None:
    gallery = tmp_path / "g.db"
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_FIRST_COMMIT, str(photos),
                             str(gallery)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=HANG_GUARD)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no gallery, no leftover
    enrolled(photos, gallery)
    assert people(gallery) == {"s1": 2, "s2": 2}


def test_a_503_names_no_database_and_the_log_does(caplog: pytest.LogCaptureFixture) -> None:
    """Any key holder sees that the database is out of reach; which one (user, host, port)
    and why go to the server's log."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from facecnn.serve.errors import add_handlers

    port = free_port()
    app = FastAPI()
    add_handlers(app)

    @app.get("/v1/people")
    def listing() -> None:
        open_gallery(f"postgresql://facecnn@127.0.0.1:{port}/faces")

    with caplog.at_level(logging.WARNING, logger="facecnn.serve"):
        answer = TestClient(app).get("/v1/people")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json() == {"detail": "cannot reach the gallery database; try again shortly"}
    logged = [r.getMessage() for r in caplog.records if r.name == "facecnn.serve"]
    assert len(logged) == 1 and f"postgresql://facecnn@127.0.0.1:{port}/faces" in logged[0]
    assert "refused" in logged[0]


def test_a_read_only_gallery_of_schema_2_still_reads(tmp_path: Path) -> None:
    """Not upgraded where it cannot be written: people, vectors and faces read (no boxes or
    thumbnails), and the file is left as it was."""
    from test_gallery_faces import _schema_2_sqlite

    with tmpfs(tmp_path / "medium") as medium:
        gallery = medium / "old.db"
        _schema_2_sqlite(gallery)
        before = digest(gallery)
        _system("mount", "-o", "remount,ro", str(medium))
        with open_gallery(gallery) as g:
            (face,) = g.faces_of("ann")
            assert (face.source, face.box, face.thumbnail) == ("a.jpg", None, False)
            assert g.thumbnail("ann", face.id) is None and g.vectors()[0].shape == (1, 8)
        assert digest(gallery) == before
