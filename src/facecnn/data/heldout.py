"""Which images a run trained on, recorded in its folder (split.json), so that `evaluate` and
`ensemble` score only images the model never learned from.

A folder without val/ is split at training time by a seeded, stratified draw over the files
that happened to be readable then; re-drawing it later would silently change if a file was
added or fixed, so the run writes down its images instead. An image is named by its data
folder (resolved) and its path inside it, or by its built-in id (`digits:17`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.builtin import BUILTIN
from facecnn.data.datasets import Dataset, ImageSet
from facecnn.data.folders import held_out_part
from facecnn.errors import FacecnnError
from facecnn.fileio import write_text_atomic

SPLIT_FILE = "split.json"


def _root(spec: str) -> str:
    """The folder ids are relative to, resolved so any spelling of it matches; "" for a
    built-in, whose ids are already unique."""
    return "" if spec in BUILTIN else str(Path(spec).expanduser().resolve())


def _keys(root: str, ids: list[str]) -> list[str]:
    return [f"{root}/{i}" if root else i for i in ids]


def record_split(run_dir: Path, data: Dataset) -> None:
    """Write the run's train/val(/test) images to RUN/split.json."""
    parts = {"train": data.train, "val": data.val, "test": data.test}
    record: dict[str, Any] = {"data": data.source, "root": _root(data.source)}
    record.update({name: part.ids for name, part in parts.items() if part is not None})
    write_text_atomic(run_dir / SPLIT_FILE, json.dumps(record, indent=0) + "\n")


def _trained_on(run: Path) -> tuple[Path, set[str] | None]:
    """(run folder, keys of its training images); None when the folder records none."""
    folder = run if run.is_dir() else run.parent  # a run folder or its model file
    path = folder / SPLIT_FILE
    if not path.is_file():
        return folder, None
    try:
        record = json.loads(path.read_text())
        return folder, set(_keys(record["root"], record["train"]))
    except (ValueError, KeyError, TypeError):
        raise FacecnnError(f"{path} is damaged: cannot tell which images the run trained "
                           "on") from None


def untrained(images: ImageSet, spec: str, runs: list[Path]) -> tuple[np.ndarray, str]:
    """Positions of `images` (the evaluation set of DATA, see `load_folder_for`) that none of
    `runs` trained on, and the sentence that says which images these are.

    A built-in's test part and a folder's test/ or val/ are held out by the data's layout;
    any other folder is scored only on what every run's split.json shows it did not train on.
    """
    part = "test" if spec in BUILTIN else held_out_part(Path(spec).expanduser())
    keys = _keys(_root(spec), images.ids)
    trained = np.zeros(len(keys), dtype=bool)
    recorded = []
    for run in runs:
        folder, seen = _trained_on(run)
        if seen is None:
            if part is None:
                raise FacecnnError(f"{folder} has no {SPLIT_FILE} (trained by an older facecnn), "
                                   f"so its training images in {spec} cannot be left out: give "
                                   "data with a val/ or test/ part")
            continue
        trained |= np.fromiter((key in seen for key in keys), dtype=bool, count=len(keys))
        recorded.append(str(folder))
    keep = np.flatnonzero(~trained)
    names = ", ".join(dict.fromkeys(recorded))  # a run given twice is named once
    where = f"{spec.rstrip('/')}/{part}" if part and spec not in BUILTIN else spec
    if not len(keep):
        raise FacecnnError(f"every image of {where} was trained on by {names}: give data "
                           "with a val/ or test/ part, or images the runs never saw")
    left_out = len(keys) - len(keep)
    if part is not None:
        why = "its fixed test part" if spec in BUILTIN else f"the data's {part}/ part"
        why += f"; left out {left_out} images {names} trained on" if left_out else ""
    elif left_out:
        why = f"the split recorded in {names}: left out the {left_out} images trained on"
    else:
        why = f"none is among the training images recorded in {names}"
    return keep, f"scored {len(keep)} held-out images of {where} ({why})"
