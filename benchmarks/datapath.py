"""Where the benchmarks find their photos: the team's ../shared/data beside the checkout,
or whatever `--data` names (a fresh clone has no ../shared)."""

from __future__ import annotations

import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ATT_FACES = SHARED / "att_faces"
ATT_FACES_HELP = "the AT&T faces (folders s1..s40 of .pgm)"
LFW_DEV = SHARED / "lfw_dev"
LFW_DEV_HELP = "LFW's development slice (a folder of JPEGs per person)"


def require(*paths: Path, what: str) -> None:
    """Exit with one line naming `--data` when a path is missing, rather than a traceback
    from deep inside the benchmark minutes later."""
    for path in paths:
        if not path.exists():
            sys.exit(f"error: {path} not found; pass --data with {what}")
