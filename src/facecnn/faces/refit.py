"""The threshold follows the gallery. Every change to who is enrolled (an enroll; a person
removed, merged or split; faces forgotten or moved; a cluster named; from the CLI, the server
or its page) calibrates the threshold again, for the share of strangers it was calibrated for,
so a gallery built through the server names as few strangers as one `facecnn enroll` built.
A threshold set by hand stays until the user asks for calibration.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facecnn.errors import FacecnnError
from facecnn.faces.cohort import load_cohort
from facecnn.faces.embedders import default_threshold, family

if TYPE_CHECKING:
    from facecnn.faces.gallery import Gallery

DEFAULT_FAR = 0.01  # strangers' faces a calibrated threshold may name, unless told otherwise
# one refit at a time in a process, so a burst of enrolments is not calibrated at once for
# nothing; across processes Gallery.calibrate stores a threshold only if no write landed
# while it was computed, so no older answer overwrites a newer one
_REFITTING = threading.Lock()


@dataclass(frozen=True)
class Refit:
    """The threshold now stored, how it was chosen, gallery/calibrate.py's report when it
    was calibrated now, and else why not (one line)."""

    threshold: float
    source: str
    calibration: dict | None = None
    kept: str | None = None


def refit_threshold(gallery: Gallery, far: float | None = None, *,
                    replace_manual: bool = False) -> Refit:
    """Calibrate the gallery's threshold for the faces enrolled now, for `far` of strangers
    named (default: what it was calibrated for before, else DEFAULT_FAR), with the cohort of
    its embedder's family and never above the embedder's default. A manual threshold is kept
    unless `replace_manual`; where calibration cannot be done (no faces; one person, or one
    photo each, with no cohort) the stored threshold stays, or the default if none is."""
    with _REFITTING:
        if gallery.threshold_source == "manual" and not replace_manual:
            return Refit(gallery.threshold, "manual", kept="set by hand")
        if far is None:
            far = gallery.target_far
        ceiling = default_threshold(gallery.embedder)
        calibration, kept = None, None
        try:
            calibration = gallery.calibrate(DEFAULT_FAR if far is None else far,
                                            load_cohort(family(gallery.embedder)), ceiling)
        except FacecnnError as exc:
            kept = str(exc)
        if gallery.threshold is None:
            gallery.set_threshold(ceiling, "default")
        return Refit(gallery.threshold, gallery.threshold_source, calibration, kept)
