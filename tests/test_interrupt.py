"""Ctrl-C keeps the work: `enroll` and `cluster` stopped part-way say how many photos' faces
were kept, and the same command again finds faces only in the rest (faces/face_cache.py)."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from facecnn.faces.detect import FaceDetector
from facecnn.workers import worker_pool
from helpers import invoke_cli, write_photos

pytestmark = pytest.mark.e2e

FAST = ("--detector", "hog", "--workers", "1", "--quiet")
PHOTOS = 20


class Counting:
    """Wraps FaceDetector.detect_batch: counts the photos it is given, and presses Ctrl-C
    when asked to look at photo number `stop_at` + 1."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> None:
        self.seen, self.stop_at = 0, stop_at
        original = FaceDetector.detect_batch

        def detect_batch(detector, images, landmarks=True):
            if self.stop_at is not None and self.seen + len(images) > self.stop_at:
                raise KeyboardInterrupt
            self.seen += len(images)
            return original(detector, images, landmarks)

        monkeypatch.setattr(FaceDetector, "detect_batch", detect_batch)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return write_photos(tmp_path / "photos", ["s1", "s2", "s3", "s4"], range(1, 6))


def _interrupted(result, kept: int) -> None:
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith(f"interrupted: the faces of {kept} of {PHOTOS} photos are "
                                    "kept"), result.stderr
    assert "the same command again processes only the rest" in result.stderr


def test_enroll_goes_on_where_ctrl_c_stopped_it(photos: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FACECNN_CACHE_DIR": str(tmp_path / "cache")}
    gallery = tmp_path / "team.db"
    Counting(monkeypatch, stop_at=8)
    stopped = invoke_cli("enroll", str(photos), "--gallery", str(gallery), *FAST, cwd=tmp_path,
                         env=env)
    _interrupted(stopped, 8)
    assert not gallery.exists()  # nothing half-enrolled
    monkeypatch.undo()
    rerun = Counting(monkeypatch)
    done = invoke_cli("enroll", str(photos), "--gallery", str(gallery), *FAST[:-1],
                      cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert rerun.seen == PHOTOS - 8
    assert f"enrolled {PHOTOS} new faces of 4 people" in done.stdout
    assert "the faces of 8 photos came from an earlier run's cache" in done.stdout
    with sqlite3.connect(tmp_path / "cache" / "faces.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == PHOTOS


def test_cluster_goes_on_where_ctrl_c_stopped_it(photos: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FACECNN_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "people"
    Counting(monkeypatch, stop_at=13)
    _interrupted(invoke_cli("cluster", str(photos), "--out", str(out), *FAST, cwd=tmp_path,
                            env=env), 13)
    monkeypatch.undo()
    rerun = Counting(monkeypatch)
    done = invoke_cli("cluster", str(photos), "--out", str(out), "--json", *FAST,
                      cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert rerun.seen == PHOTOS - 13
    report = json.loads(done.stdout)
    assert report["faces"] == PHOTOS and len(report["clusters"]) == 4


def _sigint_handler(_: int) -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_workers_leave_ctrl_c_to_the_main_process() -> None:
    with worker_pool(1) as pool:
        assert pool.submit(_sigint_handler, 0).result(timeout=60)
