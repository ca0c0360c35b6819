"""The lead over the next person (gallery/search.py's "mean_direction_lead"): how much of it a
face is forgiven, and from how many enrolled people on.

Vectors: the subject of every lfw_dev photo (the face nearest the centre, the default
pipeline) and, unless --layouts is empty, that subject cut in the crop layouts of
benchmarks/crops.py and embedded by `facecnn embed`.

1. Separation, per set and lead weight (0: the distance alone): the share of known people's
   other photos named right at the decision value (search.decision_distance) that names 1% of
   strangers' faces; 40 people drawn, enrolled from K photos (K = 1, 2, 5 for photos, 5 for
   crops), the other 81 people the strangers; the mean of --draws draws.
2. Calibration by gallery size, on photos: P people enrolled from 1 or 5 photos, the threshold
   calibrated as `enroll` calibrates it (faces/refit.py) for 1% of strangers, by the distance
   alone ("mean_direction") and with the lead at LEAD_WEIGHT whatever the gallery's size
   (LEAD_MIN_PEOPLE set to 0 here); known photos named right and strangers' faces named
   (every person not enrolled is a stranger).

    python benchmarks/lead.py [--draws 20] [--layouts tight,grey,arcface112,dlib150,shadow]
                              [--out benchmarks/results/lead.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from crops import LAYOUTS
from crops_draws import cut_all, facecnn_vectors
from datapath import SHARED, require
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import vector_length
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder
from facecnn.faces.gallery import UNKNOWN, Gallery, search
from facecnn.faces.pipeline import FacePipeline
from facecnn.faces.refit import refit_threshold
from open_set import folder_vectors

WEIGHTS = (0.0, 0.25, 0.5, 1.0)
SIZES = (2, 5, 10, 20, 40, 80)
KNOWN = 40
LENGTH = vector_length("dlib")
People = list[np.ndarray]  # per person, (photos, dim) in a fixed order


def photo_people(data: Path) -> People:
    pipeline = FacePipeline(FaceDetector(), DlibTorchEmbedder(device="cpu"))
    people = folder_vectors(sorted(p for p in (data / "lfw_dev").iterdir() if p.is_dir()),
                            pipeline, "center")
    return [p[~np.isnan(p).any(1)] for p in people]


def crop_people(folder: Path) -> People:
    vectors = facecnn_vectors(folder)
    return [np.stack([vectors[str(f.resolve())] for f in sorted(person.glob("*.png"),
                                                                  key=lambda f: int(f.stem))
                      if str(f.resolve()) in vectors])
            for person in sorted(p for p in folder.iterdir() if p.is_dir())]


def _draw(people: People, known: int, enrol: int, seed: int
          ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(enrolled photos, photos to name, per known person; strangers' faces)."""
    order = np.random.default_rng(seed).permutation(len(people))
    chosen = [people[i] for i in order[:known] if len(people[i]) > enrol]
    return ([p[:enrol] for p in chosen], [p[enrol:] for p in chosen],
            np.concatenate([people[i] for i in order[known:]]))


def _decisions(queries: np.ndarray, people: np.ndarray, weight: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest person and decision distance."""
    best, _, decision = search.judge(search.unit(queries, LENGTH), people, weight)
    return best, decision


def separation(people: People, enrol: int, draws: int) -> dict[float, float]:
    """Per lead weight: known photos named right at 1% of strangers' faces named."""
    named = {w: [] for w in WEIGHTS}
    for seed in range(draws):
        enrolled, probes, strangers = _draw(people, KNOWN, enrol, seed)
        owners = np.repeat(np.arange(len(enrolled)), [len(e) for e in enrolled])
        dirs = search.directions(np.concatenate(enrolled), owners, len(enrolled), LENGTH)
        truth = np.repeat(np.arange(len(probes)), [len(p) for p in probes])
        for w in WEIGHTS:
            best, known = _decisions(np.concatenate(probes), dirs, w)
            t = np.quantile(_decisions(strangers, dirs, w)[1], 0.01)
            named[w].append(float(np.mean((known <= t) & (best == truth))))
    return {w: float(np.mean(v)) for w, v in named.items()}


def calibrated(people: People, size: int, enrol: int, metric: str, draws: int) -> dict:
    """Known photos named right and strangers' faces named at `enroll`'s threshold."""
    right, wrong, strangers_named = [], [], []
    for seed in range(draws):
        enrolled, probes, strangers = _draw(people, size, enrol, seed)
        with tempfile.TemporaryDirectory() as tmp, Gallery.create(
                Path(tmp) / "g.db", "dlib", 128, metric=metric) as gallery:
            for k, photos in enumerate(enrolled):
                gallery.add(f"p{k:03d}", photos)
            refit_threshold(gallery)
            names = np.array([m.name for m in gallery.identify(np.concatenate(probes))])
            truth = np.concatenate([[f"p{k:03d}"] * len(p) for k, p in enumerate(probes)])
            right.append(np.mean(names == truth))
            wrong.append(np.mean((names != truth) & (names != UNKNOWN)))
            strangers_named.append(np.mean([m.name != UNKNOWN
                                            for m in gallery.identify(strangers)]))
    return {"known_named_right": float(np.mean(right)),
            "known_named_wrong": float(np.mean(wrong)),
            "strangers_named": float(np.mean(strangers_named))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="crop layouts to measure separation on ('' for none)")
    parser.add_argument("--data", type=Path, default=SHARED, help="a folder holding lfw_dev/")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lead.json"))
    args = parser.parse_args()
    require(args.data / "lfw_dev", what="a folder holding lfw_dev/")
    photos = photo_people(args.data)
    sets = [(f"photos x {k}", photos, k) for k in (1, 2, 5)]
    with tempfile.TemporaryDirectory() as tmp:
        layouts = [x for x in args.layouts.split(",") if x]
        if layouts:
            cut_all(args.data, Path(tmp))
        sets += [(layout, crop_people(Path(tmp) / layout), 5) for layout in layouts]
        print("1. known named right at 1% of strangers named, by lead weight "
              f"({KNOWN} people, mean of {args.draws} draws)")
        print(f"{'set':14s}" + "".join(f"{w:>8.2f}" for w in WEIGHTS))
        rows = []
        for label, people, enrol in sets:
            row = separation(people, enrol, args.draws)
            rows.append({"set": label, "by_weight": row})
            print(f"{label:14s}" + "".join(f"{row[w]:>8.3f}" for w in WEIGHTS), flush=True)
    search.LEAD_MIN_PEOPLE = 0  # the lead at every size, to see where it pays
    print("\n2. calibrated for 1% of strangers, by gallery size (photos): known named right, "
          "wrong; strangers named")
    print(f"{'people x photos':16s}{'distance alone':>26s}{'with the lead':>26s}")
    sizes = []
    for size in SIZES:
        for enrol in (1, 5):
            row = {"people": size, "photos": enrol,
                   **{metric: calibrated(photos, size, enrol, metric, max(5, args.draws // 2))
                      for metric in ("mean_direction", "mean_direction_lead")}}
            sizes.append(row)
            print(f"{size:>4d} x {enrol:<10d}" + "".join(
                f"{r['known_named_right']:>10.3f}{r['known_named_wrong']:>7.3f}"
                f"{r['strangers_named']:>8.1%}" for r in (row["mean_direction"],
                                                          row["mean_direction_lead"])),
                flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"separation": rows, "by_size": sizes,
                                    "lead_weight": search.LEAD_WEIGHT}, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
