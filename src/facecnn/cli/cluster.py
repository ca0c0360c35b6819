"""The photo-library commands of `facecnn`: cluster (unlabelled faces into people, the ones a
gallery knows named) and search (where else a face appears, or who enrolled looks like it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from facecnn.cli.options import (
    CROPS,
    DETECTOR,
    DEVICE,
    FACE_BATCH_SIZE,
    FLIP,
    JSON,
    LANDMARKS,
    MIN_QUALITY,
    MIN_SIZE,
    QUIET,
    UPSAMPLE,
    WORKERS,
    embedder_option,
    gallery_option,
)
from facecnn.cluster.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.embedders import DEFAULT_EMBEDDER
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.terminal import console, err_console, reporter_for

THRESHOLD = typer.Option(None, help="Distance under which two faces are one person (default: "
                         "the embedder's, e.g. dlib's 0.6).")


def _pipeline(config: PipelineConfig):
    from facecnn.faces.pipeline import FacePipeline

    return FacePipeline.from_config(config)


def cluster(
    photos: List[Path] = typer.Argument(..., help="Photos or folders of photos (recursively)."),
    out: Path = typer.Option(..., help="Folder for the clusters: new, empty, or one an earlier "
                             "run wrote (which is then updated: new photos join its clusters)."),
    algorithm: str = typer.Option(DEFAULT_ALGORITHM, help=ALGORITHMS.describe() + "."),
    threshold: Optional[float] = THRESHOLD,
    min_faces: int = typer.Option(3, min=1, help="Smaller groups stay unsorted."),
    min_quality: float = MIN_QUALITY,
    copy: bool = typer.Option(False, "--copy", help="Copy the source photos into the cluster "
                              "folders instead of linking them."),
    gallery: Optional[GalleryLocation] = gallery_option(
        None, "Name the faces of the people enrolled here (at its threshold) and cluster the "
        "rest; its embedder must be --embedder's."),
    embedder: str = embedder_option(),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    flip: bool = FLIP,
    batch_size: int = FACE_BATCH_SIZE,
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Group every face of a photo library by person: OUT/cluster_001/ ... (face crops, links
    to the photos), a contact sheet per cluster, OUT/index.html and OUT/clusters.json.
    With --gallery, a known person's faces go to OUT/<person>/."""
    from facecnn.cluster.library import VIDEOS_HINT
    from facecnn.cluster.output import CLUSTERS, INDEX, check_out
    from facecnn.cluster.workflow import cluster_photos
    from facecnn.faces.pipeline import NO_FACE

    ALGORITHMS.get(algorithm)
    check_out(out)  # before any model loads
    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops, embedder=embedder, flip=flip,
                            batch_size=batch_size, device=device, workers=workers)
    report = cluster_photos(photos, out, _pipeline(config),
                            algorithm=algorithm, threshold=threshold, min_size=min_faces,
                            min_quality=min_quality,
                            copy=copy, gallery=gallery, reporter=reporter_for(quiet or as_json))
    for name in report.left_alone:
        err_console.print(f"left alone (not written by facecnn): {out / name}",
                          highlight=False)
    if report.videos:
        err_console.print(f"left out {len(report.videos)} videos ({VIDEOS_HINT}): "
                          f"{', '.join(report.videos)}", highlight=False)
    if as_json:
        print(json.dumps({"out": str(out), "photos": report.photos,
                          "embedded": report.embedded, "faces": report.faces,
                          "threshold": report.threshold, "unsorted": report.unsorted,
                          "known": report.known, "no_face": report.no_face,
                          "videos_left_out": report.videos,
                          "min_quality": report.min_quality,
                          "low_quality": report.low_quality,
                          "clusters": [{"cluster": g.cluster, "name": g.person,
                                        "folder": g.folder, "size": g.size,
                                        "cohesion": g.cohesion} for g in report.clusters]},
                         indent=2))
        return
    named = sum(1 for g in report.clusters if g.person)
    poor = (f" ({len(report.low_quality)} of them under quality {report.min_quality:g})"
            if report.low_quality else "")
    known = f", {named} of them named ({report.known} faces from the gallery now)" \
        if gallery is not None else ""
    faceless = sum(why == NO_FACE for why in report.no_face.values())
    unreadable = (f", {len(report.no_face) - faceless} unreadable or not images: --json "
                  "says why" if len(report.no_face) > faceless else "")
    console.print(f"{report.faces} faces in {report.photos} photos ({report.embedded} "
                  f"embedded now, {faceless} without a face{unreadable}): "
                  f"{len(report.clusters)} clusters{known}, {report.unsorted} faces "
                  f"unsorted{poor} (threshold {report.threshold:g}) -> {out / INDEX}, "
                  f"{out / CLUSTERS}", highlight=False)


def search(
    face: Path = typer.Argument(..., help="A photo of the face to look for (its largest face)."),
    inputs: Optional[List[Path]] = typer.Option(None, "--in", help="Photos or folders to "
                                                "search (repeat for several)."),
    gallery: Optional[GalleryLocation] = gallery_option(
        None, "Or search the faces enrolled here (its FAISS index)."),
    top: int = typer.Option(20, min=1, help="How many faces to list."),
    cache: Optional[Path] = typer.Option(None, help="--in: the vector cache to use and extend: "
                                         "a `facecnn cluster` output folder, or an .npz file "
                                         "(default: one per library in ~/.cache/facecnn)."),
    embedder: Optional[str] = embedder_option(None, f"Default: {DEFAULT_EMBEDDER}, or with "
                                              "--gallery the gallery's."),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    flip: bool = FLIP,
    batch_size: int = FACE_BATCH_SIZE,
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """The faces nearest to a face, nearest first: in a photo library (file, box, distance)
    or among a gallery's enrolled faces (person, source, distance)."""
    if (not inputs) == (gallery is None):
        raise FacecnnError("give exactly one of --in PHOTOS and --gallery DB")
    if gallery is not None and cache is not None:
        raise FacecnnError("--cache is the --in library's: a gallery is searched by its index")
    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops, embedder=embedder, flip=flip,
                            batch_size=batch_size, device=device, workers=workers)
    if gallery is not None:
        _search_gallery(face, gallery, top, config, as_json)
        return
    from rich.table import Table

    from facecnn.cluster.search import search_faces

    hits = search_faces(face, inputs, _pipeline(config.but(embedder=embedder or DEFAULT_EMBEDDER)),
                        top=top,
                        cache=cache, reporter=reporter_for(quiet or as_json))
    if as_json:
        print(json.dumps([hit.as_dict() for hit in hits], indent=2))
        return
    table = Table("distance", "file", "box")
    for hit in hits:
        table.add_row(f"{hit.distance:.4f}", hit.file,
                      ", ".join(f"{v:.0f}" for v in hit.box))
    console.print(table)


def _search_gallery(face: Path, gallery: GalleryLocation, top: int, config: PipelineConfig,
                    as_json: bool) -> None:
    """search --gallery: with the gallery's embedder unless --embedder says otherwise."""
    from rich.table import Table

    from facecnn.cluster.search import search_gallery
    from facecnn.faces.gallery import open_gallery

    with open_gallery(gallery) as enrolled:
        hits = search_gallery(face, enrolled,
                              _pipeline(config.but(embedder=config.embedder or enrolled.embedder)),
                              top)
    if as_json:
        print(json.dumps([hit.as_dict() for hit in hits], indent=2))
        return
    table = Table("distance", "person", "source")
    for hit in hits:
        table.add_row(f"{hit.distance:.4f}", hit.person, hit.source or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    for command in (cluster, search):
        app.command()(command)
