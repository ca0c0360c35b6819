"""Clustering unlabelled faces: each registered algorithm (facecnn cluster --algorithm), at
several thresholds, against the anchors, on the same vectors in one run - face_recognition's
way (dlib's `chinese_whispers_clustering` over all pairs at 0.5, as its clustering example and
dlib's face_clustering.py do; the baseline every ratio is against) and Immich's (scikit-learn
DBSCAN, eps 0.5, 3 faces). Pairwise precision/recall/F, BCubed F, clusters found against
people, the share of faces left unsorted, and seconds; then a summary per method (mean BCubed
F over the sets, and the lowest ratio to the baseline on any set: the default must be at least
1.0 there, with the best mean); then time alone on random clustered vectors.

Faces, one per photo, found by facecnn's default detector and embedded with dlib's vectors:
- LFW dev (lfw_dev: 121 people, 1,227 real news photos, 8-14 each): the face nearest the
  centre, LFW's subject;
- the five Johns' chips (5 x 11);
- the 400 AT&T photos, each pasted into a 200 px canvas (40 x 10: too easy to choose with).
Groups under 3 faces are unsorted.

Then the quality floor (--min-quality: faces under it stay unsorted), on every face of the LFW
dev photos (the subjects and the people around them) clustered together with the default:
the subjects' BCubed F, the share of subjects the floor leaves out, and how many of the other
faces end up inside a cluster (each one a stranger shown among someone's photos).

    python benchmarks/cluster.py [--data ../shared/data] [--thresholds 0.5,0.55,0.6]
        [--floors 0,0.2,0.3,0.4,0.5] [--scale 10000,100000] [--vectors F]
        [--out benchmarks/results/cluster.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from datapath import SHARED, require  # noqa: E402
from facecnn.cluster import ALGORITHMS, Settings, cluster_vectors, score  # noqa: E402
from facecnn.cluster.algorithms import DEFAULT_ALGORITHM, by_size  # noqa: E402
from facecnn.faces.config import PipelineConfig  # noqa: E402
from facecnn.faces.embedders.dlib import DlibEmbedder  # noqa: E402
from facecnn.faces.pipeline import FacePipeline, picked  # noqa: E402
from facecnn.faces.quality import DEFAULT_MIN_QUALITY  # noqa: E402

DATA_HELP = ("a folder holding lfw_dev/ (a folder per person), att_faces/ (s1..s40) and "
             "johns/ (a folder per John)")
MIN_SIZE = 3
BASELINE = "face_recognition (dlib CW, all pairs, 0.5)"
DEFAULT = f"facecnn {DEFAULT_ALGORITHM} {DlibEmbedder.default_threshold:g}"


def face_recognition_way(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    import dlib

    labels = dlib.chinese_whispers_clustering([dlib.vector(v.astype(float)) for v in vectors],
                                              0.5)
    return by_size(np.asarray(labels), settings.min_size)


def immich_way(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    return by_size(DBSCAN(eps=0.5, min_samples=3).fit_predict(vectors), settings.min_size)


def methods(thresholds: list[float]) -> dict:
    """Every method by name: the anchors, then each algorithm at each threshold."""
    ours = {f"facecnn {name} {t:g}": (lambda v, n=name, t=t: cluster_vectors(
        v, n, Settings(t, MIN_SIZE))) for name in ALGORITHMS.names() for t in thresholds}
    anchors = {BASELINE: face_recognition_way, "Immich (DBSCAN 0.5, 3 faces)": immich_way}
    return {**{name: (lambda v, run=run: run(v, Settings(0.5, MIN_SIZE)))
               for name, run in anchors.items()}, **ours}


def labelled_vectors(files: list[Path], people: list[str], pipeline: FacePipeline,
                     pick: str = "largest") -> tuple[np.ndarray, list[str], int]:
    """(vectors, person of each, photos without a face): the face `pick` chooses."""
    vectors, truth = [], []
    for found, person in zip(pipeline.run(files, pick=pick), people):
        if not found.error:
            vectors.append(found.vectors[0])
            truth.append(person)
    return np.asarray(vectors, np.float32), truth, len(files) - len(truth)


def att_photos(att: Path, folder: Path) -> tuple[list[Path], list[str]]:
    """AT&T's 400 faces, each pasted into a grey 200 px canvas (a detector needs room)."""
    files, people = [], []
    for person in sorted((p for p in att.iterdir() if p.is_dir()), key=lambda p: p.name):
        for pgm in sorted(person.glob("*.pgm")):
            photo = Image.new("RGB", (200, 200), (90, 90, 90))
            face = Image.open(pgm).convert("RGB")
            photo.paste(face, ((200 - face.width) // 2, (200 - face.height) // 2))
            files.append(folder / f"{person.name}_{pgm.stem}.jpg")
            photo.save(files[-1], quality=95)
            people.append(person.name)
    return files, people


def clustered_vectors(n: int, people: int, seed: int = 0) -> np.ndarray:
    """n random 128-D vectors around `people` centres: one person's about 0.3 apart, different
    people's about 1.4 (dlib's vectors: under 0.6 for one person)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1 / (0.7 * np.sqrt(2 * 128)), (people, 128))
    return (centres[rng.integers(0, people, n)]
            + rng.normal(0, 0.3 / np.sqrt(2 * 128), (n, 128))).astype(np.float32)


def run(vectors: np.ndarray, truth: list[str] | None, method) -> dict:
    start = time.perf_counter()
    labels = method(vectors)
    row = {"seconds": round(time.perf_counter() - start, 3)}
    if truth is not None:
        row.update({k: round(v, 4) if isinstance(v, float) else v
                    for k, v in score(truth, labels).as_dict().items()})
    return row


def every_face(files: list[Path], pipeline: FacePipeline
               ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
    """(vectors, person or None, quality) of every face of LFW's 250 x 250 photos: the face
    nearest the centre is the subject (its folder's person), the others nobody known."""
    vectors, truth, quality = [], [], []
    for found in pipeline.run(files):
        if found.error:
            continue
        subject = picked(found.faces, (250, 250), "center")[0]
        for face in found.faces:
            vectors.append(face.vector)
            truth.append(Path(found.file).parent.name if face is subject else None)
            quality.append(face.quality)
    return np.asarray(vectors, np.float32), truth, np.asarray(quality, np.float32)


def floor_rows(faces: tuple[np.ndarray, list[str | None], np.ndarray],
               floors: list[float]) -> list[dict]:
    """The default clustering of every face with each quality floor."""
    vectors, truth, quality = faces
    subjects = np.array([t is not None for t in truth])
    rows = []
    for floor in floors:
        kept = quality >= floor
        labels = np.full(len(vectors), -1, np.int64)
        labels[kept] = cluster_vectors(vectors[kept], DEFAULT_ALGORITHM,
                                       Settings(DlibEmbedder.default_threshold, MIN_SIZE))
        found = score([t for t in truth if t is not None], labels[subjects])
        others = ~subjects
        rows.append({"min_quality": floor, "subjects": int(subjects.sum()),
                     "other_faces": int(others.sum()),
                     "subjects_left_out": round(float(np.mean(~kept[subjects])), 4),
                     "other_faces_left_out": round(float(np.mean(~kept[others])), 4),
                     "other_faces_in_clusters": int((labels[others] >= 0).sum()),
                     "bcubed_f": round(found.bcubed_f, 4),
                     "bcubed_recall": round(found.bcubed_recall, 4)})
    return rows


def face_sets(data: Path, cache: Path | None) -> tuple[dict, tuple]:
    """Each set's (vectors, people, photos without a face), and every face of LFW dev
    (`every_face`), read from `cache` when it holds them (embedding LFW dev takes minutes)
    and written there otherwise."""
    if cache is not None and cache.is_file():
        saved = json.loads(cache.read_text())
        everyone = saved.pop("every LFW dev face")
        return ({k: (np.asarray(v, np.float32), t, m) for k, (v, t, m) in saved.items()},
                (np.asarray(everyone[0], np.float32), everyone[1],
                 np.asarray(everyone[2], np.float32)))
    pipeline = FacePipeline.from_config(PipelineConfig(embedder="dlib_torch"))
    lfw = sorted((data / "lfw_dev").glob("*/*.jpg"))
    johns = sorted((data / "johns").glob("*/*.jpg"))
    sets = {"LFW dev (121 x 8-14)": labelled_vectors(lfw, [f.parent.name for f in lfw],
                                                     pipeline, pick="center"),
            "Johns (5 x 11)": labelled_vectors(johns, [f.parent.name for f in johns], pipeline)}
    with tempfile.TemporaryDirectory() as tmp:
        sets["AT&T (40 x 10)"] = labelled_vectors(*att_photos(data / "att_faces", Path(tmp)),
                                                  pipeline)
    everyone = every_face(lfw, pipeline)
    if cache is not None:
        saved = {k: (v.tolist(), t, m) for k, (v, t, m) in sets.items()}
        saved["every LFW dev face"] = (everyone[0].tolist(), everyone[1],
                                      everyone[2].tolist())
        cache.write_text(json.dumps(saved))
    return sets, everyone


def summary(rows: list[dict], sets: list[str]) -> list[dict]:
    """Per method: BCubed F on each set, their mean, and the lowest ratio to the baseline."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = {r["set"]: r for r in rows if r["method"] == method}
        out.append({"method": method, **{s: mine[s]["bcubed_f"] for s in sets},
                    "mean": round(float(np.mean([mine[s]["bcubed_f"] for s in sets])), 4),
                    "lowest_vs_baseline": min(mine[s]["bcubed_f_vs_baseline"] for s in sets)})
    return sorted(out, key=lambda r: -r["mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help=DATA_HELP)
    parser.add_argument("--thresholds", default="0.5,0.55,0.6",
                        help="distance thresholds each algorithm is run at (comma-separated)")
    parser.add_argument("--floors", default="0,0.2,0.3,0.4,0.5",
                        help="quality floors tried on every LFW dev face (comma-separated)")
    parser.add_argument("--scale", default="10000,100000",
                        help="sizes of the random sets timed (comma-separated; '' for none)")
    parser.add_argument("--vectors", type=Path, default=None,
                        help="keep the sets' vectors in this JSON file (reused when it exists)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster.json"))
    args = parser.parse_args()
    require(args.data / "lfw_dev", args.data / "att_faces", args.data / "johns", what=DATA_HELP)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    sets, everyone = face_sets(args.data, args.vectors)
    rows = []
    print(f"{'set':<22}{'method':<44}{'pair P':>7}{'pair R':>7}{'pair F':>7}{'BCub F':>7}"
          f"{'x base':>7}{'found':>9}{'unsort':>7}{'sec':>7}")
    for label, (vectors, truth, missing) in sets.items():
        base = None
        for name, method in methods(thresholds).items():
            row = {"set": label, "method": name, "faces": len(vectors),
                   "photos_without_face": missing, **run(vectors, truth, method)}
            base = row["bcubed_f"] if name == BASELINE else base
            row["bcubed_f_vs_baseline"] = round(row["bcubed_f"] / base, 4)
            rows.append(row)
            print(f"{label:<22}{name:<44}{row['pairwise_precision']:>7.3f}"
                  f"{row['pairwise_recall']:>7.3f}{row['pairwise_f']:>7.3f}"
                  f"{row['bcubed_f']:>7.3f}{row['bcubed_f_vs_baseline']:>7.3f}"
                  f"{row['clusters']:>5}/{row['people']:<3}{row['unsorted']:>7.3f}"
                  f"{row['seconds']:>7.2f}")
    names = list(sets)
    table = summary(rows, names)
    print(f"\n{'method (BCubed F)':<44}" + "".join(f"{n.split(' (')[0]:>10}" for n in names)
          + f"{'mean':>8}{'worst x base':>14}")
    for row in table:
        mark = "  <- default" if row["method"] == DEFAULT else ""
        print(f"{row['method']:<44}" + "".join(f"{row[n]:>10.3f}" for n in names)
              + f"{row['mean']:>8.3f}{row['lowest_vs_baseline']:>14.3f}{mark}")
    floors = floor_rows(everyone, [float(f) for f in args.floors.split(",")])
    print(f"\nevery LFW dev face, {DEFAULT}: {floors[0]['subjects']} subjects, "
          f"{floors[0]['other_faces']} other faces")
    print(f"{'min quality':>12}{'subjects out':>14}{'others out':>12}{'others in clusters':>20}"
          f"{'BCub F':>8}{'BCub R':>8}")
    for row in floors:
        mark = "  <- default" if row["min_quality"] == DEFAULT_MIN_QUALITY else ""
        print(f"{row['min_quality']:>12g}{row['subjects_left_out']:>14.3f}"
              f"{row['other_faces_left_out']:>12.3f}{row['other_faces_in_clusters']:>20d}"
              f"{row['bcubed_f']:>8.3f}{row['bcubed_recall']:>8.3f}{mark}")
    timing = []
    timed = {name: method for name, method in methods(thresholds).items()
             if not name.startswith("facecnn") or name.endswith(f" {thresholds[-1]:g}")}
    for n in [int(s) for s in args.scale.split(",") if s.strip()]:
        vectors = clustered_vectors(n, max(n // 20, 2))
        for name, method in timed.items():
            if not name.startswith("facecnn") and n > 20000:  # all n^2 pairs: too long
                continue
            row = {"vectors": n, "method": name, **run(vectors, None, method)}
            timing.append(row)
            print(f"{n:>8} vectors  {name:<44}{row['seconds']:>9.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"min_size": MIN_SIZE, "default": DEFAULT, "rows": rows,
                                    "summary": table, "quality_floors": floors,
                                    "timing": timing}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
