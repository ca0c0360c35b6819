"""From what the user typed (a folder or a built-in name) to train/val/test arrays of uint8."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from facecnn.data.builtin import BUILTIN, load_builtin
from facecnn.data.cache import load_cached
from facecnn.data.folders import has_split_folders, held_out_part, scan, stratified_split
from facecnn.errors import FacecnnError

BUILTIN_TEST_FRACTION = 0.2  # built-ins hold out a fixed test part, the same for every --seed


@dataclass
class ImageSet:
    """Rows of a uint8 (N, H, W, C) array (often a memory map) with their labels and ids: a
    file's path relative to the data folder (s1/1.jpg, val/s1/1.jpg) or `digits:17`."""

    images: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, idx: np.ndarray) -> "ImageSet":
        return ImageSet(self.images, self.rows[idx], self.labels[idx],
                        [self.ids[i] for i in idx])

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """Images of positions `idx`, read in row order (fast on a memory map)."""
        rows = self.rows[idx]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows),) + self.images.shape[1:], dtype=np.uint8)
        out[order] = self.images[rows[order]]
        return out


@dataclass
class Dataset:
    source: str
    classes: list[str]
    train: ImageSet
    val: ImageSet
    test: ImageSet | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


Progress = Callable[[int], None]


def load_dataset(spec: str, img_size: int, channels: int, *, val_split: float = 0.2,
                 seed: int = 0, cache_dir: Path | None = None,
                 progress: Callable[[int], Progress] | None = None) -> Dataset:
    """Load DATA: a built-in name, a folder of class folders (split by `val_split`, stratified,
    seeded) or a folder with train/ and val/ (and optional test/) folders of classes.

    `progress(total)` is called once with the number of files and returns the per-file advance.
    """
    if not 0.0 <= val_split < 1.0:
        raise FacecnnError(f"--val-split must be in [0, 1), got {val_split}")
    if spec in BUILTIN:
        return _builtin_dataset(spec, img_size, channels, val_split, seed)
    root = Path(spec).expanduser()
    if root.is_dir() and has_split_folders(root):
        parts = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
        sets, classes, skipped = _load_folders(root, parts, img_size, channels, cache_dir,
                                               progress)
        return Dataset(str(root), classes, sets["train"], sets["val"], sets.get("test"), skipped)
    sets, classes, skipped = _load_folders(root, {"all": root}, img_size, channels, cache_dir,
                                           progress)
    whole = sets["all"]
    if val_split == 0:
        raise FacecnnError(f"{root} has no val/ folder: --val-split must be above 0")
    keep, held = stratified_split(whole.labels, val_split, seed)
    return Dataset(str(root), classes, whole.subset(keep), whole.subset(held), None, skipped)


def load_folder_for(spec: str, classes: list[str], img_size: int, channels: int, *,
                    cache_dir: Path | None = None,
                    progress: Callable[[int], Progress] | None = None
                    ) -> tuple[ImageSet, list[dict[str, str]]]:
    """The evaluation set of DATA labelled with a trained model's `classes`: a built-in's test
    part, or a folder's test/ (else val/, else the folder itself) of class folders.
    Which of these images a run trained on is for `facecnn.data.heldout` to say."""
    if spec in BUILTIN:
        data = _builtin_dataset(spec, img_size, channels, 0.0, 0)
        return data.test, []
    root = Path(spec).expanduser()
    part = held_out_part(root)
    sets, found, skipped = _load_folders(root, {"eval": root / part if part else root},
                                         img_size, channels, cache_dir, progress)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise FacecnnError(f"classes the model does not know: {', '.join(unknown[:10])} "
                           f"(it knows {len(classes)}: {', '.join(classes[:10])}...)")
    remap = np.asarray([classes.index(name) for name in found], dtype=np.int64)
    data = sets["eval"]
    return ImageSet(data.images, data.rows, remap[data.labels], data.ids), skipped


def _load_folders(base: Path, parts: dict[str, Path], img_size: int, channels: int,
                  cache_dir: Path | None, progress: Callable[[int], Progress] | None
                  ) -> tuple[dict[str, ImageSet], list[str], list[dict[str, str]]]:
    """Each part's readable images, with ids relative to `base` (the folder the user named)."""
    scans = {name: scan(path) for name, path in parts.items()}
    first = next(iter(scans))
    classes = scans[first][0]
    for name, (names, _, _) in scans.items():
        extra = sorted(set(names) - set(classes))
        if extra:
            raise FacecnnError(f"{parts[name]} has classes not in {parts[first]}: "
                               f"{', '.join(extra[:10])}")
    total = sum(len(paths) for _, paths, _ in scans.values())
    advance = progress(total) if progress else (lambda n: None)
    sets, skipped = {}, []
    for name, (names, paths, labels) in scans.items():
        root = parts[name]
        images, reasons = load_cached(root, paths, img_size, channels, cache_dir, advance)
        ok = np.asarray([r is None for r in reasons])
        skipped += [{"file": str(p), "reason": r} for p, r in zip(paths, reasons) if r]
        labels = np.asarray([classes.index(names[i]) for i in labels], dtype=np.int64)
        counts = np.bincount(labels[ok], minlength=len(classes))
        for cls in names:
            if counts[classes.index(cls)] == 0:
                raise FacecnnError(f"class folder {root / cls} has no readable images")
        rows = np.flatnonzero(ok)
        ids = [p.relative_to(base).as_posix() for p in paths]
        sets[name] = ImageSet(images, rows, labels[rows], [ids[i] for i in rows])
    if len(classes) < 2:
        raise FacecnnError(f"{parts[first]} has only one class ({classes[0]}): "
                           "a classifier needs at least two")
    return sets, classes, skipped


def _builtin_dataset(name: str, img_size: int, channels: int, val_split: float,
                     seed: int) -> Dataset:
    images, labels, classes = load_builtin(name)
    images = fit_to(images, img_size, channels)
    rest, test = stratified_split(labels, BUILTIN_TEST_FRACTION, 0)
    ids = [f"{name}:{i}" for i in range(len(labels))]
    whole = ImageSet(images, np.arange(len(labels)), labels, ids)
    rest_set = whole.subset(rest)
    if val_split == 0:
        return Dataset(name, classes, rest_set, whole.subset(test), whole.subset(test))
    keep, held = stratified_split(rest_set.labels, val_split, seed)
    return Dataset(name, classes, rest_set.subset(keep), rest_set.subset(held),
                   whole.subset(test))


def fit_to(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """(N, h, w) gray uint8 -> (N, size, size, channels): resized, gray replicated to RGB."""
    if images.shape[1:3] != (size, size):
        images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR)
                           for im in images])
    images = images[..., None]
    return np.repeat(images, channels, axis=3) if channels > 1 else images
