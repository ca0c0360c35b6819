"""Background cohorts: vectors of faces of people no gallery is likely to hold, shipped per
embedder family (tools/build_cohort.py makes them), so a small gallery's threshold is not
judged on its own few people alone."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

COHORTS = Path(__file__).resolve().parent / "cohorts"
ORIGIN = {"dlib": "every boxed face of dlib's 9 example group photos (PASCAL VOC 2007-2009, "
                  "as dlib ships them under the Boost Software License), dlib 5-point chips"}


@lru_cache(maxsize=None)
def load_cohort(family: str | None) -> np.ndarray | None:
    """(n, dim) float32 cohort vectors of an embedder family, None if none ships."""
    path = COHORTS / f"{family}.npz"
    if family is None or not path.is_file():
        return None
    with np.load(path) as data:
        return data["vectors"].astype(np.float32)
