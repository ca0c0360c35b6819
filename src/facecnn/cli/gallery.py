"""`facecnn gallery ...`: look into, edit and copy a gallery made by `facecnn enroll`, in a
SQLite file or a PostgreSQL database alike; turn a `facecnn cluster` cluster into a person
(name), fix people who are two (split) or one under two names (merge), and one wrong face
(faces, forget, move)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from rich.table import Table

from facecnn.cli.options import GALLERY_VALUE, JSON, gallery_argument
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.terminal import console

if TYPE_CHECKING:
    from facecnn.faces.refit import Refit

gallery_app = typer.Typer(help="List, rename, remove, merge, split or copy the people of a "
                          "gallery; list, forget or move one face; name a cluster of `facecnn "
                          "cluster`.", no_args_is_help=True)
GALLERY = gallery_argument()
FACE_IDS = typer.Argument(..., metavar="FACE...", help="Face ids, from `facecnn gallery faces`.")
CLUSTERS = typer.Option(None, "--clusters", help="The `facecnn cluster` folder the person was "
                        "named from: its folders follow the edit, and reruns keep it.")


@gallery_app.command("list")
def gallery_list(gallery: GalleryLocation = GALLERY, as_json: bool = JSON) -> None:
    """People and their face counts."""
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.result import json_number

    with open_gallery(gallery) as g:
        people = g.people()
        info = {"embedder": g.embedder, "threshold": json_number(g.threshold),
                "threshold_source": g.threshold_source, "target_far": g.target_far,
                "people": [{"name": n, "faces": c} for n, c in people]}
        where = g.location
    if as_json:
        print(json.dumps(info, indent=2))
        return
    threshold = "none" if info["threshold"] is None else (
        f"{info['threshold']:.4f}, {info['threshold_source']}"
        + (f" for {info['target_far']:.1%} of strangers" if info["target_far"] is not None else ""))
    table = Table("person", "faces", title=f"{where} ({info['embedder']}, threshold {threshold})")
    for name, faces in people:
        table.add_row(name, str(faces))
    console.print(table)


@gallery_app.command("index")
def gallery_index(gallery: GalleryLocation = GALLERY,
                  exact_limit: int = typer.Option(50_000, help="Exact search up to this many "
                                                  "faces, IVF above.")) -> None:
    """Build or refresh the gallery's FAISS index, a cache of the database.

    It lies beside a SQLite file, and in the cache folder for a PostgreSQL gallery.
    """
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.index import GalleryIndex

    with open_gallery(gallery) as g:
        index = GalleryIndex.for_gallery(g, exact_limit=exact_limit)
        cached = g.cache_path
    console.print(f"{index.kind} index of {len(index)} faces: {cached}", highlight=False)


@gallery_app.command("rename")
def gallery_rename(gallery: GalleryLocation = GALLERY, old: str = typer.Argument(...),
                   new: str = typer.Argument(...)) -> None:
    """Rename a person."""
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        g.rename(old, new)
    console.print(f"renamed {old} to {new}")


@gallery_app.command("remove")
def gallery_remove(gallery: GalleryLocation = GALLERY, name: str = typer.Argument(...)) -> None:
    """Remove a person and all their faces."""
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.refit import refit_threshold

    with open_gallery(gallery) as g:
        removed = g.remove(name)
        refit = refit_threshold(g)
    console.print(f"removed {name} ({removed} faces); {_threshold(refit)}", highlight=False)


@gallery_app.command("copy")
def gallery_copy(source: GalleryLocation = typer.Argument(..., metavar="SRC", help=GALLERY_VALUE,
                                                          parser=GalleryLocation.of),
                 destination: GalleryLocation = typer.Argument(
                     ..., metavar="DST", help="Created if missing; must hold nobody yet.",
                     parser=GalleryLocation.of)) -> None:
    """Copy a gallery exactly, SQLite to PostgreSQL or back (or any two of either).

    The vectors bit for bit, the names, photo hashes, crop and threshold.
    """
    from facecnn.faces.gallery import copy_gallery

    people, faces = copy_gallery(source, destination)
    console.print(f"copied {people} people ({faces} faces) from {source} to {destination}",
                  highlight=False)


@gallery_app.command("name")
def gallery_name(gallery: GalleryLocation = gallery_argument(GALLERY_VALUE +
                                                            " Created if missing."),
                 cluster: Path = typer.Argument(..., help="A cluster's folder in a `facecnn "
                                                "cluster` output: people/cluster_007."),
                 name: str = typer.Option(..., "--as", help="The person they are (added to "
                                          "if enrolled already)."),
                 as_json: bool = JSON) -> None:
    """Enrol a cluster of `facecnn cluster` as a person.

    Its cached vectors are added in one transaction (naming it again adds nothing), and the
    name is recorded in its folder: people/cluster_007 becomes people/NAME/, and later
    `facecnn cluster` runs keep it.
    """
    from facecnn.cluster.edits import name_cluster

    added = name_cluster(cluster.parent, cluster.name, gallery, name)
    if as_json:
        print(json.dumps({"cluster": cluster.name, "name": name, "added": added}))
        return
    console.print(f"{cluster.name} is {name}: {added} faces added to {name}", highlight=False)


@gallery_app.command("merge")
def gallery_merge(gallery: GalleryLocation = GALLERY,
                  name: str = typer.Argument(..., help="The person who stays."),
                  others: List[str] = typer.Argument(..., help="The same person under other "
                                                     "names: their faces move to NAME, and "
                                                     "they go."),
                  as_json: bool = JSON) -> None:
    """Merge people who are one person (one transaction)."""
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.refit import refit_threshold

    with open_gallery(gallery) as g:
        moved = g.merge(name, others)
        refit = refit_threshold(g)
    if as_json:
        print(json.dumps({"name": name, "merged": others, "moved": moved}))
        return
    console.print(f"merged {', '.join(others)} into {name} ({moved} faces moved); "
                  f"{_threshold(refit)}", highlight=False)


@gallery_app.command("split")
def gallery_split(gallery: GalleryLocation = GALLERY, name: str = typer.Argument(...),
                  clusters: int = typer.Option(2, min=2, help="How many people NAME is."),
                  names: Optional[List[str]] = typer.Option(None, "--as", help="Names for the "
                                                            "new people, biggest group first "
                                                            "(repeat; default NAME_2, "
                                                            "NAME_3...)."),
                  as_json: bool = JSON) -> None:
    """Split a person who is several people.

    NAME's faces are grouped by k-means (scikit-learn); the biggest group keeps the name, the
    others become new people (one transaction). Prints where each face went.
    """
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.refit import refit_threshold

    with open_gallery(gallery) as g:
        found = g.split(name, clusters, names or None)
        refit_threshold(g)
    if as_json:
        print(json.dumps({person: {"faces": len(sources), "sources": sources}
                          for person, sources in found.items()}, indent=2))
        return
    table = Table("person", "faces", "sources")
    for person, sources in found.items():
        table.add_row(person, str(len(sources)), ", ".join(str(s) for s in sources))
    console.print(table)


@gallery_app.command("faces")
def gallery_faces(gallery: GalleryLocation = GALLERY, name: str = typer.Argument(...),
                  thumbnails: Optional[Path] = typer.Option(
                      None, "--thumbnails", help="Write each face's thumbnail here, as "
                      "NAME-ID.jpg (created if missing; a different file in the way is an "
                      "error)."),
                  as_json: bool = JSON) -> None:
    """A person's faces: id, photo, box in the photo, when enrolled.

    The ids are what `gallery forget` and `gallery move` take.
    """
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        faces = g.faces_of(name)
        images = {f.id: g.thumbnail(name, f.id) for f in faces} if thumbnails else {}
    written = _write_thumbnails(thumbnails, name, images) if thumbnails else {}
    rows = [{**f.to_dict(), "thumbnail": written.get(f.id)} for f in faces]
    if as_json:
        print(json.dumps({"name": name, "faces": rows}, indent=2))
        return
    table = Table("id", "photo", "box", "enrolled (UTC)", *(["thumbnail"] if thumbnails else []),
                  title=f"{name}: {len(faces)} faces")
    for row in rows:
        box = "-" if row["box"] is None else ", ".join(map(str, row["box"]))
        when = (row["created"] or "-")[:16].replace("T", " ")  # to the minute, UTC
        table.add_row(str(row["id"]), str(row["source"] or "-"), box, when,
                      *([row["thumbnail"] or "none kept"] if thumbnails else []))
    console.print(table)


def _write_thumbnails(folder: Path, name: str, images: dict[int, bytes | None]
                      ) -> dict[int, str]:
    """id -> the file written, for the faces with a thumbnail; a file already there with
    other bytes stops it before anything is written."""
    from facecnn.errors import FacecnnError
    from facecnn.fileio import write_bytes_atomic

    targets = {face: folder / f"{name}-{face}.jpg" for face, data in images.items() if data}
    for face, path in targets.items():
        if path.exists() and (not path.is_file() or path.read_bytes() != images[face]):
            raise FacecnnError(f"{path} exists and is not this face's thumbnail: give another "
                               "--thumbnails folder")
    folder.mkdir(parents=True, exist_ok=True)
    for face, path in targets.items():
        write_bytes_atomic(path, images[face])
    return {face: str(path) for face, path in targets.items()}


@gallery_app.command("forget")
def gallery_forget(gallery: GalleryLocation = GALLERY,
                   name: str = typer.Argument(..., help="Whose faces they are."),
                   faces: List[int] = FACE_IDS, clusters: Optional[Path] = CLUSTERS,
                   as_json: bool = JSON) -> None:
    """Take wrong faces from a person (one transaction); a person left with none goes."""
    from facecnn.cluster.edits import forget_faces
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        gone = forget_faces(g, name, faces, clusters)
    if as_json:
        print(json.dumps({"name": name, "forgotten": [f.to_dict() for f in gone]}, indent=2))
        return
    console.print(f"forgot {len(gone)} of {name}'s faces: "
                  f"{', '.join(f'{f.id} ({f.source})' for f in gone)}", highlight=False)


@gallery_app.command("move")
def gallery_move(gallery: GalleryLocation = GALLERY,
                 name: str = typer.Argument(..., help="Whose faces they are now."),
                 faces: List[int] = FACE_IDS,
                 to: str = typer.Option(..., "--to", help="Whose faces they are (created if "
                                        "new)."),
                 clusters: Optional[Path] = CLUSTERS, as_json: bool = JSON) -> None:
    """Move faces from one person to another (one transaction).

    A person left with no face goes.
    """
    from facecnn.cluster.edits import move_faces
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        moved = move_faces(g, name, faces, to, clusters)
    if as_json:
        print(json.dumps({"name": name, "to": to, "moved": [f.to_dict() for f in moved]},
                         indent=2))
        return
    console.print(f"moved {len(moved)} faces from {name} to {to}: "
                  f"{', '.join(f'{f.id} ({f.source})' for f in moved)}", highlight=False)


def _threshold(refit: Refit) -> str:
    return f"threshold {refit.threshold:.4f} ({refit.source})"


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
