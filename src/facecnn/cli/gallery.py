"""`facecnn gallery ...`: look into, edit and copy a gallery made by `facecnn enroll`, in a
SQLite file or a PostgreSQL database alike."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from facecnn.cli.options import GALLERY_VALUE, JSON
from facecnn.terminal import console

gallery_app = typer.Typer(help="List, rename, remove or copy the people of a gallery.",
                          no_args_is_help=True)
GALLERY = typer.Argument(..., metavar="GALLERY", help=GALLERY_VALUE)


@gallery_app.command("list")
def gallery_list(gallery: str = GALLERY, as_json: bool = JSON) -> None:
    """People and their face counts."""
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        people = g.people()
        info = {"embedder": g.embedder, "threshold": g.threshold,
                "people": [{"name": n, "faces": c} for n, c in people]}
        where = g.location
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table("person", "faces", title=f"{escape(where)} ({info['embedder']}, threshold "
                  f"{info['threshold']})")
    for name, faces in people:
        table.add_row(name, str(faces))
    console.print(table)


@gallery_app.command("index")
def gallery_index(gallery: str = GALLERY,
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
def gallery_rename(gallery: str = GALLERY, old: str = typer.Argument(...),
                   new: str = typer.Argument(...)) -> None:
    """Rename a person."""
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        g.rename(old, new)
    console.print(f"renamed {old} to {new}")


@gallery_app.command("remove")
def gallery_remove(gallery: str = GALLERY, name: str = typer.Argument(...)) -> None:
    """Remove a person and all their faces."""
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as g:
        removed = g.remove(name)
    console.print(f"removed {name} ({removed} faces)")


@gallery_app.command("copy")
def gallery_copy(source: str = typer.Argument(..., metavar="SRC", help=GALLERY_VALUE),
                 destination: str = typer.Argument(..., metavar="DST", help="Created if "
                                                   "missing; must hold nobody yet.")) -> None:
    """Copy a gallery exactly, SQLite to PostgreSQL or back (or any two of either).

    The vectors bit for bit, the names, photo hashes, crop and threshold.
    """
    from facecnn.faces.gallery import copy_gallery, gallery_location

    people, faces = copy_gallery(source, destination)
    console.print(f"copied {people} people ({faces} faces) from "
                  f"{escape(gallery_location(source))} to "
                  f"{escape(gallery_location(destination))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
