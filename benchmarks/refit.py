"""How long the threshold takes to follow a gallery (faces/refit.py), which every server
enrolment and gallery edit now waits for: leave-one-out over every face (the baseline) against
the seeded sample of MAX_PROBES faces, in one run, and the whole refit of an SQLite gallery
(reading its vectors, the cohort, storing the threshold). Galleries of P people x K faces of
made-up 128-d vectors spread about as dlib's are (a face ~0.5 from its person's other faces'
mean direction, ~0.67 from the nearest other person's); the thresholds of both ways are
shown, so the sample's error is seen too.

    python benchmarks/refit.py [--sizes 1000x5 10000x5] [--out benchmarks/results/refit.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facecnn.faces.cohort import load_cohort  # noqa: E402
from facecnn.faces.gallery import Gallery  # noqa: E402
from facecnn.faces.gallery import calibrate as calibration  # noqa: E402
from facecnn.faces.gallery.meta import NEW_METRIC  # noqa: E402
from facecnn.faces.refit import refit_threshold  # noqa: E402

LENGTH = 1.4  # dlib's vectors' typical length (embedders/dlib.py)


def made_up(people: int, faces: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(people, 128))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    centers = 0.35 * centers + rng.normal(size=128) / np.sqrt(128)  # dlib's shared offset
    vectors = np.repeat(centers, faces, 0) + 0.032 * rng.normal(size=(people * faces, 128))
    vectors *= LENGTH / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.repeat(np.arange(people), faces)


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def measure(people: int, faces: int, folder: Path) -> dict:
    vectors, owners = made_up(people, faces)
    names, cohort = [f"p{k}" for k in range(people)], load_cohort("dlib")

    def fit() -> dict:
        return calibration.calibrate(vectors, owners, names, 0.01, cohort, "g", NEW_METRIC,
                                     LENGTH, 0.6)

    sampled_s, sampled = timed(fit)
    limit, calibration.MAX_PROBES = calibration.MAX_PROBES, len(vectors)
    try:
        full_s, full = timed(fit)
    finally:
        calibration.MAX_PROBES = limit
    with Gallery.create(folder / f"g{people}x{faces}.db", "dlib", 128) as gallery:
        with gallery.batch():
            for person in range(people):
                gallery.add(names[person], vectors[owners == person])
        refit_s, refit = timed(lambda: refit_threshold(gallery))
    return {"people": people, "faces": len(vectors), "full_s": round(full_s, 3),
            "sampled_s": round(sampled_s, 3), "speedup": round(full_s / sampled_s, 2),
            "full_threshold": round(full["threshold"], 4),
            "sampled_threshold": round(sampled["threshold"], 4),
            "refit_s": round(refit_s, 3), "refit_threshold": round(refit.threshold, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x5", "10000x5", "20000x5"],
                        help="galleries as PEOPLExFACES")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "refit.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            people, faces = (int(x) for x in size.split("x"))
            rows.append(measure(people, faces, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'people':>7} {'faces':>7} {'full LOO s':>10} {'sampled s':>9} {'speed-up':>8} "
          f"{'full thr':>8} {'sampled thr':>11} {'refit s':>7}")
    for r in rows:
        print(f"{r['people']:>7} {r['faces']:>7} {r['full_s']:>10} {r['sampled_s']:>9} "
              f"{r['speedup']:>8} {r['full_threshold']:>8} {r['sampled_threshold']:>11} "
              f"{r['refit_s']:>7}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"max_probes": calibration.MAX_PROBES, "rows": rows},
                                   indent=2))


if __name__ == "__main__":
    main()
