"""Open-set recognition: enrolled people's new photos named right (and wrong) and strangers'
faces left unknown, for each way of comparing faces and choosing the threshold, on the same
vectors in one run:

- euclidean, own people: the raw distance to the nearest enrolled face, the threshold
  calibrated on the gallery's own people (the first rule);
- euclidean + cohort: the same, also kept from the shipped cohort of strangers (the default
  before mean directions);
- mean_direction + cohort: each person's mean direction of unit-length vectors, calibrated the
  same way (the default before the lead);
- mean_direction_lead + cohort: the same, and in galleries of 20 people or more a face is
  forgiven half its lead over the next person (`enroll`'s default now);
- fixed 0.6: the raw distance to the nearest face within face_recognition's tolerance;
- mean_direction, 0.6: mean directions at dlib's 0.6 (what a gallery of one photo a person got
  before the cohort calibrated it alone).

AT&T: P people enrolled from photos 1-5 (or photo 1 alone: "x 1"), their photos 6-10 to name;
strangers are the other AT&T people and the five Johns. Johns: enrolled from 6 chips each, 5
to name; strangers are all of AT&T. lfw_dev: 40 people drawn at random enrolled from K of their
photos (K = 1, 2, 5), their others to name; strangers are the other 81 people's photos (the
subject: the face nearest the centre); the mean of --splits draws. Vectors: dlib's network
(dlib_torch), faces found by the default detector.

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
from facecnn.errors import FacecnnError  # noqa: E402
from facecnn.faces.cohort import load_cohort  # noqa: E402
from facecnn.faces.detect import FaceDetector  # noqa: E402
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder  # noqa: E402
from facecnn.faces.gallery import UNKNOWN, Gallery  # noqa: E402
from facecnn.faces.pipeline import FacePipeline  # noqa: E402

RULES = {"euclidean, own people": ("euclidean", "own"),
         "euclidean + cohort": ("euclidean", "cohort"),
         "mean_direction + cohort": ("mean_direction", "cohort"),
         "mean_direction_lead + cohort": ("mean_direction_lead", "cohort"),
         "fixed 0.6": ("euclidean", 0.6),
         "mean_direction, 0.6": ("mean_direction", 0.6)}
DATA_HELP = ("a folder holding att_faces/ (s1..s40), johns/ (a folder per John) and lfw_dev/ "
             "(a folder per person)")
LFW_KNOWN = 40
DEFAULT = 0.6  # dlib's threshold


def folder_vectors(folders: list[Path], pipeline: FacePipeline,
                   pick: str = "largest") -> list[np.ndarray]:
    """Per folder, (photos, dim): each photo's face that `pick` chooses (NaN where none)."""
    files = [sorted(f for f in folder.iterdir() if f.is_file()) for folder in folders]
    found = {r.file: r.vectors for r in pipeline.run([f for fs in files for f in fs],
                                                       pick=pick)}
    nan = np.full(pipeline.embedder.dim, np.nan, np.float32)
    return [np.stack([nan if found[f] is None else found[f][0] for f in fs]) for fs in files]


def scores(enrol: list[np.ndarray], probes: list[np.ndarray], strangers: np.ndarray,
           rule: str) -> dict:
    """Person k is enrolled from enrol[k] and named on probes[k]."""
    metric, threshold = RULES[rule]
    dim = strangers.shape[-1]
    with tempfile.TemporaryDirectory() as tmp, Gallery.create(
            Path(tmp) / "g.db", "dlib", dim, metric=metric) as gallery:
        for k, photos in enumerate(enrol):
            found = photos[~np.isnan(photos).any(1)]
            if len(found):  # no face in a person's one photo: they are nobody's to name
                gallery.add(f"p{k}", found)
        if isinstance(threshold, float):
            gallery.set_threshold(threshold, "manual")
        else:  # as `enroll` does: never above dlib's 0.6, which is all a gallery of one
            try:  # photo a person gets where no cohort judges it
                gallery.calibrate(0.01, load_cohort("dlib") if threshold == "cohort" else None,
                                  DEFAULT)
            except FacecnnError:
                gallery.set_threshold(DEFAULT, "default")
        truth = np.concatenate([[f"p{k}"] * len(p) for k, p in enumerate(probes)])
        queries = np.concatenate(probes)
        ok = ~np.isnan(queries).any(1)
        names = np.array([m.name for m in gallery.identify(queries[ok])])
        strangers = strangers[~np.isnan(strangers).any(1)]
        rejected = [m.name == UNKNOWN for m in gallery.identify(strangers)]
        return {"threshold": gallery.threshold,
                "known_named_right": float(np.mean(names == truth[ok])),
                "known_named_wrong": float(np.mean((names != truth[ok]) & (names != UNKNOWN))),
                "strangers_unknown": float(np.mean(rejected))}


def lfw_cases(people: list[np.ndarray], splits: int) -> list[tuple[str, list]]:
    """(label, [(enrol, probes, strangers) per split]) for K = 1, 2 and 5 enrolled photos."""
    cases = []
    for k in (1, 2, 5):
        draws = []
        for seed in range(splits):
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(people))
            known = [people[i][rng.permutation(len(people[i]))] for i in order[:LFW_KNOWN]]
            draws.append(([p[:k] for p in known], [p[k:] for p in known],
                          np.concatenate([people[i] for i in order[LFW_KNOWN:]])))
        cases.append((f"lfw_dev, {LFW_KNOWN} x {k}", draws))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help=DATA_HELP)
    parser.add_argument("--splits", type=int, default=5, help="lfw_dev draws to average")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/open_set.json"))
    args = parser.parse_args()
    require(args.data / "att_faces", args.data / "johns", args.data / "lfw_dev",
            what=DATA_HELP)
    pipeline = FacePipeline(FaceDetector(), DlibTorchEmbedder(device="cpu"))

    def people(name: str, pick: str = "largest") -> list[np.ndarray]:
        return folder_vectors(sorted(p for p in (args.data / name).iterdir() if p.is_dir()),
                              pipeline, pick)

    att, johns, lfw = people("att_faces"), people("johns"), people("lfw_dev", "center")
    order = np.random.default_rng(0).permutation(len(att))
    cases = [(f"AT&T, {n} people", [([att[i][:5] for i in order[:n]],
                                     [att[i][5:] for i in order[:n]],
                                     np.concatenate([att[i] for i in order[n:]] + johns))])
             for n in (5, 10, 40)]
    cases += [(f"AT&T, {n} x 1", [([att[i][:1] for i in order[:n]],
                                   [att[i][5:] for i in order[:n]],
                                   np.concatenate([att[i] for i in order[n:]] + johns))])
              for n in (10, 40)]
    cases.append(("Johns, 5 people", [([j[:6] for j in johns], [j[6:] for j in johns],
                                        np.concatenate(att))]))
    cases += lfw_cases(lfw, args.splits)
    rows = []
    print(f"{'gallery':<18}{'rule':<30}{'threshold':>10}{'named':>8}{'wrong':>8}"
          f"{'unknown':>9}")
    for label, draws in cases:
        for rule in RULES:
            runs = [scores(*draw, rule) for draw in draws]
            row = {"gallery": label, "rule": rule, "draws": len(runs),
                   **{key: float(np.mean([r[key] for r in runs])) for key in runs[0]}}
            rows.append(row)
            print(f"{label:<18}{rule:<30}{row['threshold']:>10.3f}"
                  f"{row['known_named_right']:>8.3f}{row['known_named_wrong']:>8.3f}"
                  f"{row['strangers_unknown']:>9.3f}", flush=True)
    missing = int(sum(np.isnan(p).any(1).sum() for p in att + johns + lfw))
    print(f"photos without a face found: {missing}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "photos_without_face": missing}, indent=2)
                        + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
