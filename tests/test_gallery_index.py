"""The FAISS index beside the gallery: same answers as Gallery.identify, a cache that is rebuilt
whenever the gallery changed, an approximate kind that keeps recall on large galleries, and the
Recognizer's live index that follows the gallery's change counter; the cache and the live index
on both stores (`new_location`), the index kinds on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from facecnn.errors import FacecnnError
from facecnn.faces import index as index_module
from facecnn.faces.detect import FaceDetector
from facecnn.faces.gallery import UNKNOWN, Gallery, Match
from facecnn.faces.index import FLAT, IVF, GalleryIndex
from facecnn.faces.namers import PersonDirections
from facecnn.faces.recognize import Recognizer
from facecnn.faces.result import Face
from helpers import invoke_cli

DIM = 128
THRESHOLD = 0.6


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _people(n: int, per_person: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Clustered faces: a random centre per person plus noise (same person ~0.5 apart)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n, DIM)))
    return {f"p{seed}_{i:04d}": _unit(c + 0.03 * rng.normal(size=(per_person, DIM)))
            for i, c in enumerate(centres)}


def _queries(faces: dict[str, np.ndarray], n: int, seed: int) -> np.ndarray:
    """Half fresh faces of enrolled people (some beyond the threshold), half strangers."""
    rng = np.random.default_rng(seed)
    known = np.stack([faces[name][0] for name in rng.choice(list(faces), n // 2)])
    noise = rng.uniform(0.01, 0.05, size=(len(known), 1))
    strangers = rng.normal(size=(n - len(known), DIM))
    return _unit(np.concatenate([_unit(known + noise * rng.normal(size=known.shape)),
                                 _unit(strangers)]))


@pytest.fixture()
def gallery(new_location: Callable[[], str]) -> Iterator[Gallery]:
    g = Gallery.create(new_location(), "dlib", DIM, metric="euclidean")  # what FAISS answers
    for name, faces in _people(40, 5).items():
        g.add(name, faces)
    yield g
    g.close()


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the indexes built from scratch (a cache hit or an append builds none)."""
    sizes: list[int] = []
    real = index_module.build_index

    def counting(vectors: np.ndarray, exact_limit: int = index_module.EXACT_LIMIT):
        sizes.append(len(vectors))
        return real(vectors, exact_limit)

    monkeypatch.setattr(index_module, "build_index", counting)
    return sizes


def _assert_same(index: GalleryIndex, gallery: Gallery, queries: np.ndarray) -> None:
    """Names, scores and distances all equal, not merely close."""
    assert index.identify(queries, THRESHOLD) == gallery.identify(queries, threshold=THRESHOLD)


def _files(gallery: Gallery) -> list[Path]:
    return [gallery.cache_path, Path(f"{gallery.cache_path}.json")]


def test_exact_index_answers_like_the_gallery(gallery: Gallery, builds: list[int]) -> None:
    faces = _people(40, 5)
    queries = _queries(faces, 200, seed=1)
    index = GalleryIndex.for_gallery(gallery)
    assert index.kind == FLAT and len(index) == 200 and builds == [200]
    assert all(p.is_file() for p in _files(gallery))
    matches = index.identify(queries, THRESHOLD)
    names = {m.name for m in matches}
    assert UNKNOWN in names and len(names) > 10  # both accepted and rejected faces
    _assert_same(index, gallery, queries)
    # an enrolled face is at distance ~0 from itself, not float32 noise (~1e-3) away
    assert index.identify(faces["p0_0007"][:1], THRESHOLD)[0].distance < 1e-6

    dist, who = index.search(queries[:5], k=3)
    assert dist.shape == who.shape == (5, 3) and (np.diff(dist, axis=1) >= 0).all()
    assert index.search(queries[:2], k=500)[0].shape == (2, 200)  # k capped at the rows

    assert GalleryIndex.for_gallery(gallery).identify(queries, THRESHOLD) == matches
    assert builds == [200]  # the second open trusted the saved files


def test_bad_input_is_a_user_error(gallery: Gallery, new_location: Callable[[], str]) -> None:
    index = GalleryIndex.for_gallery(gallery)
    with pytest.raises(FacecnnError, match="shape"):
        index.search(np.zeros((2, DIM + 1), np.float32))
    with pytest.raises(FacecnnError, match="threshold"):
        index.identify(np.zeros((1, DIM), np.float32), 0.0)
    with Gallery.create(new_location(), "dlib", DIM) as empty:
        with pytest.raises(FacecnnError, match="empty"):
            GalleryIndex.for_gallery(empty).identify(np.zeros((1, DIM), np.float32), THRESHOLD)


def test_index_follows_add_remove_rename(gallery: Gallery, builds: list[int]) -> None:
    old, new = _people(40, 5), _people(3, 5, seed=7)
    GalleryIndex.for_gallery(gallery)
    for name, faces in new.items():
        gallery.add(name, faces)
    index = GalleryIndex.for_gallery(gallery)
    assert builds == [200] and len(index) == 215  # the new faces were appended
    newcomer = next(iter(new))
    assert index.identify(new[newcomer], THRESHOLD)[0].name == newcomer
    _assert_same(index, gallery, _queries(new | old, 200, seed=2))

    gone = next(iter(old))
    gallery.remove(gone)
    index = GalleryIndex.for_gallery(gallery)
    assert builds == [200, 210] and gone not in index.names
    assert gone not in index.search(old[gone], k=20)[1]
    _assert_same(index, gallery, _queries(new | old, 200, seed=3))

    gallery.rename(newcomer, "renamed")
    index = GalleryIndex.for_gallery(gallery)
    assert len(builds) == 3
    assert {m.name for m in index.identify(new[newcomer], THRESHOLD)} == {"renamed"}


def test_stale_or_foreign_files_are_rebuilt(gallery: Gallery, builds: list[int]) -> None:
    faces = _people(40, 5)
    person = next(iter(faces))
    GalleryIndex.for_gallery(gallery)
    with Gallery.open(gallery.location) as other:  # another process renames behind our back
        other.rename(person, "someone")
    index = GalleryIndex.for_gallery(gallery)
    assert len(builds) == 2 and index.identify(faces[person], THRESHOLD)[0].name == "someone"

    faiss_file, sidecar = _files(gallery)
    foreign = faiss.IndexFlatL2(DIM)  # right size, wrong vectors, fingerprint left intact
    foreign.add(np.zeros((200, DIM), np.float32))
    faiss.write_index(foreign, str(faiss_file))
    index = GalleryIndex.for_gallery(gallery)
    assert len(builds) == 3 and index.identify(faces[person], THRESHOLD)[0].distance < 0.1

    faiss_file.write_bytes(b"not an index")
    GalleryIndex.for_gallery(gallery)
    sidecar.write_text("{")
    GalleryIndex.for_gallery(gallery)
    assert len(builds) == 5


def test_deleted_files_are_rebuilt(gallery: Gallery, builds: list[int]) -> None:
    queries = _queries(_people(40, 5), 50, seed=4)
    before = GalleryIndex.for_gallery(gallery).identify(queries, THRESHOLD)
    for path in _files(gallery):
        path.unlink()
    after = GalleryIndex.for_gallery(gallery).identify(queries, THRESHOLD)
    assert len(builds) == 2 and after == before
    mode = gallery.cache_mode  # the gallery file's own, or the user's alone (PostgreSQL)
    assert [p.stat().st_mode & 0o777 for p in _files(gallery)] == [mode, mode]
    assert not list(gallery.cache_path.parent.glob("*.tmp"))


def test_large_gallery_uses_ann_with_high_recall(tmp_path: Path, builds: list[int]) -> None:
    """Recall is measured on faces of enrolled people: a stranger's nearest face is an
    arbitrary far one, which IVF may miss, but both indexes still answer UNKNOWN."""
    faces = _people(400, 5, seed=5)
    mixed = _queries(faces, 200, seed=6)
    known = np.concatenate([_queries(faces, 200, seed=s)[:100] for s in (7, 8)])
    with Gallery.create(tmp_path / "big.db", "dlib", DIM, metric="euclidean") as g:
        for name, vectors in faces.items():
            g.add(name, vectors)
        ann = GalleryIndex.for_gallery(g, exact_limit=100)
        assert ann.kind == IVF and len(ann) == 2000
        exact = GalleryIndex.for_gallery(g)  # the kind changed: rebuilt as flat
        assert exact.kind == FLAT and builds == [2000, 2000]
        _assert_same(exact, g, mixed)
        reopened = GalleryIndex.for_gallery(g, exact_limit=100)
        assert reopened.kind == IVF and len(builds) == 3
    recall = np.mean(ann.search(known)[1][:, 0] == exact.search(known)[1][:, 0])
    assert recall >= 0.99
    agree = [a.name == e.name for a, e in zip(ann.identify(mixed, THRESHOLD),
                                              exact.identify(mixed, THRESHOLD))]
    assert np.mean(agree) >= 0.99
    assert np.array_equal(reopened.search(mixed)[1], ann.search(mixed)[1])


def test_ann_index_takes_appends_until_it_doubles(tmp_path: Path, builds: list[int]) -> None:
    faces = _people(100, 5, seed=9)
    names = list(faces)
    with Gallery.create(tmp_path / "g.db", "dlib", DIM, metric="euclidean") as g:
        for name in names[:40]:
            g.add(name, faces[name])
        assert GalleryIndex.for_gallery(g, exact_limit=100).kind == IVF
        g.add(names[40], faces[names[40]])
        index = GalleryIndex.for_gallery(g, exact_limit=100)
        assert builds == [200] and len(index) == 205  # appended to the trained lists
        assert [m.name for m in index.identify(faces[names[40]], THRESHOLD)] == [names[40]] * 5
        for name in names[41:]:
            g.add(name, faces[name])
        assert len(GalleryIndex.for_gallery(g, exact_limit=100)) == 500
        assert builds == [200, 500]  # 500 > 2 x 200 trained: rebuilt


def test_gallery_index_command(tmp_path: Path) -> None:
    """`facecnn gallery index` builds the cache beside the database from the CLI."""
    db = tmp_path / "cli.db"
    with Gallery.create(db, "dlib", 128, metric="euclidean") as g:
        g.add("ann", np.eye(128, dtype=np.float32)[:3])
        g.add("bob", np.eye(128, dtype=np.float32)[3:5])
    result = invoke_cli("gallery", "index", str(db), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "flat index of 5 faces" in result.stdout
    assert (tmp_path / "cli.db.faiss").is_file() and (tmp_path / "cli.db.faiss.json").is_file()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector("hog")  # never called: the tests hand the Recognizer vectors


def _recognizer(path: Path, detector: FaceDetector, **options) -> Recognizer:
    return Recognizer(gallery=path, detector=detector, workers=1, **options)


def _answers(recognizer: Recognizer, queries: np.ndarray) -> list[Match]:
    results = recognizer.name_embedded([Face((0, 0, 1, 1), vector=q) for q in queries])
    return [Match(r.name, r.distance, r.score) for r in results]


def test_recognizer_answers_like_the_gallery(gallery: Gallery, detector: FaceDetector,
                                             builds: list[int]) -> None:
    queries = _queries(_people(40, 5), 200, seed=10)
    nearest = _recognizer(gallery.location, detector, threshold=THRESHOLD)
    assert nearest.index.kind == FLAT and builds == [200]
    assert all(p.is_file() for p in _files(gallery))  # the cache was saved for next time
    want = gallery.identify(queries, threshold=THRESHOLD)
    assert {m.name for m in want} > {UNKNOWN}
    assert _answers(nearest, queries) == want


def test_recognizer_names_by_mean_direction_like_the_gallery(
        new_location: Callable[[], str], detector: FaceDetector) -> None:
    """A gallery of the new metric is named by each person's mean direction and each face's
    lead over the next person (40 people), kept current with writes from another
    connection."""
    people = _people(40, 5)
    with Gallery.create(new_location(), "dlib", DIM) as gallery:
        assert gallery.metric == "mean_direction_lead"
        for name, faces in people.items():
            gallery.add(name, faces)
        queries = _queries(people, 200, seed=10)
        recognizer = _recognizer(gallery.location, detector, threshold=THRESHOLD)
        assert isinstance(recognizer.namer, PersonDirections)
        want = gallery.identify(queries, threshold=THRESHOLD)
        assert {m.name for m in want} > {UNKNOWN}
        assert _answers(recognizer, queries) == want
        newcomer, faces = next(iter(_people(1, 5, seed=11).items()))
        gallery.add(newcomer, faces)
        assert {m.name for m in _answers(recognizer, faces)} == {newcomer}
        assert _answers(recognizer, queries) == gallery.identify(queries, threshold=THRESHOLD)


def test_recognizer_sees_other_writers_at_once(gallery: Gallery, detector: FaceDetector,
                                               builds: list[int]) -> None:
    """`gallery` is another connection than the Recognizer's, as another process would be."""
    old, new = _people(40, 5), _people(3, 5, seed=11)
    gallery.threshold = THRESHOLD
    recognizer = _recognizer(gallery.location, detector)
    queries = _queries(old | new, 100, seed=12)
    index = recognizer.index
    _answers(recognizer, queries)
    assert recognizer.index is index and builds == [200]  # nothing changed: nothing done

    for name, faces in new.items():
        gallery.add(name, faces)
    newcomer = next(iter(new))
    assert {m.name for m in _answers(recognizer, new[newcomer])} == {newcomer}
    assert recognizer.index is index and len(index) == 215 and builds == [200]  # appended
    assert _answers(recognizer, queries) == gallery.identify(queries)

    gallery.threshold = THRESHOLD / 2  # read fresh: no index work, stricter answers
    strict = _answers(recognizer, queries)
    assert recognizer.index is index and strict == gallery.identify(queries)
    assert sum(m.name == UNKNOWN for m in strict) > sum(
        m.name == UNKNOWN for m in gallery.identify(queries, threshold=THRESHOLD))
    gallery.threshold = THRESHOLD

    gone = next(iter(old))
    gallery.remove(gone)
    assert gone not in {m.name for m in _answers(recognizer, old[gone])}
    assert builds == [200, 210] and len(recognizer.index) == 210

    gallery.rename(newcomer, "renamed")
    assert {m.name for m in _answers(recognizer, new[newcomer])} == {"renamed"}
    assert len(builds) == 3
    gallery.add(newcomer, new[newcomer][:1])  # the old name again, appended after a rebuild
    assert _answers(recognizer, new[newcomer][:1])[0].name == newcomer
    assert len(builds) == 3 and _answers(recognizer, queries) == gallery.identify(queries)


def test_sync_appends_until_the_kind_or_lists_must_change(tmp_path: Path,
                                                          builds: list[int]) -> None:
    faces = _people(100, 5, seed=13)
    names = list(faces)
    with Gallery.create(tmp_path / "g.db", "dlib", DIM, metric="euclidean") as g:
        for name in names[:40]:
            g.add(name, faces[name])
        ivf = GalleryIndex.for_gallery(g, exact_limit=100)
        g.add(names[40], faces[names[40]])
        assert ivf.sync() is ivf and len(ivf) == 205 and builds == [200]
        for name in names[41:81]:
            g.add(name, faces[name])
        assert ivf.sync() is ivf and len(ivf) == 405  # reloaded in place: whoever holds it
        assert ivf.kind == IVF and builds == [200, 405]  # sees it; 405 > 2 x 200 trained

        flat = GalleryIndex.for_gallery(g, exact_limit=410)
        g.add(names[81], faces[names[81]])
        assert flat.sync() is flat and flat.kind == FLAT and len(builds) == 3
        g.add(names[82], faces[names[82]])
        assert flat.sync().kind == IVF and builds[-1] == 415  # past the exact limit
    with pytest.raises(ValueError, match="for_gallery"):
        GalleryIndex(faiss.IndexFlatL2(DIM), np.zeros(0), []).sync()


def test_version_counts_every_write_and_persists(new_location: Callable[[], str]) -> None:
    a, b = _people(2, 3, seed=14).values()
    path = new_location()
    with Gallery.create(path, "dlib", DIM, metric="euclidean") as g, Gallery.open(path) as other:
        assert g.version() == 0
        g.add("ann", a)
        g.add("ann", b[:1])
        g.threshold = THRESHOLD
        assert g.version() == 3 and g.rows().rewritten == 0  # only additions so far
        g.rename("ann", "anna")
        with pytest.raises(FacecnnError):
            g.remove("nobody")  # a failed write changes nothing, the counter included
        other.add("bob", b)  # another connection's write counts too
        assert (g.version(), g.rows().rewritten) == (5, 4)
        other.remove("bob")
    with Gallery.open(path) as g:
        rows = g.rows()
        assert (g.version(), rows.version, rows.rewritten) == (6, 6, 6)
        assert len(g.rows(after=int(rows.ids[1])).ids) == 2  # the newer rows only


def test_gallery_without_counters_still_works(tmp_path: Path, detector: FaceDetector,
                                              builds: list[int]) -> None:
    """A gallery written before the change counters existed has no meta rows for them."""
    faces = _people(10, 3, seed=15)
    path = tmp_path / "old.db"
    with Gallery.create(path, "dlib", DIM, metric="euclidean") as g:
        for name, vectors in faces.items():
            g.add(name, vectors)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key IN ('data_version', 'rewrite_version')")
    db.close()
    with Gallery.open(path) as g:
        assert g.version() == 0 and g.rows().rewritten == 0
        recognizer = _recognizer(path, detector, threshold=THRESHOLD)
        queries = _queries(faces, 20, seed=16)
        assert _answers(recognizer, queries) == g.identify(queries, threshold=THRESHOLD)
        g.rename("p15_0000", "first")
        assert g.version() == 1
        assert _answers(recognizer, faces["p15_0000"][:1])[0].name == "first"
        assert len(builds) == 2


def test_recognizer_works_where_the_cache_cannot_be_saved(
        gallery: Gallery, detector: FaceDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder (simulated: root may write anywhere) costs the cache, not answers."""
    def refuse(*args: object) -> None:
        raise PermissionError("read-only folder")

    monkeypatch.setattr(index_module, "_replace", refuse)
    with pytest.raises(PermissionError):
        GalleryIndex.for_gallery(gallery)  # `facecnn gallery index` must say it failed
    recognizer = _recognizer(gallery.location, detector, threshold=THRESHOLD)
    queries = _queries(_people(40, 5), 50, seed=17)
    assert _answers(recognizer, queries) == gallery.identify(queries, threshold=THRESHOLD)
    gallery.remove(next(iter(_people(40, 5))))  # a rebuild, in memory again
    assert _answers(recognizer, queries) == gallery.identify(queries, threshold=THRESHOLD)
    assert not any(p.exists() for p in _files(gallery))
