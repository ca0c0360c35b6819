"""Clustering unlabelled faces: each registered algorithm (facecnn cluster --algorithm) against
the anchors, on the same vectors in one run - face_recognition's way (dlib's
`chinese_whispers_clustering` over all pairs at 0.5, as its clustering example and dlib's
face_clustering.py do; the baseline every ratio is against) and Immich's (scikit-learn DBSCAN,
eps 0.5, 3 faces). Pairwise precision/recall/F, BCubed F, clusters found against people, the
share of faces left unsorted, and seconds; then time alone on random clustered vectors.

Faces: the five Johns' chips and the 400 AT&T photos (each pasted into a 200 px canvas), found
by dlib's HOG, embedded by dlib's ResNet (C++), groups under 3 faces unsorted.

    python benchmarks/cluster.py [--data ../shared/data] [--scale 10000,100000]
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
from facecnn.cluster.algorithms import by_size  # noqa: E402
from facecnn.faces.detect import FaceDetector  # noqa: E402
from facecnn.faces.embedders.dlib import DlibEmbedder  # noqa: E402
from facecnn.faces.pipeline import FacePipeline  # noqa: E402

DATA_HELP = "a folder holding att_faces/ (s1..s40) and johns/ (a folder per John)"
MIN_SIZE = 3
BASELINE = "face_recognition (dlib CW, all pairs, 0.5)"


def face_recognition_way(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    import dlib

    labels = dlib.chinese_whispers_clustering([dlib.vector(v.astype(float)) for v in vectors],
                                              0.5)
    return by_size(np.asarray(labels), settings.min_size)


def immich_way(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    return by_size(DBSCAN(eps=0.5, min_samples=3).fit_predict(vectors), settings.min_size)


def methods() -> dict:
    ours = {f"facecnn {name}": (lambda v, s, n=name: cluster_vectors(v, n, s))
            for name in ALGORITHMS.names()}
    return {BASELINE: face_recognition_way, "Immich (DBSCAN 0.5, 3 faces)": immich_way, **ours}


def labelled_vectors(files: list[Path], people: list[str], pipeline: FacePipeline
                     ) -> tuple[np.ndarray, list[str], int]:
    """(vectors, person of each, photos without a face): each photo's largest face."""
    vectors, truth = [], []
    for found, person in zip(pipeline.run(files, pick="largest"), people):
        if found.vectors is not None:
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
    settings = Settings(DlibEmbedder.default_threshold, MIN_SIZE)
    start = time.perf_counter()
    labels = method(vectors, settings)
    row = {"seconds": round(time.perf_counter() - start, 3)}
    if truth is not None:
        row.update({k: round(v, 4) if isinstance(v, float) else v
                    for k, v in score(truth, labels).as_dict().items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help=DATA_HELP)
    parser.add_argument("--scale", default="10000,100000",
                        help="sizes of the random sets timed (comma-separated; '' for none)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster.json"))
    args = parser.parse_args()
    require(args.data / "att_faces", args.data / "johns", what=DATA_HELP)
    pipeline = FacePipeline(FaceDetector("hog"), DlibEmbedder())
    johns = sorted(f for f in (args.data / "johns").glob("*/*.jpg"))
    sets = {"Johns (5 x 11)": labelled_vectors(johns, [f.parent.name for f in johns], pipeline)}
    with tempfile.TemporaryDirectory() as tmp:
        sets["AT&T (40 x 10)"] = labelled_vectors(*att_photos(args.data / "att_faces",
                                                              Path(tmp)), pipeline)
    rows = []
    print(f"{'set':<16}{'method':<44}{'pair P':>7}{'pair R':>7}{'pair F':>7}{'BCub F':>7}"
          f"{'x base':>7}{'found':>7}{'unsort':>7}{'sec':>7}")
    for label, (vectors, truth, missing) in sets.items():
        base = None
        for name, method in methods().items():
            row = {"set": label, "method": name, "faces": len(vectors),
                   "photos_without_face": missing, **run(vectors, truth, method)}
            base = row["bcubed_f"] if name == BASELINE else base
            row["bcubed_f_vs_baseline"] = round(row["bcubed_f"] / base, 4)
            rows.append(row)
            print(f"{label:<16}{name:<44}{row['pairwise_precision']:>7.3f}"
                  f"{row['pairwise_recall']:>7.3f}{row['pairwise_f']:>7.3f}"
                  f"{row['bcubed_f']:>7.3f}{row['bcubed_f_vs_baseline']:>7.3f}"
                  f"{row['clusters']:>4}/{row['people']:<3}{row['unsorted']:>6.3f}"
                  f"{row['seconds']:>7.2f}")
    timing = []
    for n in [int(s) for s in args.scale.split(",") if s.strip()]:
        vectors = clustered_vectors(n, max(n // 20, 2))
        for name, method in methods().items():
            if not name.startswith("facecnn") and n > 20000:  # all n^2 pairs: too long
                continue
            row = {"vectors": n, "method": name, **run(vectors, None, method)}
            timing.append(row)
            print(f"{n:>8} vectors  {name:<44}{row['seconds']:>9.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"min_size": MIN_SIZE, "threshold": DlibEmbedder
                                    .default_threshold, "rows": rows, "timing": timing},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
