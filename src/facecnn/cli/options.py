"""Every flag several commands share, declared once, so it is spelt, defaulted, limited and
explained the same everywhere. A flag whose default differs by command is a function of it."""

from __future__ import annotations

from typing import Any

import typer

from facecnn.faces.detectors import DEFAULT_DETECTOR, DEFAULT_MIN_SIZE, DETECTORS
from facecnn.faces.embedders import EMBEDDERS, spelling
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.faces.quality import DEFAULT_MIN_QUALITY

EMBEDDER_HELP = (f"{', '.join(spelling(e.name) for e in EMBEDDERS.entries())} (what each is: "
                 "`facecnn embedders`).")
SAME_VECTORS = "dlib and dlib_torch galleries are interchangeable (same vectors)."
GALLERY_VALUE = ("A SQLite file, or a postgresql://USER@HOST/DB URL (the password from the URL, "
                 "$PGPASSWORD or ~/.pgpass).")


def detector_option(default: str = DEFAULT_DETECTOR) -> Any:
    return typer.Option(default, help=f"{', '.join(DETECTORS.names())} (what each is: "
                        "`facecnn detectors`).")


def embedder_option(default: str | None = "dlib", help: str = EMBEDDER_HELP) -> Any:
    return typer.Option(default, help=help)


def gallery_option(default: str | None, help: str) -> Any:
    """--gallery, parsed once into a GalleryLocation (text, not a path: a URL is no path)."""
    return typer.Option(default, metavar="FILE|URL", help=f"{help} {GALLERY_VALUE}",
                        parser=GalleryLocation.of)


def gallery_argument(help: str = GALLERY_VALUE) -> Any:
    """A GALLERY argument, parsed as --gallery is."""
    return typer.Argument(..., metavar="GALLERY", help=help, parser=GalleryLocation.of)


def batch_size_option(default: int) -> Any:
    return typer.Option(default, min=1, help="Images per forward pass.")


DETECTOR = detector_option()
BATCH_SIZE = batch_size_option(64)  # images through a classifier
FACE_BATCH_SIZE = batch_size_option(32)  # face crops through an embedder
LANDMARKS = typer.Option("auto", help="auto: the detector's five points, else MTCNN's O-Net "
                         "(MIT), and dlib chips from dlib's 5-point model (CC0); dlib68: "
                         "dlib's 68-point model for both (iBUG 300-W: non-commercial).")
UPSAMPLE = typer.Option(1, min=0, help="Detector upsampling (finds smaller faces, slower).")
MIN_SIZE = typer.Option(DEFAULT_MIN_SIZE, min=1, help="Smallest face side kept, in pixels "
                        "(larger is faster).")
CROPS = typer.Option(False, "--crops", help="Every image is one face already (a folder of face "
                     "crops or aligned chips): no detection; the whole image is the face, its "
                     "five points from MTCNN's O-Net.")
WORKERS = typer.Option(None, min=1, help="Processes for detection and embedding (default: one "
                       "per core).")
FLIP = typer.Option(False, help="Average each face with its mirror image.")
MIN_QUALITY = typer.Option(DEFAULT_MIN_QUALITY, min=0.0, max=1.0,
                           help="Faces under this quality (0-1: size, sharpness, pose) are "
                           "left out and listed; 0 keeps every face.")
JITTER = typer.Option(0, min=0, help="dlib: average this many jittered copies.")
DEVICE = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps.")
JSON = typer.Option(False, "--json", help="Print JSON on stdout (messages go to stderr).")
QUIET = typer.Option(False, help="No progress bars.")  # as TrainConfig.quiet says
PROJECT = typer.Option("runs", help="Results go to PROJECT/<task>/NAME.")
NAME = typer.Option("exp", help="Run name (exp2, exp3... when taken).")
