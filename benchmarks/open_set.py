"""Open-set recognition against gallery size: enrolled people's new photos named right and
strangers' faces left unknown, for three threshold rules on the same vectors in one run -
calibration on the gallery's own people (the old rule), the same with the shipped cohort of
strangers (the new rule, `enroll`'s), and face_recognition's fixed tolerance 0.6.

AT&T: P people enrolled from photos 1-5, their photos 6-10 to name; strangers are the other
AT&T people and the five Johns. Johns: enrolled from 6 chips each, 5 to name; strangers are all
of AT&T. Vectors: dlib's network (dlib_torch), faces found by the default detector.

    python benchmarks/open_set.py [--data ../shared/data] [--out benchmarks/results/open_set.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from datapath import SHARED, require  # noqa: E402
from facecnn.faces.cohort import load_cohort  # noqa: E402
from facecnn.faces.detect import FaceDetector  # noqa: E402
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder  # noqa: E402
from facecnn.faces.gallery import UNKNOWN, Gallery  # noqa: E402
from facecnn.faces.pipeline import FacePipeline  # noqa: E402

RULES = ("own people (old)", "with cohort (new)", "fixed 0.6")
DATA_HELP = "a folder holding att_faces/ (s1..s40) and johns/ (a folder per John)"


def folder_vectors(folders: list[Path], pipeline: FacePipeline) -> np.ndarray:
    """(people, photos, dim): each photo's largest face (NaN where none was found)."""
    files = [sorted(f for f in folder.iterdir() if f.is_file()) for folder in folders]
    found = {r.file: r.vectors for r in pipeline.run([f for fs in files for f in fs],
                                                       pick="largest")}
    nan = np.full(pipeline.embedder.dim, np.nan, np.float32)
    return np.stack([[nan if found[f] is None else found[f][0] for f in fs] for fs in files])


def scores(known: np.ndarray, enrolled: int, strangers: np.ndarray, rule: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp, Gallery.create(Path(tmp) / "g.db", "dlib",
                                                               known.shape[-1]) as gallery:
        for k, photos in enumerate(known):
            photos = photos[:enrolled]
            gallery.add(f"p{k}", photos[~np.isnan(photos).any(1)])
        if rule == "fixed 0.6":
            gallery.set_threshold(0.6, "manual")
        else:
            gallery.calibrate(0.01, load_cohort("dlib") if "cohort" in rule else None)
        probes = known[:, enrolled:].reshape(-1, known.shape[-1])
        truth = np.repeat([f"p{k}" for k in range(len(known))], known.shape[1] - enrolled)
        ok = ~np.isnan(probes).any(1)
        named = np.array([m.name for m in gallery.identify(probes[ok])]) == truth[ok]
        strangers = strangers[~np.isnan(strangers).any(1)]
        rejected = [m.name == UNKNOWN for m in gallery.identify(strangers)]
        return {"threshold": gallery.threshold, "known_named_right": float(named.mean()),
                "strangers_unknown": float(np.mean(rejected))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help=DATA_HELP)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/open_set.json"))
    args = parser.parse_args()
    require(args.data / "att_faces", args.data / "johns", what=DATA_HELP)
    pipeline = FacePipeline(FaceDetector(), DlibTorchEmbedder(device="cpu"))
    att = folder_vectors(sorted(p for p in (args.data / "att_faces").iterdir() if p.is_dir()),
                         pipeline)
    johns = folder_vectors(sorted(p for p in (args.data / "johns").iterdir() if p.is_dir()),
                           pipeline)
    dim = att.shape[-1]
    rows = []
    order = np.random.default_rng(0).permutation(len(att))
    cases = [(f"AT&T, {n} people", att[order[:n]], 5,
              np.concatenate([att[order[n:]].reshape(-1, dim), johns.reshape(-1, dim)]))
             for n in (5, 10, 20, 30, 40)]
    cases.append(("Johns, 5 people", johns, 6, att.reshape(-1, dim)))
    print(f"{'gallery':<20}{'rule':<20}{'threshold':>10}{'named':>8}{'unknown':>9}")
    for label, known, enrolled, strangers in cases:
        for rule in RULES:
            row = {"gallery": label, "rule": rule, **scores(known, enrolled, strangers, rule)}
            rows.append(row)
            print(f"{label:<20}{rule:<20}{row['threshold']:>10.3f}"
                  f"{row['known_named_right']:>8.3f}{row['strangers_unknown']:>9.3f}")
    missing = int(np.isnan(att).any(2).sum() + np.isnan(johns).any(2).sum())
    print(f"photos without a face found: {missing}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "photos_without_face": missing}, indent=2)
                        + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
