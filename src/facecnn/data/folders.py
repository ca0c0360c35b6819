"""Find the images of a folder-per-class tree, and split them into train and validation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facecnn.errors import FacecnnError

SPLIT_NAMES = ("train", "val", "test")
# A folder holding this file is nobody (`facecnn cluster`'s unsorted and dismissed faces):
# enroll, train and prepare pass it by.
NOT_A_PERSON = ".not-a-person"


def class_folders(root: Path) -> list[Path]:
    """The class folders of `root`, sorted by name (hidden ones and those marked NOT_A_PERSON
    left out); errors a user can fix are one line."""
    if not root.exists():
        raise FacecnnError(f"data folder not found: {root}")
    if not root.is_dir():
        raise FacecnnError(f"data must be a folder of class folders, got a file: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and not (p / NOT_A_PERSON).exists())
    if not folders:
        raise FacecnnError(f"no class folders in {root}: expected one folder per person/class")
    return folders


# What sits beside photos and is never one: metadata sidecars (Google Takeout's .json, XMP,
# Apple's .aae), notes (README.md, .txt) and Windows' Thumbs.db and desktop.ini. A folder's
# listing passes them by, as it does hidden files, so a real library's report is about its
# photos; a file given by name is still read, and refused in one line if it is no image.
NOT_PHOTOS = frozenset({".json", ".xmp", ".aae", ".md", ".txt", ".csv", ".xml", ".html",
                        ".pdf", ".db", ".ini", ".log"})


def files_of(folder: Path) -> list[Path]:
    """Every file below a folder that may be an image (decoding decides): hidden ones and
    NOT_PHOTOS left out."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() not in NOT_PHOTOS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given and the files inside given folders, in order (`files_of`: not the report
    `prepare` writes at a folder's top, a .json); a missing one is an error."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files += files_of(item)
        elif item.is_file():
            files.append(item)
        else:
            raise FacecnnError(f"no such file or folder: {item}")
    return files


def relative_ids(inputs: list[Path], files: list[Path]) -> list[str]:
    """Each file's path relative to the folder the inputs share (a folder given, or the one
    holding a file given): unique where class folders repeat file names (s1/1.jpg, s2/1.jpg)."""
    base = os.path.commonpath([os.path.abspath(p if p.is_dir() else p.parent) for p in inputs])
    return [Path(os.path.relpath(os.path.abspath(f), base)).as_posix() for f in files]


def scan(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, files, labels) of a folder-per-class tree. Empty class folders are an error."""
    folders = class_folders(root)
    names, paths, labels = [], [], []
    for folder in folders:
        files = files_of(folder)
        if not files:
            raise FacecnnError(f"class folder {folder} is empty: add images or remove it")
        names.append(folder.name)
        paths += files
        labels += [len(names) - 1] * len(files)
    return names, paths, np.asarray(labels, dtype=np.int64)


def has_split_folders(root: Path) -> bool:
    """True when `root` holds `train/` and `val/` rather than class folders."""
    return (root / "train").is_dir() and (root / "val").is_dir()


def held_out_part(root: Path) -> str | None:
    """The part of `root` kept for scoring: `test` if it has a test/ folder, else `val`."""
    return next((name for name in ("test", "val") if (root / name).is_dir()), None)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Indices (keep, held_out): `fraction` of each class held out, at least one image of every
    class with two or more, so every class is both trained on and measured."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_held = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held += idx[:n_held].tolist()
        keep += idx[n_held:].tolist()
    return np.sort(np.asarray(keep, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))
