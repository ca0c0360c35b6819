"""The face gallery, in both stores (a SQLite file and a PostgreSQL database, through the
`new_location` fixture): enrolment, identification, calibration, persistence, concurrency; and
what only SQLite files have (foreign files, the version-1 upgrade)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facecnn.errors import FacecnnError
from facecnn.faces.calibration import calibrate_threshold, open_set_threshold
from facecnn.faces.gallery import SCHEMA_VERSION, UNKNOWN, Gallery, GalleryLocation
from helpers import HANG_GUARD

DIM = 128


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _centres(n: int, seed: int = 0) -> np.ndarray:
    return _unit(np.random.default_rng(seed).normal(size=(n, DIM)))


def _faces(centre: np.ndarray, n: int, seed: int, noise: float = 0.03) -> np.ndarray:
    """Faces of one person: the centre plus small noise (genuine ~0.5 apart, strangers ~1.4)."""
    return _unit(centre + noise * np.random.default_rng(seed).normal(size=(n, DIM)))


NAMES = ["alice", "bob", "carol"]


@pytest.fixture()
def gallery(new_location: Callable[[], str]) -> Iterator[Gallery]:
    """Three people, five faces each."""
    g = Gallery.create(new_location(), "dlib", DIM, {"size": 150, "margin": 0.25})
    for i, (name, centre) in enumerate(zip(NAMES, _centres(3))):
        g.add(name, _faces(centre, 5, seed=i))
    yield g
    g.close()


def raw_sql(location: str, sql: str, params: Sequence = ()) -> None:
    """One statement on a gallery's database behind facecnn's back, as a hand edit would."""
    if GalleryLocation.of(location).is_database:
        with psycopg.connect(location, autocommit=True) as db:
            db.execute(sql.replace("?", "%s"), params)
    else:
        with sqlite3.connect(location) as db:
            db.execute(sql, params)
        db.close()


def _people_in_new_process(location: str) -> list:
    code = ("import json, sys; from facecnn.faces.gallery import Gallery; "
            "print(json.dumps(Gallery.open(sys.argv[1]).people()))")
    out = subprocess.run([sys.executable, "-c", code, location], capture_output=True,
                         text=True, timeout=HANG_GUARD, check=True)
    return json.loads(out.stdout)


def test_create_add_people_vectors(new_location: Callable[[], str]) -> None:
    faces = [_faces(c, n, seed=n) for c, n in zip(_centres(2), (3, 2))]
    location = new_location()
    with pytest.raises(FacecnnError, match="invalid embedder/dim"):
        Gallery.create(location, "dlib", 0)
    assert not GalleryLocation.of(location).exists()  # bad arguments leave nothing behind
    with Gallery.create(location, "dlib", DIM, {"size": 150}) as g:
        assert (g.embedder, g.dim, g.crop, g.threshold) == ("dlib", DIM, {"size": 150}, None)
        assert g.add("zoe", faces[0], sources=["a.jpg", "b.jpg", "c.jpg"]) == 3
        assert g.add("adam", faces[1]) == 2
        assert g.people() == [("adam", 2), ("zoe", 3)]
        vecs, owners, names = g.vectors()
    assert names == ["adam", "zoe"]
    assert vecs.dtype == np.float32 and vecs.shape == (5, DIM)
    assert owners.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(vecs, np.concatenate([faces[1], faces[0]]))


def test_identify_by_either_metric(gallery: Gallery, new_location: Callable[[], str]) -> None:
    queries = np.concatenate([_faces(c, 2, seed=10 + i) for i, c in enumerate(_centres(3))])
    expected = [name for name in NAMES for _ in range(2)]
    vecs, owners, names = gallery.vectors()
    with Gallery.create(new_location(), "dlib", DIM, metric="euclidean") as old:
        for i, name in enumerate(names):
            old.add(name, vecs[owners == i])
        nearest = old.identify(queries, threshold=1.0)
    by_direction = gallery.identify(queries, threshold=1.0)
    assert gallery.metric == "mean_direction_lead"  # three people: no lead counts
    for matches in (nearest, by_direction):
        assert [m.name for m in matches] == expected
        assert all(m.score >= 0.5 and m.distance <= 1.0 for m in matches)
    # euclidean: the nearest enrolled face; mean_direction: the mean direction of the faces
    first = vecs[owners == 0].astype(np.float64)
    assert nearest[0].distance == pytest.approx(
        np.linalg.norm(first - queries[0], axis=1).min())
    direction = (first / np.linalg.norm(first, axis=1, keepdims=True)).mean(0)
    direction /= np.linalg.norm(direction)
    assert gallery.length == 1.4  # dlib's vectors' typical length: distances keep its scale
    assert by_direction[0].distance == pytest.approx(
        1.4 * np.linalg.norm(queries[0] / np.linalg.norm(queries[0]) - direction))


def test_unknown_face_and_scores(gallery: Gallery) -> None:
    stranger = _unit(np.random.default_rng(99).normal(size=(1, DIM)))
    vecs, owners, _ = gallery.vectors()
    alice = _unit(_unit(vecs[owners == 0]).mean(0, keepdims=True))  # her mean direction
    far, near = gallery.identify(np.concatenate([stranger, alice]), threshold=1.0)
    assert far.name == UNKNOWN and far.distance > 1.0 and far.score < 0.5
    assert near.name == "alice" and near.distance < 1e-6 and near.score == 1.0
    # Just beyond the threshold the rounded score must still read as rejected.
    (edge,) = gallery.identify(stranger, threshold=far.distance * (1 - 1e-7))
    assert edge.name == UNKNOWN and edge.score < 0.5
    (at,) = gallery.identify(stranger, threshold=far.distance)
    assert at.name != UNKNOWN and at.score == 0.5


def test_identify_answers_do_not_depend_on_the_batch(gallery: Gallery) -> None:
    """A face's distance is the same alone or among others (a matrix product would differ in
    the last bits), so every search path can report the very same number."""
    rng = np.random.default_rng(5)
    queries = _unit(np.concatenate([gallery.vectors()[0] + 0.02 * rng.normal(size=(15, DIM)),
                                    rng.normal(size=(15, DIM))]))
    together = gallery.identify(queries, threshold=1.0)
    assert [gallery.identify(q[None], threshold=1.0)[0] for q in queries] == together


def test_identify_needs_a_threshold_and_people(gallery: Gallery,
                                               new_location: Callable[[], str]) -> None:
    with pytest.raises(FacecnnError, match="no threshold"):
        gallery.identify(gallery.vectors()[0][:1])
    with pytest.raises(FacecnnError, match="shape"):
        gallery.identify(np.zeros((1, DIM + 1)), threshold=1.0)
    with Gallery.create(new_location(), "dlib", DIM) as empty:
        with pytest.raises(FacecnnError, match="empty"):
            empty.identify(np.zeros((1, DIM)), threshold=1.0)


def test_calibrate_separates_clusters_and_persists(new_location: Callable[[], str]) -> None:
    path = new_location()
    with Gallery.create(path, "dlib", DIM) as g:
        for i, centre in enumerate(_centres(4, seed=1)):
            g.add(f"p{i}", _faces(centre, 6, seed=i))
        report = g.calibrate(target_far=0.01)
    t = report["threshold"]
    assert report["genuine"]["max"] < t < report["impostor"]["min"]
    assert report["far"] == 0.0 and report["frr"] == 0.0
    assert report["pairs"] == {"genuine": 24, "impostor": 24}
    with Gallery.open(path) as g:
        assert g.threshold == t
        assert [m.name for m in g.identify(g.vectors()[0][::6])] == ["p0", "p1", "p2", "p3"]


def test_calibrate_needs_two_people_and_a_pair(new_location: Callable[[], str]) -> None:
    with Gallery.create(new_location(), "dlib", DIM) as g:
        centres = _centres(2)
        g.add("solo", _faces(centres[0], 3, seed=0))
        with pytest.raises(FacecnnError, match="two people"):
            g.calibrate()
        g.remove("solo")
        g.add("a", centres[:1])
        g.add("b", centres[1:])
        with pytest.raises(FacecnnError, match="two or more faces"):
            g.calibrate()


def test_calibrate_threshold_rules() -> None:
    # Separated classes: the middle of the gap between them.
    assert calibrate_threshold(np.array([0.2, 0.3, 0.4]), np.array([0.8, 0.9]), 0.01) == \
        pytest.approx(0.6)
    genuine, impostor = np.array([0.2, 0.4, 0.6, 0.8]), np.array([0.5, 0.9, 1.0, 1.1])
    # FAR 0 allowed only below the first impostor: half the genuine faces are rejected.
    assert calibrate_threshold(genuine, impostor, 0.0) == pytest.approx(0.45)
    # FAR up to 25% lets every genuine face in.
    assert calibrate_threshold(genuine, impostor, 0.25) == pytest.approx(0.85)
    # No threshold reaches the target: fall back to the fewest errors overall.
    assert calibrate_threshold(np.array([0.5, 0.6]), np.array([0.1, 0.9]), 0.0) == \
        pytest.approx(0.75)
    with pytest.raises(FacecnnError):
        calibrate_threshold(np.array([]), impostor, 0.01)


def test_open_set_threshold_leans_away_from_impostors() -> None:
    genuine = np.array([0.1, 0.12, 0.14])  # a tight genuine cluster...
    impostor = np.array([0.3, 0.6, 0.9])   # ...and impostors that spread far down
    empirical = calibrate_threshold(genuine, impostor, 0.01)
    assert empirical == pytest.approx(0.22)
    t = open_set_threshold(genuine, impostor, 0.01)
    assert 0.14 < t < empirical  # still accepts every genuine face, further from strangers
    spread_genuine = np.array([0.1, 0.2, 0.3, 0.5])
    tight_impostor = np.array([0.55, 0.6, 0.65])
    assert open_set_threshold(spread_genuine, tight_impostor, 0.01) == pytest.approx(
        calibrate_threshold(spread_genuine, tight_impostor, 0.01))


@pytest.mark.e2e
def test_writes_persist_across_processes(gallery: Gallery) -> None:
    assert _people_in_new_process(gallery.location) == [["alice", 5], ["bob", 5],
                                                        ["carol", 5]]
    gallery.add("dave", _centres(1, seed=5))
    assert gallery.remove("bob") == 5
    gallery.rename("carol", "Carol Smith")  # sorts first by code point, whatever the collation
    assert _people_in_new_process(gallery.location) == [["Carol Smith", 5], ["alice", 5],
                                                    ["dave", 1]]
    with pytest.raises(FacecnnError, match="no such person"):
        gallery.remove("bob")
    with pytest.raises(FacecnnError, match="already exists"):
        gallery.rename("alice", "dave")


def test_adding_a_person_leaves_others_untouched(gallery: Gallery) -> None:
    before, owners_before, names_before = gallery.vectors()
    gallery.add("aaron", _centres(1, seed=7))  # sorts first: every other index shifts
    after, owners, names = gallery.vectors()
    for i, name in enumerate(names_before):
        np.testing.assert_array_equal(after[owners == names.index(name)],
                                      before[owners_before == i])


def test_refuses_to_mix_embedders(gallery: Gallery) -> None:
    with pytest.raises(FacecnnError, match="made with embedder dlib.*refusing to mix"):
        Gallery.open_or_create(gallery.location, "facenet", DIM)
    with pytest.raises(FacecnnError, match="refusing to mix"):
        Gallery.open_or_create(gallery.location, "dlib", 512)
    with pytest.raises(FacecnnError, match="already exists"):
        Gallery.create(gallery.location, "dlib", DIM)
    with Gallery.open_or_create(gallery.location, "dlib", DIM) as same:
        assert same.crop == {"size": 150, "margin": 0.25}
        assert len(same.people()) == 3


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "", "  ", "\x07bell", "unknown",
                                  "Unknown", "x" * 101, " padded"])
def test_invalid_names_refused(gallery: Gallery, name: str) -> None:
    with pytest.raises(FacecnnError):
        gallery.add(name, _centres(1))
    with pytest.raises(FacecnnError):
        gallery.rename("alice", name)
    assert [n for n, _ in gallery.people()] == NAMES


def test_bad_vectors_refused(gallery: Gallery) -> None:
    bad = _centres(2)
    bad[1, 0] = np.nan
    for vectors in (bad, np.zeros((2, DIM - 1)), np.zeros(DIM), np.zeros((0, DIM))):
        with pytest.raises(FacecnnError):
            gallery.add("dave", vectors)
    assert "dave" not in dict(gallery.people())


def test_open_refuses_non_galleries(tmp_path: Path) -> None:
    with pytest.raises(FacecnnError, match="gallery not found"):
        Gallery.open(tmp_path / "missing.db")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    for path in (text, other):
        with pytest.raises(FacecnnError, match="not a facecnn gallery"):
            Gallery.open(path)
        with pytest.raises(FacecnnError, match="not a facecnn gallery"):
            Gallery.open_or_create(path, "dlib", DIM)
    assert text.read_text() == "not a database\n" * 100


def test_concurrent_writers_and_readers(gallery: Gallery) -> None:
    errors: list[BaseException] = []
    writers_done = threading.Event()
    centres = _centres(4, seed=3)

    def guarded(fn):
        def run(*args):
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - reported by the assert below
                errors.append(e)
        return run

    @guarded
    def write(i: int) -> None:
        # Half share the fixture's connection, half open their own (file-level locking).
        g = gallery if i % 2 else Gallery.open(gallery.location)
        for row in _faces(centres[i], 25, seed=i):
            g.add(f"writer{i}", row[None])
        if g is not gallery:
            g.close()

    @guarded
    def read() -> None:
        while not writers_done.is_set():
            assert len(gallery.identify(centres, threshold=1.0)) == 4

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    writers_done.set()
    for t in readers:
        t.join(timeout=60)
    assert errors == []
    counts = dict(gallery.people())
    assert [counts[f"writer{i}"] for i in range(4)] == [25] * 4
    assert sum(counts.values()) == 100 + 15
    assert [m.name for m in gallery.identify(centres, threshold=1.0)] == \
        [f"writer{i}" for i in range(4)]


def test_calibration_ignores_exact_duplicates(new_location: Callable[[], str]) -> None:
    """A folder enrolled twice without photo hashes (galleries before they existed) holds every
    vector twice: genuine distances of 0 must not drag the threshold down to nothing."""
    people = [_faces(c, 4, seed=i) for i, c in enumerate(_centres(3))]
    thresholds = []
    for copies in (1, 2):
        with Gallery.create(new_location(), "dlib", DIM) as g:
            for _ in range(copies):
                for name, faces in zip(NAMES, people):
                    g.add(name, faces)
            thresholds.append(g.calibrate()["threshold"])
    assert thresholds[1] == pytest.approx(thresholds[0]) and thresholds[0] > 0.1


def test_one_photo_is_one_face(gallery: Gallery) -> None:
    faces = _faces(_centres(1, seed=7)[0], 3, seed=7)
    hashes = ["h1", "h2", "h3"]
    assert gallery.add("dora", faces, hashes=hashes) == 3
    assert gallery.add("dora", faces, hashes=hashes) == 0  # the same photos again: no-op
    assert gallery.add("erin", faces[:1], hashes=["h1"]) == 0  # dora's photo is not erin's
    assert dict(gallery.people())["dora"] == 3 and "erin" not in dict(gallery.people())
    assert gallery.known_photos(["h1", "h9"]) == {"h1": "dora"}


def test_batch_writes_all_or_nothing(gallery: Gallery) -> None:
    version = gallery.version()
    with pytest.raises(RuntimeError):
        with gallery.batch():
            gallery.add("dora", _centres(2, seed=5))
            gallery.set_threshold(0.3, "manual")
            raise RuntimeError("killed half-way")
    assert "dora" not in dict(gallery.people()) and gallery.threshold is None
    assert gallery.version() == version
    with gallery.batch():
        gallery.add("dora", _centres(2, seed=5))
        gallery.set_threshold(0.3, "manual")
    assert dict(gallery.people())["dora"] == 2 and gallery.threshold_source == "manual"
    assert gallery.version() == version + 1  # one transaction, one change


@pytest.mark.parametrize("name", ["ali\u202ece", "al\u200bice", "\u0430lice", "ali\u00a0ce",
                                  "\ufeffalice", "\u0425ans Li"])
def test_look_alike_names_refused(gallery: Gallery, name: str) -> None:
    """Invisible, direction-changing and mixed-script names read as someone else's."""
    with pytest.raises(FacecnnError, match="invalid person name"):
        gallery.add(name, _centres(1))
    assert [n for n, _ in gallery.people()] == NAMES


def test_names_are_one_unicode_form(gallery: Gallery) -> None:
    decomposed, composed = "Jose\u0301", "Jos\u00e9"
    gallery.add(decomposed, _centres(1, seed=3))
    gallery.add(composed, _centres(1, seed=4))
    assert dict(gallery.people())[composed] == 2  # one person, stored in NFC
    with pytest.raises(FacecnnError, match="looks like the existing person 'alice'"):
        gallery.add("Alice", _centres(1, seed=5))
    with pytest.raises(FacecnnError, match="looks like the existing person 'bob'"):
        gallery.rename("carol", "BOB")
    gallery.rename("alice", "Alice")  # a person may change the case of their own name
    assert gallery.remove(decomposed) == 2  # found whichever form is typed
    with Gallery.open(gallery.location) as again:
        assert again.people()[0][0] == "Alice"
    for name in ("Дмитрий", "Ελένη", "山田 太郎", "Zoë"):  # one script each: fine
        gallery.add(name, _centres(1, seed=len(name)))


@pytest.mark.parametrize("key,value", [("dim", "abc"), ("dim", "-3"), ("crop", "{"),
                                       ("embedder", ""), ("schema_version", "two"),
                                       ("schema_version", "9"), ("threshold", "x"),
                                       ("threshold", "-1"), ("data_version", "lots")])
def test_hand_edited_meta_is_one_line(gallery: Gallery, key: str, value: str) -> None:
    gallery.threshold = 0.5
    raw_sql(gallery.location, "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                              "value = excluded.value", (key, value))
    with pytest.raises(FacecnnError) as caught:
        with Gallery.open(gallery.location) as g:
            g.threshold, g.version()
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_version_1_galleries_are_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT);
            CREATE TABLE embeddings (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL
                REFERENCES people(id) ON DELETE CASCADE, vector BLOB NOT NULL, source TEXT,
                created TEXT);
            INSERT INTO meta VALUES ('schema_version', '1'), ('embedder', 'dlib'),
                ('dim', '128'), ('crop', '{}'), ('threshold', '0.45');
            INSERT INTO people VALUES (1, 'alice', NULL);""")
        db.execute("INSERT INTO embeddings VALUES (1, 1, ?, 'a.jpg', NULL)",
                   (_centres(1)[0].tobytes(),))
    with Gallery.open(path) as g:
        assert g.people() == [("alice", 1)] and g.threshold == 0.45
        assert g.threshold_source == "calibrated"
        assert g.add("alice", _centres(2, seed=1), hashes=["p", "p2"]) == 2
        assert g.add("alice", _centres(1, seed=1), hashes=["p"]) == 0
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)


def test_an_older_gallery_keeps_its_metric(tmp_path: Path) -> None:
    """A gallery from before the metric was recorded compares faces as it always did (its
    threshold was chosen for that); a hand-edited metric fails in one line."""
    path = tmp_path / "old.db"
    with Gallery.create(path, "dlib", DIM) as g:
        g.add("alice", _faces(_centres(1)[0], 3, seed=0))
        assert g.metric == "mean_direction_lead"
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'metric'")
    with Gallery.open(path) as g:
        assert g.metric == "euclidean"
        vecs = g.vectors()[0]
        (match,) = g.identify(vecs[:1], threshold=1.0)
        assert match.distance < 1e-6  # its own enrolled face, not the mean direction
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('metric', 'cosine')")
    with pytest.raises(FacecnnError, match="metric") as error:
        Gallery.open(path)
    assert "\n" not in str(error.value)
