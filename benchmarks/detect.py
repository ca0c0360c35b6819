"""Face detection: recall, precision and average precision at IoU 0.4 on box-annotated photos,
and seconds per photo, for every registered detector in one run (dlib's own CNN `cnn` and
HOG `hog` are the baselines; `x cnn` is how many times faster than dlib's CNN).

Each detector runs as `facecnn recognize` runs it (FaceDetector: downscaling of large photos,
the landmark step for detectors without landmarks, the smallest-face filter), on one photo
at a time; the timing is the best of `--repeat` passes over all photos, after one warm-up.

    python benchmarks/detect.py [--data ../shared/data/dlib_faces/testing.xml] \
        [--data more.xml] [--detectors hog,mtcnn] [--upsample 1] [--device cpu] [--out F]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datapath import SHARED, require
from facecnn.data.decode import read_image
from facecnn.faces.boxes import evaluate, read_boxes
from facecnn.faces.detect import FaceDetector
from facecnn.faces.detectors import DETECTORS

BOXES_HELP = "a box file (imglab XML or text), repeatable"


def measure(name: str, photos: dict[Path, object], args: argparse.Namespace) -> dict:
    detector = FaceDetector(name, upsample=args.upsample, min_size=args.min_size,
                            device=args.device)
    detector(next(iter(photos.values())))  # warm-up: model loading, caches
    best, found = float("inf"), {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        found = {path: [(f.box, f.confidence) for f in detector(image)]
                 for path, image in photos.items()}
        best = min(best, time.perf_counter() - start)
    return {"detector": name, "found": found, "seconds_per_photo": best / len(photos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", "--boxes", dest="boxes", type=Path, action="append",
                        help=BOXES_HELP)
    parser.add_argument("--detectors", default=",".join(DETECTORS.names()))
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("--min-size", type=int, default=20)
    parser.add_argument("--iou", type=float, default=0.4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect.json"))
    args = parser.parse_args()
    args.boxes = args.boxes or [SHARED / "dlib_faces" / "testing.xml"]
    require(*args.boxes, what=BOXES_HELP)
    truth = {}
    for file in args.boxes:
        truth.update(read_boxes(file))
    photos = {path: read_image(path) for path in truth}
    rows = []
    for name in args.detectors.split(","):
        run = measure(name, photos, args)
        scores = evaluate(run["found"], truth, args.iou)
        rows.append({"detector": name, "recall": round(scores.recall, 4),
                     "precision": round(scores.precision, 4), "ap": round(scores.ap, 4),
                     "faces": scores.faces, "detections": scores.detections,
                     "seconds_per_photo": round(run["seconds_per_photo"], 4)})
        print(f"{name}: done", flush=True)
    base = {r["detector"]: r["seconds_per_photo"] for r in rows}.get("cnn")
    print(f"\n{len(photos)} photos, {rows[0]['faces']} faces, IoU {args.iou}, upsample "
          f"{args.upsample}, device {args.device}\n")
    print("| detector | recall | precision | AP | s/photo | x cnn |\n|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{base / r['seconds_per_photo']:.1f}" if base else "-"
        print(f"| {r['detector']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['ap']:.3f} | "
              f"{r['seconds_per_photo']:.3f} | {ratio} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                    "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
