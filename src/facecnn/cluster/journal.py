"""The moves of a folder rewrite, finished even if its writer is killed half-way: a named
cluster_007's files moving to dora/, say, which the cache lists at their new places once saved.

Before the cache is saved, the moves (source -> target, relative to the folder) are written to
a journal (fileio.atomic_write); then the cache is saved, the files moved, and the journal
removed. The next writer of the folder (under its lock) finds a journal left behind: if the
cache lists every target, it was saved and the moves are finished (rolled forward: the gallery
may have taken the cluster's faces already); if not, no file has moved yet and the journal is
dropped. A move done already (its source gone) counts as done, so replaying twice is harmless.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from facecnn.errors import FacecnnError
from facecnn.fileio import write_text_atomic

JOURNAL = ".moves.json"


def begin(out: Path, moves: dict[str, str]) -> None:
    """Record the moves about to be made in `out`, before the cache that lists their targets
    is saved."""
    if moves:
        write_text_atomic(out / JOURNAL, json.dumps({"moves": sorted(moves.items())}) + "\n")


def finish(out: Path, moves: dict[str, str]) -> None:
    """Make the moves (each one not made yet) and drop the journal: the rewrite is done."""
    for source, target in moves.items():
        if os.path.lexists(out / source) and not os.path.lexists(out / target):
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(out / source, out / target)
    (out / JOURNAL).unlink(missing_ok=True)


def recover(out: Path, written: Iterable[str]) -> dict[str, str]:
    """Finish, or drop, the moves of a writer killed before it finished them (`written`: the
    files the saved cache lists); returns the moves finished."""
    path = out / JOURNAL
    if not path.is_file():
        return {}
    try:
        moves = {str(s): str(t) for s, t in json.loads(path.read_text())["moves"]}
        outside = [n for pair in moves.items() for n in pair
                   if Path(n).is_absolute() or ".." in Path(n).parts]
        if outside:
            raise ValueError(f"{outside[0]} is outside the folder")
    except (ValueError, KeyError, TypeError) as exc:
        raise FacecnnError(f"{path} is not a facecnn journal of moves ({exc}): remove it and "
                           "run `facecnn cluster` again") from None
    if set(moves.values()) <= set(written):
        finish(out, moves)
        return moves
    path.unlink()
    return {}
