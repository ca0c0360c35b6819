"""Cluster folders a killed run or edit left half-written are made whole by the next one: an
edit's moves are finished from its journal (cluster/journal.py), dead writers' temporaries
are cleared before anything is judged foreign, and no crop outlives its photo.

A kill is a file move that raises part-way through an edit, in this process: nothing after it
runs (no cleanup catches a BaseException), as after kill -9. The rerun is the real command."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from facecnn.cluster import edits
from facecnn.cluster.cache import LibraryCache
from helpers import CliResult, invoke_cli, write_photos
from test_cluster import FAST

pytestmark = pytest.mark.e2e

OWN = {"cache.npz", ".lock"}  # the files of the folder its cache does not list


class Killed(BaseException):
    """What kill -9 does to a Python process, for code that catches only Exception."""


def _crop(path: Path) -> bool:
    return path.suffix == ".jpg" and path.parent.name != ".photos"


def _cache(path: Path) -> bool:  # its temporary, renamed into place
    return path.name.startswith(".cache.npz.")


KILLS = {"moving its crops": (_crop, 1), "saving its cache": (_cache, 0)}


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    return write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 5))


@pytest.fixture()
def out(library: Path) -> Path:
    """people/, clustered: s1's faces and s2's in two clusters."""
    result = _cluster(library, library.parent / "people")
    assert "left alone" not in result.stderr, result.stderr
    return library.parent / "people"


def _cluster(library: Path, out: Path) -> CliResult:
    result = invoke_cli("cluster", str(library), "--out", str(out), *FAST, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return result


@contextmanager
def _killed_at(when: Callable[[Path], bool], skip: int = 0) -> Iterator[None]:
    """Kill (raise Killed) at the rename (os.replace) of the file after the first `skip`
    that `when` picks: a crop moved to another cluster's folder, say."""
    real, seen = os.replace, []

    def replace(source, target) -> None:
        if when(Path(source)):
            if len(seen) == skip:
                raise Killed
            seen.append(source)
        real(source, target)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(os, "replace", replace)
        yield


def _dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def _stale_temp(path: Path) -> Path:
    """What a writer killed in fileio.atomic_write leaves beside `path`."""
    temp = path.with_name(f".{path.name}.{_dead_pid()}.{secrets.token_hex(4)}.tmp")
    temp.write_bytes(b"half")
    return temp


def _clusters(out: Path) -> dict[str, dict]:
    return {e["cluster"]: e for e in json.loads((out / "clusters.json").read_text())}


def _cluster_of(out: Path, person: str) -> str:
    return next(c for c, e in _clusters(out).items() if e["cohesion"] is not None
                and {Path(f["file"]).parent.name for f in e["faces"]} == {person})


def _crops(folder: Path) -> dict[str, int]:
    """Crop file -> inode: the same crop moved keeps its inode, one cut again has another."""
    return {p.name: p.stat().st_ino for p in folder.glob("*.jpg")}


def _assert_whole(out: Path) -> None:
    """Every file in the folder is one its cache lists (none is taken for the user's), and
    every cluster's folder holds a crop per face."""
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*")
               if p.is_symlink() or not p.is_dir()}
    recipe = json.loads(str(np.load(out / "cache.npz")["recipe"]))
    assert set(LibraryCache.load(out / "cache.npz", recipe).written) == on_disk - OWN
    for entry in _clusters(out).values():
        assert len(list((out / entry["folder"]).glob("*.jpg"))) == entry["size"]


@pytest.mark.parametrize("kill", KILLS)
def test_a_killed_name_is_finished_by_naming_again(library: Path, out: Path, tmp_path: Path,
                                                   kill: str) -> None:
    cluster, gallery = _cluster_of(out, "s1"), str(tmp_path / "g.db")
    crops = _crops(out / cluster)
    with _killed_at(*KILLS[kill]):  # photo links and a crop moved; or none yet
        edits.name_cluster(out, cluster, gallery, "alice")
    assert (out / cluster).is_dir()

    again = invoke_cli("gallery", "name", gallery, str(out / cluster), "--as", "alice",
                       "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == 0  # the gallery had them from the first try
    entry = _clusters(out)[cluster]
    assert (entry["name"], entry["folder"], entry["size"]) == ("alice", "alice", len(crops))
    assert not (out / cluster).exists()
    assert _crops(out / "alice") == crops  # moved, none cut again
    _assert_whole(out)
    assert "not written by facecnn" not in _cluster(library, out).stderr


def test_a_killed_merge_is_finished_by_the_next_run(library: Path, out: Path) -> None:
    """...where a photo removed meanwhile leaves no crop, and the temporaries of a killed
    crop write in the cluster's folders are cleared."""
    keep, merged = _cluster_of(out, "s1"), _cluster_of(out, "s2")
    removed = next((out / merged).glob("1-*.jpg")).name  # the crop of s2/1.jpg
    size = _clusters(out)[keep]["size"] + _clusters(out)[merged]["size"] - 1
    crops = {**_crops(out / keep), **_crops(out / merged)}
    with _killed_at(_crop, 2):  # the photo links and two crops (names sorted: 1-* first) moved
        edits.merge_clusters(out, [keep, merged])
    assert (out / keep / removed).is_file() and (out / merged).is_dir()
    temps = [_stale_temp(out / keep / "5-0123abcd.jpg"),
             _stale_temp(out / keep / ".photos" / "5-0123abcd.jpg")]
    (library / "s2" / "1.jpg").unlink()

    assert "not written by facecnn" not in _cluster(library, out).stderr
    assert merged not in _clusters(out) and not (out / merged).exists()
    assert _clusters(out)[keep]["size"] == size
    assert not list(out.rglob(removed))
    assert _crops(out / keep) == {n: i for n, i in crops.items() if n != removed}
    assert not any(t.exists() for t in temps)
    _assert_whole(out)


def test_a_first_run_killed_saving_its_cache_is_run_again(library: Path) -> None:
    out = library.parent / "people"
    out.mkdir()
    (out / ".lock").touch()
    temp = _stale_temp(out / "cache.npz")  # all such a run leaves
    _cluster(library, out)
    assert not temp.exists()
    assert sum(e["size"] for e in _clusters(out).values()) == 8
    _assert_whole(out)
