"""Faces that come as crops, over many draws of who is known: facecnn's default rule against
face_recognition's, on the same crops.

benchmarks/crops.py runs the commands end to end on one draw of 40 known people and 20
strangers; with 20 strangers' identities one draw is noisy. Here every lfw_dev photo's subject
is cut once in each layout of crops.py, and embedded once per tool: by `facecnn embed
--largest-only` (the default pipeline, a real CLI process) and by face_recognition with the
whole crop as the face. Each of --draws draws then picks --known people (their first 5 crops
enrolled) and --strangers others: facecnn names the rest by `enroll`'s rule (a gallery, its
calibrated threshold, mean directions: faces/refit.py), face_recognition by the nearest
enrolled encoding within 0.6. Rows: per layout and tool, the mean over the draws (and the
lowest draw) of known crops named right and named wrong (another known person's name),
strangers' crops named, and known crops named right at the threshold that names 1% of the
strangers' crops (each tool by what its threshold judges: facecnn's decision distance, with
the lead over the next person; face_recognition's distance); and, known people only, known
crops named right at the threshold that names as many of them wrong as face_recognition's
0.6 does in the same draw (a closed set: how the vectors compare where nobody is a stranger).

Needs `pip install --no-deps face_recognition` and `pip install "setuptools<81"`.

    python benchmarks/crops_draws.py [--draws 20] [--out benchmarks/results/crops_draws.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from crops import (
    ENROL,
    LAYOUTS,
    Nearest,
    encode_whole,
    known_at_equal_strangers,
    score,
    subject_layouts,
)
from datapath import SHARED, require

METRICS = ("known_named_right", "known_named_wrong", "strangers_named", "known_right_at_1pct",
           "known_right_at_fr_wrong")
Vectors = dict[str, np.ndarray]  # crop file -> its vector (no entry: no face)


def cut_all(data: Path, root: Path) -> list[Path]:
    """root/<layout>/<person>/<i>.png for every lfw_dev photo's subject; the people."""
    from facecnn.faces.detect import FaceDetector

    detector = FaceDetector()
    people = sorted(p for p in (data / "lfw_dev").iterdir() if p.is_dir())
    for person in people:
        for i, photo in enumerate(sorted(person.glob("*.jpg"))):
            for layout, crop in (subject_layouts(photo, detector, i) or {}).items():
                target = root / layout / person.name / f"{i}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(target)
    return people


def facecnn_vectors(folder: Path) -> Vectors:
    out = folder.parent / f"{folder.name}.npz"
    subprocess.run([sys.executable, "-m", "facecnn", "embed", str(folder), "--largest-only",
                    "--out", str(out), "--quiet"], check=True, capture_output=True)
    with np.load(out) as saved:
        return {str(Path(f).resolve()): v for f, v in zip(saved["files"], saved["vectors"])}


def face_recognition_vectors(folder: Path) -> Vectors:
    return {str(p.resolve()): encode_whole(p) for p in sorted(folder.glob("*/*.png"))}


def facecnn_names(enrol: Vectors, queries: list[str], vectors: Vectors, work: Path
                  ) -> tuple[dict, dict]:
    """file -> name by enroll's rule, and file -> (nearest person, the distance its threshold
    judges: gallery/search.py's decision_distance)."""
    from facecnn.faces.gallery import Gallery, search
    from facecnn.faces.refit import refit_threshold

    with Gallery.create(work, "dlib", 128) as gallery:
        people: dict[str, list[np.ndarray]] = {}
        for file, vector in enrol.items():
            people.setdefault(Path(file).parent.name, []).append(vector)
        for person, found in people.items():
            gallery.add(person, np.stack(found))
        refit_threshold(gallery)
        found = [q for q in queries if q in vectors]
        asked = np.stack([vectors[q] for q in found])
        matches = gallery.identify(asked)
        refs, owners, names = gallery.vectors()
        best, _, judged = search.judge(
            search.unit(asked, gallery.length),
            search.directions(refs, owners, len(names), gallery.length),
            search.lead_weight(gallery.metric, len(names)))
    named = {q: None for q in queries} | {q: m.name for q, m in zip(found, matches)}
    return named, {q: None for q in queries} | {q: (names[b], float(e))
                                                for q, b, e in zip(found, best, judged)}


def face_recognition_names(enrol: Vectors, queries: list[str], vectors: Vectors
                           ) -> tuple[dict, dict]:
    names = [Path(f).parent.name for f in enrol]
    refs = np.stack(list(enrol.values()))
    named, nearest = {}, {}
    for query in queries:
        distances = np.linalg.norm(refs - vectors[query], axis=1)
        best = int(np.argmin(distances))
        named[query] = names[best] if distances[best] <= 0.6 else "unknown"
        nearest[query] = (names[best], float(distances[best]))
    return named, nearest


def known_named_wrong(named: dict[str, str | None], known: set[str]) -> float:
    """The share of known people's crops given another person's name."""
    theirs = {f: n for f, n in named.items() if Path(f).parent.name in known}
    return sum(n not in (None, "unknown", Path(f).parent.name)
               for f, n in theirs.items()) / max(1, len(theirs))


def known_right_at_wrong(nearest: Nearest, known: set[str], wrong: float) -> float:
    """Known crops named right at the largest threshold that names at most `wrong` of the known
    crops wrong (strangers left out; no face counts as not named)."""
    truth = {f: Path(f).parent.name for f in nearest}
    queries = [f for f in nearest if truth[f] in known]
    found = sorted((d, name == truth[f]) for f in queries if nearest[f]
                   for name, d in [nearest[f]])
    right = np.cumsum([ok for _, ok in found])
    misnamed = np.arange(1, len(found) + 1) - right
    allowed = np.nonzero(misnamed <= wrong * len(queries))[0]
    return float(right[allowed[-1]]) / max(1, len(queries)) if len(allowed) else 0.0


def judged(tool: str, enrolled: Vectors, queries: list[str], vectors: Vectors,
           known: set[str], work: Path, fr_wrong: float | None = None) -> dict[str, float]:
    """One draw's metrics for one tool: `enrolled` named by it, then `queries`. The closed-set
    cut names `fr_wrong` of the known crops wrong (None: the tool's own share, for
    face_recognition itself)."""
    named, nearest = (facecnn_names(enrolled, queries, vectors, work) if tool == "facecnn"
                      else face_recognition_names(enrolled, queries, vectors))
    wrong = known_named_wrong(named, known)
    return {**score(named, known), "known_named_wrong": wrong,
            "known_right_at_1pct": known_at_equal_strangers(nearest, known),
            "known_right_at_fr_wrong": known_right_at_wrong(
                nearest, known, wrong if fr_wrong is None else fr_wrong)}


def draw(files: list[str], people: list[str], known_count: int, strangers: int,
         seed: int) -> tuple[set[str], list[str], list[str]]:
    """(known people, crops enrolled, crops to name) of one draw."""
    chosen = np.random.default_rng(seed).permutation(len(people))[:known_count + strangers]
    known = {people[i] for i in chosen[:known_count]}
    taking = {people[i] for i in chosen}
    enrol = [f for f in files if Path(f).parent.name in known and int(Path(f).stem) < ENROL]
    queries = [f for f in files if Path(f).parent.name in taking and f not in set(enrol)]
    return known, enrol, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--known", type=int, default=40)
    parser.add_argument("--strangers", type=int, default=20)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/crops_draws.json"))
    parser.add_argument("--data", type=Path, default=SHARED, help="a folder holding lfw_dev/ "
                        "(../shared/data)")
    args = parser.parse_args()
    require(args.data / "lfw_dev", what="a folder holding lfw_dev/")
    rows = []
    print(f"{'layout':11s} {'tool':16s} " + " ".join(f"{m:>19s}" for m in METRICS)
          + "   (mean over draws, lowest draw)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        people = [p.name for p in cut_all(args.data, root)]
        for layout in args.layouts.split(","):
            files = sorted(str(p.resolve()) for p in (root / layout).glob("*/*.png"))
            # face_recognition first: its named-wrong rate in each draw is facecnn's cut there
            tools = {"face_recognition": face_recognition_vectors(root / layout),
                     "facecnn": facecnn_vectors(root / layout)}
            fr_wrong: list[float] = []  # face_recognition's known named wrong, per draw
            for tool, vectors in tools.items():
                per_draw = []
                for seed in range(args.draws):
                    known, enrol, queries = draw(files, people, args.known, args.strangers,
                                                 seed)
                    enrolled = {f: vectors[f] for f in enrol if f in vectors}
                    per_draw.append(judged(tool, enrolled, queries, vectors, known,
                                           root / f"{layout}{seed}.db",
                                           None if tool == "face_recognition" else
                                           fr_wrong[seed]))
                    if tool == "face_recognition":
                        fr_wrong.append(per_draw[-1]["known_named_wrong"])
                row = {"layout": layout, "tool": tool, "draws": args.draws,
                       "crops": len(files), "no_face": 1 - len(vectors) / len(files)}
                for metric in METRICS:
                    values = [d[metric] for d in per_draw]
                    row[metric] = float(np.mean(values))
                    row[f"{metric}_lowest"] = float(np.min(values))
                rows.append(row)
                print(f"{layout:11s} {tool:16s} " + " ".join(
                    f"{row[m]:11.3f} ({row[m + '_lowest']:.3f})" for m in METRICS), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"known": args.known, "strangers": args.strangers,
                                    "rows": rows}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
