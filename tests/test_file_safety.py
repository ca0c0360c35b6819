"""Issue 11: killed commands leave no workers, no half-written files and nothing overwritten.

Every test drives the CLI, and what must be killed (the command, a real process tree) runs
as a real process and is killed for real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import HANG_GUARD, canvas, digest, invoke_cli, read_rows, write_photos


# ---- A: workers die with their parent --------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if int(ppid) == pid and state != "Z":
                found.append(int(entry))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _kill_and_watch(proc: subprocess.Popen, workers: int,
                    timeout: float = HANG_GUARD) -> list[int]:
    """Wait for `workers` children of `proc`, SIGKILL it, and return those still alive 5 s on."""
    deadline = time.time() + timeout
    children: list[int] = []
    while time.time() < deadline and len(children) < workers and proc.poll() is None:
        time.sleep(0.1)
        children = _children(proc.pid)
    assert len(children) >= workers, f"no workers appeared: {proc.communicate()[1][-2000:]}"
    proc.kill()
    proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _alive(children):
        time.sleep(0.1)
    left = _alive(children)
    for pid in left:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_embed_leaves_no_workers(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(32):  # 2 x MIN_FILES_PER_WORKER x 2: a pool of 2, busy for many seconds
        Image.new("RGB", (1200, 1200), (90 + i, 90, 90)).save(photos / f"{i}.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "facecnn", "embed", str(photos), "--out",
                             str(tmp_path / "v.npz"), "--workers", "2", "--detector", "hog",
                             "--quiet"],  # dlib's detector: runs in the worker pool
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert _kill_and_watch(proc, 2) == []


WATCHED = """
import multiprocessing, os, sys, time
from facecnn.workers import _watch
if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=_watch, args=(os.getpid(),))
    child.start()
    time.sleep(600)
"""


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_portable_watcher_ends_an_orphaned_worker(tmp_path: Path) -> None:
    """The fallback where prctl is missing (macOS, Windows), run here for real."""
    script = tmp_path / "parent.py"
    script.write_text(WATCHED)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert _kill_and_watch(proc, 1) == []


# ---- B: embed writes whole, after checking where -----------------------------------------------
def test_embed_with_no_face_leaves_existing_out_untouched(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(photos / "wall.jpg")
    (photos / "notes.jpg").write_text("not an image")
    out = tmp_path / "vectors.npz"
    out.write_bytes(b"the user's earlier vectors")
    result = invoke_cli("embed", str(photos), "--out", str(out), "--overwrite", "--workers",
                        "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no face found")
    assert out.read_bytes() == b"the user's earlier vectors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "vectors.npz"]


@pytest.mark.e2e
def test_embed_checks_the_destination_before_any_work(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s1"], range(1, 2))
    (photos / "s1" / "notes.jpg").write_text("not an image")
    result = invoke_cli("embed", str(photos), "--out", str(tmp_path / "nodir" / "x.npz"),
                        cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: cannot write {tmp_path / 'nodir' / 'x.npz'}: folder {tmp_path / 'nodir'} "
        "does not exist"]  # one line, and no file was looked at (notes.jpg not reported)


# ---- C: prepare never harms RAW, names every crop apart, writes whole ----------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("layout", ["out_person_is_raw", "out_person_holds_raw"])
def test_prepare_refuses_out_whose_person_folders_reach_raw(tmp_path: Path,
                                                             layout: str) -> None:
    if layout == "out_person_is_raw":  # RAW=x/photos has a person `photos`; OUT=x
        out = tmp_path / "x"
        raw = out / "photos"
        write_photos(raw, ["s1"], range(1, 3))
        write_photos(raw / "photos", ["s1"], range(3, 5))  # would land on RAW/s1/...
        (raw / "photos" / "s1" / "1.jpg").write_bytes((raw / "photos" / "s1" / "3.jpg")
                                                      .read_bytes())
    else:  # RAW=y/a/photos has a person `a`; OUT=y: OUT/a holds RAW
        out = tmp_path / "y"
        raw = out / "a" / "photos"
        write_photos(raw, ["s1", "s2"], range(1, 3)).joinpath("s2").rename(raw / "a")
    before = digest(out)
    result = invoke_cli("prepare", str(raw), str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "error: OUT/" in result.stderr
    assert digest(out) == before  # nothing written anywhere, RAW untouched


def _two_faces() -> np.ndarray:
    return np.hstack([canvas("s1", 4), canvas("s2", 4)])


@pytest.mark.e2e
def test_prepare_gives_every_photo_its_own_crops(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "s1").mkdir(parents=True)
    Image.fromarray(canvas("s1", 1)).save(raw / "s1" / "photo.jpg")
    Image.fromarray(canvas("s1", 2)).save(raw / "s1" / "photo.png")
    Image.fromarray(_two_faces()).save(raw / "s1" / "pair.jpg")
    Image.fromarray(canvas("s1", 3)).save(raw / "s1" / "pair_0.png")  # pair.jpg's 1st face?
    out = tmp_path / "out"
    result = invoke_cli("prepare", str(raw), str(out), "--multi", "all", "--size", "64",
                        "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    crops = sorted(p.name for p in (out / "s1").iterdir())
    assert crops == sorted(["pair__0.jpg", "pair__1.jpg", "pair_0.jpg", "photo.jpg.jpg",
                            "photo.png.jpg"])
    first = {name: (out / "s1" / name).read_bytes() for name in crops}
    again = invoke_cli("prepare", str(raw), str(out), "--multi", "all", "--size", "64",
                       "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in (out / "s1").iterdir()} == first
    assert "0 face crops written" in again.stdout and "5 existing kept" in again.stdout


def _complete(jpeg: Path) -> bool:
    try:
        with Image.open(jpeg) as img:
            img.load()
        return True
    except OSError:
        return False


@pytest.mark.e2e
def test_killed_prepare_leaves_no_truncated_crop(tmp_path: Path) -> None:
    raw = write_photos(tmp_path / "raw", ["s1"], range(1, 4))
    out = tmp_path / "out"
    args = ["prepare", str(raw), str(out), "--size", "2500", "--quiet"]  # slow to write
    proc = subprocess.Popen([sys.executable, "-m", "facecnn", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline and proc.poll() is None and not list(out.glob("s1/*.jpg")):
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    assert all(_complete(crop) for crop in out.glob("s1/*.jpg"))
    assert invoke_cli(*args, cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in (out / "s1").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert all(_complete(crop) for crop in out.glob("s1/*.jpg"))


def test_prepare_with_no_crop_fails_and_names_empty_folders(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "s1").mkdir(parents=True)
    (raw / "s2").mkdir()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(raw / "s1" / "wall.jpg")
    out = tmp_path / "out"
    result = invoke_cli("prepare", str(raw), str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no face crop written")
    assert "empty person folder skipped: s2" in lines
    report = (out / "prepare_report.json").read_text()
    assert '"empty_folders": [\n    "s2"\n  ]' in report and "s1/wall.jpg" in report


# ---- D: training resumes after a kill that left no last.pt ---------------------------------------
@pytest.mark.e2e
def test_resume_continues_from_best_when_last_is_missing(tmp_path: Path) -> None:
    args = ["train", "digits", "--model", "seed_mnist_cnn", "--epochs", "2", "--batch-size",
            "64", "--no-amp", "--quiet", "--project", str(tmp_path), "--name", "cut"]
    proc = subprocess.Popen([sys.executable, "-m", "facecnn", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "train" / "cut"
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline and proc.poll() is None and not (run / "results.csv").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # saves last.pt in epoch 2; deleting it below stands for a
    proc.communicate(timeout=HANG_GUARD)  # kill -9 during its first write: only a temp is left
    first = read_rows(run)[0]
    (run / "weights" / "last.pt").unlink()
    stale = run / "weights" / f".last.pt.{proc.pid}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    resumed = invoke_cli("train", "--resume", str(run), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "last.pt is missing: continuing from" in resumed.stdout + resumed.stderr
    rows = read_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[0] == first
    assert not stale.exists() and (run / "weights" / "last.pt").is_file()


def test_atomic_writes_reach_the_disk_before_and_after_the_rename(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A power cut after a rename that was not synced can leave an empty file under the final
    name: the data is synced first, then the folder that holds the new name."""
    from facecnn import fileio

    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def synced(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def renamed(src, dst) -> None:
        events.append(("rename", str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "replace", renamed)
    target = tmp_path / "gallery.idx"
    fileio.write_bytes_atomic(target, b"vectors")
    assert target.read_bytes() == b"vectors"
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "rename", "fsync"], events
    assert events[0][1].startswith(str(tmp_path / ".gallery.idx."))  # the temporary's data
    assert events[2][1] == str(tmp_path)  # then the folder's new entry


def test_atomic_writes_keep_the_usual_permissions(tmp_path: Path) -> None:
    """A writer that makes its file anew (safetensors makes it 0600) leaves it as readable as
    the run's other files: 0666 less the umask."""
    import torch
    from safetensors.torch import save_file

    from facecnn.fileio import atomic_write

    umask = os.umask(0o022)
    try:
        path = tmp_path / "model.safetensors"
        atomic_write(path, lambda tmp: save_file({"w": torch.zeros(2)}, str(tmp)))
        assert path.stat().st_mode & 0o777 == 0o644
        atomic_write(path, lambda tmp: save_file({"w": torch.ones(2)}, str(tmp)), mode=0o600)
        assert path.stat().st_mode & 0o777 == 0o600  # asked for
    finally:
        os.umask(umask)
