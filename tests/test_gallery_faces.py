"""One face at a time in a gallery (gallery/faces.py), on SQLite and PostgreSQL alike: a
person's faces listed with photo, box and thumbnail; one forgotten, one moved to another
person (new or known), each in one transaction; refusals that change nothing; galleries of
schema 2 upgraded on open with their faces kept; boxes and thumbnails copied exactly."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from facecnn.errors import FacecnnError
from facecnn.faces.gallery import SCHEMA_VERSION, Gallery, copy_gallery
from facecnn.faces.thumbnails import SIDE, photo_thumbnails, thumbnail

DIM = 8


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (shade, shade, shade)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _filled(location: str) -> Gallery:
    """dora: 3 faces with boxes and thumbnails; eve: 2 faces without."""
    g = Gallery.create(location, "dlib", DIM)
    g.add("dora", _vectors(3, 0), [f"d{i}.jpg" for i in range(3)], ["h0", "h1", "h2"],
          [(10, 20, 50, 70), (0.4, 1.6, 30.2, 40.9), (5, 5, 9, 9)], [_jpeg(40), _jpeg(90), None])
    g.add("eve", _vectors(2, 1), ["e0.jpg", "e1.jpg"], ["h3", "h4"])
    return g


def test_faces_are_listed_with_photo_box_and_thumbnail(new_location: Callable[[], str]) -> None:
    with _filled(new_location()) as g:
        dora = g.faces_of("dora")
        assert [f.source for f in dora] == ["d0.jpg", "d1.jpg", "d2.jpg"]
        assert [f.box for f in dora] == [[10, 20, 50, 70], [0, 2, 30, 41], [5, 5, 9, 9]]
        assert [f.thumbnail for f in dora] == [True, True, False]
        assert all(f.person == "dora" and f.created for f in dora)
        assert dora[0].to_dict().keys() == {"id", "person", "source", "box", "created",
                                            "thumbnail"}
        with Image.open(io.BytesIO(g.thumbnail("dora", dora[1].id))) as shown:
            assert shown.size == (SIDE, SIDE) and 80 < np.asarray(shown).mean() < 100
        assert g.thumbnail("dora", dora[2].id) is None
        eve = g.faces_of("eve")
        assert [(f.box, f.thumbnail) for f in eve] == [(None, False), (None, False)]
        with pytest.raises(FacecnnError, match="'dora' has no face"):
            g.thumbnail("dora", eve[0].id)  # eve's face, asked for as dora's
        with pytest.raises(FacecnnError, match="no such person"):
            g.faces_of("nobody")


def test_one_face_forgotten_and_one_moved(new_location: Callable[[], str]) -> None:
    with _filled(new_location()) as g:
        d0, d1, d2 = g.faces_of("dora")
        vectors, owners, names = g.vectors()
        version = g.version()
        assert [f.id for f in g.forget("dora", [d1.id])] == [d1.id]
        assert [f.source for f in g.faces_of("dora")] == ["d0.jpg", "d2.jpg"]
        assert g.version() == version + 1
        assert not g.known_photos(["h1"])  # the photo may be enrolled again

        moved = g.move("dora", [d2.id], "eve")
        assert [(f.id, f.person) for f in moved] == [(d2.id, "eve")]
        assert [f.source for f in g.faces_of("eve")] == ["d2.jpg", "e0.jpg", "e1.jpg"]  # by id
        assert g.people() == [("dora", 1), ("eve", 3)]
        after, owners_after, _ = g.vectors()  # the vector moved with the face, unchanged
        assert any(np.array_equal(row, vectors[2]) for row in after[owners_after == 1])

        g.move("dora", [d0.id], "Frida Kahlo")  # a new person; dora, left faceless, goes
        assert g.people() == [("Frida Kahlo", 1), ("eve", 3)]


def test_refused_edits_change_nothing(new_location: Callable[[], str]) -> None:
    with _filled(new_location()) as g:
        d0, d1, _ = g.faces_of("dora")
        eve = g.faces_of("eve")
        before, version = g.people(), g.version()
        cases = [(lambda: g.forget("dora", [d0.id, eve[0].id]), "'dora' has no face"),
                 (lambda: g.forget("dora", []), "at least one face"),
                 (lambda: g.move("dora", [d0.id], "dora"), "'dora''s already"),
                 (lambda: g.move("dora", [d0.id], "Eve"), "looks like the existing person"),
                 (lambda: g.move("dora", [d0.id], "unknown"), "unknown"),
                 (lambda: g.move("nobody", [d0.id], "eve"), "no such person")]
        for edit, message in cases:
            with pytest.raises(FacecnnError, match=message):
                edit()
        assert g.people() == before and g.version() == version  # each one rolled back whole
        assert g.forget("dora", [d1.id, d1.id]) and len(g.faces_of("dora")) == 2  # once each


def _schema_2_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT);
            CREATE TABLE embeddings (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL
                REFERENCES people(id) ON DELETE CASCADE, vector BLOB NOT NULL, source TEXT,
                created TEXT, content_hash TEXT);
            CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash);
            INSERT INTO meta VALUES ('schema_version', '2'), ('embedder', 'dlib'),
                ('dim', '8'), ('crop', '{}');
            INSERT INTO people VALUES (1, 'ann', NULL);""")
        db.execute("INSERT INTO embeddings VALUES (1, 1, ?, 'a.jpg', NULL, 'h')",
                   (_vectors(1, 0)[0].tobytes(),))
    db.close()


def _schema_2_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for sql in ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
                    "CREATE TABLE people (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY "
                    "KEY, name TEXT UNIQUE NOT NULL, created TEXT)",
                    "CREATE TABLE embeddings (id BIGINT GENERATED BY DEFAULT AS IDENTITY "
                    "PRIMARY KEY, person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE "
                    "CASCADE, vector BYTEA NOT NULL, source TEXT, created TEXT, content_hash "
                    "TEXT)",
                    "CREATE UNIQUE INDEX embeddings_content ON embeddings(content_hash)",
                    "INSERT INTO meta VALUES ('schema_version', '2'), ('embedder', 'dlib'), "
                    "('dim', '8'), ('crop', '{}')",
                    "INSERT INTO people (name) VALUES ('ann')"]:
            db.execute(sql)
        db.execute("INSERT INTO embeddings (person_id, vector, source, content_hash) VALUES "
                   "(1, %s, 'a.jpg', 'h')", (_vectors(1, 0)[0].tobytes(),))


def test_schema_2_galleries_are_upgraded(new_location: Callable[[], str]) -> None:
    location = new_location()
    if location.startswith("postgresql://"):
        _schema_2_postgres(location)
    else:
        Path(location).parent.mkdir(parents=True)
        _schema_2_sqlite(Path(location))
    with Gallery.open(location) as g:
        (old,) = g.faces_of("ann")
        assert (old.source, old.box, old.thumbnail) == ("a.jpg", None, False)
        g.add("ann", _vectors(1, 1), ["b.jpg"], ["h2"], [(1, 2, 3, 4)], [_jpeg(10)])
        assert [f.box for f in g.faces_of("ann")] == [None, [1, 2, 3, 4]]
    with Gallery.open(location) as g:
        assert g.contents().meta  # opens cleanly a second time (upgraded once)
        assert g._store.read("SELECT value FROM meta WHERE key = 'schema_version'") == \
            [(str(SCHEMA_VERSION),)]


def test_copy_keeps_boxes_and_thumbnails(new_location: Callable[[], str],
                                         tmp_path: Path) -> None:
    source = new_location()
    _filled(source).close()
    target = str(tmp_path / "copy.db")
    copy_gallery(source, target)
    with Gallery.open(source) as a, Gallery.open(target) as b:
        for person in ("dora", "eve"):
            assert [(f.source, f.box, f.thumbnail) for f in a.faces_of(person)] == \
                [(f.source, f.box, f.thumbnail) for f in b.faces_of(person)]
        first = a.faces_of("dora")[0]
        assert b.thumbnail("dora", b.faces_of("dora")[0].id) == a.thumbnail("dora", first.id)


def test_thumbnails_show_the_face_with_a_margin(tmp_path: Path) -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:200] = 255  # a white "face" at (100, 50, 200, 150)
    with Image.open(io.BytesIO(thumbnail(image, (100, 50, 200, 150)))) as shown:
        pixels = np.asarray(shown.convert("L"), float)
    assert shown.size == (SIDE, SIDE)
    middle = slice(SIDE // 2 - 10, SIDE // 2 + 10)
    centre, edge = pixels[middle, middle].mean(), pixels[:8].mean()
    assert centre > 240 and edge < 20  # the face in the middle, the margin around it
    photo = tmp_path / "p.png"
    Image.fromarray(image).save(photo)
    made = photo_thumbnails([photo, photo, tmp_path / "gone.jpg"],
                            [(100, 50, 200, 150), (0, 0, 10, 10), (0, 0, 5, 5)])
    assert made[0] == thumbnail(image, (100, 50, 200, 150)) and made[1] and made[2] is None


def test_thumbnails_of_big_photos_are_cut_from_a_reduced_decode(tmp_path: Path) -> None:
    """A 2400 px JPEG with a 900 px face is decoded at an eighth of its size (draft mode), and
    its thumbnail is the one the full decode gives, up to JPEG noise."""
    from facecnn.data.decode import read_image, read_reduced

    ramp = np.linspace(0, 255, 2400, dtype=np.uint8)
    image = np.stack([np.add.outer(ramp // 2, ramp // 2).astype(np.uint8)] * 3, axis=2)
    photo = tmp_path / "big.jpg"
    Image.fromarray(image).save(photo, quality=95)
    box = (700, 800, 1600, 1700)
    reduced, factor = read_reduced(photo, 8)
    assert factor == 8 and reduced.shape == (300, 300, 3)
    (made,) = photo_thumbnails([photo], [box])
    with Image.open(io.BytesIO(made)) as a, \
            Image.open(io.BytesIO(thumbnail(read_image(photo), box))) as b:
        assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 3
