"""One enrolled face at a time: what `gallery faces|forget|move`, the REST API and the web
page's People grid show and edit. Each face keeps its photo (`source`), its box in that photo
and a small JPEG thumbnail (faces/thumbnails.py), so a wrong face can be seen and fixed
without the photo at hand (a server's uploads are not kept; a PostgreSQL gallery's photos may
be on another machine). Faces enrolled before galleries kept them have neither (None).

The SQL runs inside the caller's transaction (core.Gallery opens it), on either store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.store import NotInGallery, Store

# what every listing reads, in this order (a gallery from before schema 3 has no box or
# thumbnail columns: it reads NULL in their place, see `columns`)
_COLUMNS = "e.id, p.name, e.source, e.created, e.content_hash, {box}, {thumb}"


@dataclass
class FaceEntry:
    """One enrolled face: its id (the gallery's, stable until it is forgotten), person, photo,
    box (x1, y1, x2, y2 in the photo's pixels), when it was enrolled, whether a thumbnail is
    stored, and its content hash (the photo's, or the photo's and the box's for the faces of
    a cluster: how a cluster folder finds it again)."""

    id: int
    person: str
    source: str | None
    created: str | None
    content_hash: str | None
    box: list[int] | None
    thumbnail: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `gallery faces --json` and the REST API (no content hash: internal)."""
        return {"id": self.id, "person": self.person, "source": self.source, "box": self.box,
                "created": self.created, "thumbnail": self.thumbnail}


def columns(stored: bool) -> str:
    """The SELECT list of a FaceEntry; `stored`: whether the gallery has box and thumbnail
    columns (schema 3)."""
    if stored:
        return _COLUMNS.format(box="e.box", thumb="e.thumbnail IS NOT NULL")
    return _COLUMNS.format(box="NULL", thumb="0 = 1")


def entry(row: tuple) -> FaceEntry:
    face, person, source, created, digest, box, thumbnail = row
    return FaceEntry(int(face), person, source, created, digest, _box(box), bool(thumbnail))


def box_text(box: Any) -> str | None:
    """A box as stored: JSON of four ints (None: not known)."""
    from facecnn.faces.result import json_box

    return None if box is None else json.dumps(json_box(box))


def _box(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        box = json.loads(text)
    except ValueError:
        box = None
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
        raise FacecnnError(f"a face's box holds {text!r}, not four integers (was the "
                           "embeddings table edited by hand?)")
    return box


def of_person(db: Store, stored: bool, person_id: int) -> list[FaceEntry]:
    """A person's faces, as enrolled (id order)."""
    return [entry(row) for row in db.execute(
        f"SELECT {columns(stored)} FROM embeddings e JOIN people p ON p.id = e.person_id "
        f"WHERE e.person_id = ? ORDER BY e.id", (person_id,))]


def chosen(db: Store, stored: bool, person: str, person_id: int,
           ids: list[int]) -> list[FaceEntry]:
    """The faces `ids` names, each checked to be `person`'s (one line naming the first that
    is not), in the order given, each once."""
    if not ids:
        raise FacecnnError("name at least one face (its id, from `facecnn gallery faces`)")
    faces = {f.id: f for f in of_person(db, stored, person_id)}
    wrong = next((i for i in ids if i not in faces), None)
    if wrong is not None:
        raise NotInGallery(f"{person!r} has no face {wrong} (see `facecnn gallery faces`)")
    return [faces[i] for i in dict.fromkeys(ids)]


def drop_if_faceless(db: Store, person_id: int) -> bool:
    """Remove a person left with no face (a gallery holds no one it cannot recognise);
    returns whether they went."""
    if db.execute("SELECT 1 FROM embeddings WHERE person_id = ?", (person_id,)).fetchone():
        return False
    db.execute("DELETE FROM people WHERE id = ?", (person_id,))
    return True
