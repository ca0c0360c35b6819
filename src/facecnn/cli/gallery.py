"""`facecnn gallery ...`: look into and edit a gallery made by `facecnn enroll`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from facecnn.cli.options import JSON
from facecnn.terminal import console

gallery_app = typer.Typer(help="List, rename or remove the people of a gallery.",
                          no_args_is_help=True)


@gallery_app.command("list")
def gallery_list(gallery: Path = typer.Argument(...),
                 as_json: bool = JSON) -> None:
    """People and their face counts."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        people = g.people()
        info = {"embedder": g.embedder, "threshold": g.threshold,
                "people": [{"name": n, "faces": c} for n, c in people]}
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table("person", "faces", title=f"{gallery} ({info['embedder']}, threshold "
                  f"{info['threshold']})")
    for name, faces in people:
        table.add_row(name, str(faces))
    console.print(table)


@gallery_app.command("index")
def gallery_index(gallery: Path,
                  exact_limit: int = typer.Option(50_000, help="Exact search up to this many "
                                                  "faces, IVF above.")) -> None:
    """Build or refresh the FAISS index beside the gallery (a cache of the database)."""
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.index import GalleryIndex

    with Gallery.open(gallery) as g:
        index = GalleryIndex.for_gallery(g, exact_limit=exact_limit)
    console.print(f"{index.kind} index of {len(index)} faces: {gallery}.faiss", highlight=False)


@gallery_app.command("rename")
def gallery_rename(gallery: Path, old: str, new: str) -> None:
    """Rename a person."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        g.rename(old, new)
    console.print(f"renamed {old} to {new}")


@gallery_app.command("remove")
def gallery_remove(gallery: Path, name: str) -> None:
    """Remove a person and all their faces."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        removed = g.remove(name)
    console.print(f"removed {name} ({removed} faces)")


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
