"""appeared/left events, one line each as it happens, to a CSV or JSON-lines file (chosen by
the file's extension), flushed at once so `tail -f` follows a camera."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from facecnn.errors import FacecnnError

FIELDS = ["event", "time", "frame", "track", "name", "score", "source", "at"]
JSON_LINES = (".jsonl", ".ndjson")


def clock(timestamp: float | None) -> str | None:
    """A wall-clock time as users read it (local ISO 8601, to the second)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


class EventLog:
    """`with EventLog(path) as log: log.write({...})`; an existing file is never overwritten."""

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix != ".csv" and suffix not in JSON_LINES:
            raise FacecnnError(f"--events: {path} must end in .csv or .jsonl (JSON lines)")
        if path.exists():
            raise FacecnnError(f"--events: {path} exists; give a new file (nothing overwritten)")
        if not path.parent.is_dir():
            raise FacecnnError(f"--events: no folder {path.parent}")
        self.path, self.as_csv = path, suffix == ".csv"
        self.count = 0
        self._handle: IO[str] | None = None
        self._csv: Any = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, event: dict[str, Any]) -> None:
        handle = self._open()
        if self.as_csv:
            self._csv.writerow({k: "" if event.get(k) is None else event[k] for k in FIELDS})
        else:
            handle.write(json.dumps({k: event.get(k) for k in FIELDS}) + "\n")
        handle.flush()
        self.count += 1

    def close(self) -> None:
        """Ends the log (a run with no events still leaves the file, with its CSV header)."""
        self._open().close()

    def _open(self) -> IO[str]:
        if self._handle is None:
            self._handle = self.path.open("x", newline="")
            if self.as_csv:
                self._csv = csv.DictWriter(self._handle, FIELDS)
                self._csv.writeheader()
        return self._handle
