"""The photo-library commands of `facecnn`: cluster (unlabelled faces into people) and search
(where else a face appears)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from facecnn.cli.options import (
    DETECTOR,
    DEVICE,
    FACE_BATCH_SIZE,
    FLIP,
    JSON,
    LANDMARKS,
    MIN_SIZE,
    QUIET,
    UPSAMPLE,
    WORKERS,
    detector_from_flags,
    embedder_from_flags,
    embedder_option,
)
from facecnn.cluster.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from facecnn.terminal import console, err_console, reporter_for

THRESHOLD = typer.Option(None, help="Distance under which two faces are one person (default: "
                         "the embedder's, e.g. dlib's 0.6).")


def _pipeline(detector: str, landmarks: str, upsample: int, min_size: int, embedder: str,
              flip: bool, batch_size: int, device: str, workers: int | None):
    from facecnn.faces.pipeline import FacePipeline

    return FacePipeline(detector_from_flags(detector, upsample, min_size, device, landmarks),
                        embedder_from_flags(embedder, landmarks, flip=flip, batch_size=batch_size,
                                  device=device), workers)


def cluster(
    photos: List[Path] = typer.Argument(..., help="Photos or folders of photos (recursively)."),
    out: Path = typer.Option(..., help="Folder for the clusters: new, empty, or one an earlier "
                             "run wrote (which is then updated: new photos join its clusters)."),
    algorithm: str = typer.Option(DEFAULT_ALGORITHM, help=ALGORITHMS.describe() + "."),
    threshold: Optional[float] = THRESHOLD,
    min_faces: int = typer.Option(3, min=1, help="Smaller groups stay unsorted."),
    copy: bool = typer.Option(False, "--copy", help="Copy the source photos into the cluster "
                              "folders instead of linking them."),
    embedder: str = embedder_option(),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    flip: bool = FLIP,
    batch_size: int = FACE_BATCH_SIZE,
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Group every face of a photo library by person: OUT/cluster_001/ ... (face crops, links
    to the photos), a contact sheet per cluster, OUT/index.html and OUT/clusters.json."""
    from facecnn.cluster.output import CLUSTERS, INDEX, check_out
    from facecnn.cluster.workflow import cluster_photos

    ALGORITHMS.get(algorithm)
    check_out(out)  # before any model loads
    report = cluster_photos(photos, out, _pipeline(detector, landmarks, upsample, min_size,
                                                   embedder, flip, batch_size, device, workers),
                            algorithm=algorithm, threshold=threshold, min_size=min_faces,
                            copy=copy, reporter=reporter_for(quiet or as_json))
    for name in report.left_alone:
        err_console.print(escape(f"left alone (not written by facecnn): {out / name}"),
                          highlight=False)
    if as_json:
        print(json.dumps({"out": str(out), "photos": report.photos,
                          "embedded": report.embedded, "faces": report.faces,
                          "threshold": report.threshold, "unsorted": report.unsorted,
                          "no_face": report.no_face,
                          "clusters": [{"cluster": g.name, "size": g.size,
                                        "cohesion": g.cohesion} for g in report.clusters]},
                         indent=2))
        return
    console.print(escape(f"{report.faces} faces in {report.photos} photos ({report.embedded} "
                         f"embedded now, {len(report.no_face)} without a face): "
                         f"{len(report.clusters)} clusters, {report.unsorted} faces unsorted "
                         f"(threshold {report.threshold:g}) -> {out / INDEX}, {out / CLUSTERS}"),
                  highlight=False)


def search(
    face: Path = typer.Argument(..., help="A photo of the face to look for (its largest face)."),
    inputs: List[Path] = typer.Option(..., "--in", help="Photos or folders to search (repeat "
                                      "for several)."),
    top: int = typer.Option(20, min=1, help="How many faces to list."),
    cache: Optional[Path] = typer.Option(None, help="The vector cache to use and extend: a "
                                         "`facecnn cluster` output folder, or an .npz file "
                                         "(default: one per library in ~/.cache/facecnn)."),
    embedder: str = embedder_option(),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    flip: bool = FLIP,
    batch_size: int = FACE_BATCH_SIZE,
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """The faces of a photo library nearest to a face (file, box, distance), nearest first."""
    from rich.table import Table

    from facecnn.cluster.search import search_faces

    hits = search_faces(face, inputs, _pipeline(detector, landmarks, upsample, min_size,
                                                embedder, flip, batch_size, device, workers),
                        top=top, cache=cache, reporter=reporter_for(quiet or as_json))
    if as_json:
        print(json.dumps([hit.as_dict() for hit in hits], indent=2))
        return
    table = Table("distance", "file", "box")
    for hit in hits:
        table.add_row(f"{hit.distance:.4f}", escape(hit.file),
                      ", ".join(f"{v:.0f}" for v in hit.box))
    console.print(table)


def register(app: typer.Typer) -> None:
    for command in (cluster, search):
        app.command()(command)
