"""Face detection on three kinds of photos, every detector (and every smallest-face setting
asked for) in one run: recall, precision and average precision at IoU 0.4, and seconds per
photo (`x cnn`: how many times faster than dlib's CNN).

- groups: box-annotated group photos (../shared/data/dlib_faces: 9 PASCAL photos, 43 faces,
  37-110 px), or the box files given with --data;
- crowds: canvases of small faces, 18-44 px, pasted at random onto textured 800 x 600
  backgrounds, every other canvas grey (faces of ../shared/data/lfw_dev, each box the one the
  default detector drew on its source photo, scaled), as crowds of small faces come;
- lfw: 300 lfw_dev news photos, whose subject is centred: the share in which a face is found
  there (recall of the subject), and the faces per photo (others in the background).

Each detector runs as `facecnn recognize` runs it (FaceDetector: downscaling of large photos,
the landmark step for detectors without landmarks, the smallest-face filter, the second look
at small images), one photo at a time; the timing is the best of `--repeat` passes after one
warm-up.

    python benchmarks/detect.py [--data ../shared/data] [--boxes more.xml] \
        [--detectors hog,mtcnn] [--min-sizes 20,12] [--device cpu] [--out F]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import cv2
import numpy as np

from datapath import SHARED, require
from facecnn.data.decode import read_image
from facecnn.faces.boxes import Truth, evaluate, read_boxes
from facecnn.faces.detect import FaceDetector
from facecnn.faces.detectors import DETECTORS
from facecnn.faces.pipeline import picked

BOXES_HELP = "a box file (imglab XML or text), repeatable"
CANVASES, FACES_PER_CANVAS, SIDES = 24, 16, (18, 44)
LFW_PHOTOS = 300


def crowds(lfw: Path, seed: int = 1) -> tuple[dict[Path, np.ndarray], dict[Path, Truth]]:
    """The pasted-face canvases (in memory, named crowd_NN) and their boxes."""
    rng = random.Random(seed)
    photos = sorted(lfw.glob("*/*.jpg"))
    rng.shuffle(photos)
    detector, faces = FaceDetector(), []
    for photo in photos[:400]:
        image = read_image(photo)
        found = picked(detector(image), image.shape, "center")
        if found:
            x1, y1, x2, y2 = found[0].box
            w, h = x2 - x1, y2 - y1
            left, top = int(max(0, x1 - 0.35 * w)), int(max(0, y1 - 0.35 * h))
            crop = image[top:int(y2 + 0.35 * h), left:int(x2 + 0.35 * w)]
            faces.append((crop, (x1 - left, y1 - top, x2 - left, y2 - top)))
    images, truth, k = {}, {}, 0
    for c in range(CANVASES):
        noise = np.random.default_rng(c).integers(0, 255, (30, 40, 3), dtype=np.uint8)
        canvas = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 2), (800, 600),
                            interpolation=cv2.INTER_CUBIC)
        boxes, taken = [], []
        for _ in range(60):
            if len(boxes) >= FACES_PER_CANVAS:
                break
            crop, (bx1, by1, bx2, by2) = faces[k % len(faces)]
            scale = rng.uniform(*SIDES) / max(bx2 - bx1, by2 - by1)
            width, height = int(crop.shape[1] * scale), int(crop.shape[0] * scale)
            x, y = rng.randint(0, 800 - width - 1), rng.randint(0, 600 - height - 1)
            if any(x < ox2 and x + width > ox1 and y < oy2 and y + height > oy1
                   for ox1, oy1, ox2, oy2 in taken):
                continue
            canvas[y:y + height, x:x + width] = cv2.resize(crop, (width, height),
                                                           interpolation=cv2.INTER_AREA)
            taken.append((x, y, x + width, y + height))
            boxes.append((x + bx1 * scale, y + by1 * scale, x + bx2 * scale, y + by2 * scale))
            k += 1
        if c % 2 == 0:
            canvas = np.repeat(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
        name = Path(f"crowd_{c:02d}")
        images[name], truth[name] = canvas, Truth(boxes)
    return images, truth


def timed(detector: FaceDetector, images: dict[Path, np.ndarray], repeat: int):
    """({photo: [(box, score)]}, best seconds per photo)."""
    detector(next(iter(images.values())))  # warm-up: model loading, caches
    best, found = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        found = {path: [(f.box, f.confidence) for f in detector(image)]
                 for path, image in images.items()}
        best = min(best, time.perf_counter() - start)
    return found, best / len(images)


def subject_found(found: dict[Path, list], images: dict[Path, np.ndarray]) -> float:
    """The share of photos with a face whose centre lies in the middle third (the subject)."""
    def central(box, shape) -> bool:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return abs(cx - shape[1] / 2) < shape[1] / 6 and abs(cy - shape[0] / 2) < shape[0] / 6

    return float(np.mean([any(central(b, images[p].shape) for b, _ in found[p])
                          for p in images]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED,
                        help="a folder holding dlib_faces/ and lfw_dev/ (../shared/data)")
    parser.add_argument("--boxes", type=Path, action="append", help=BOXES_HELP +
                        " (default: dlib_faces' testing.xml and training.xml)")
    parser.add_argument("--detectors", help="default: all but dlib's C++ `cnn`, about 7 s a "
                        "photo here (add it by name to get the `x cnn` column)",
                        default=",".join(n for n in DETECTORS.names() if n != "cnn"))
    parser.add_argument("--min-sizes", default="20", help="smallest face settings to compare")
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("--iou", type=float, default=0.4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect.json"))
    args = parser.parse_args()
    lfw = args.data / "lfw_dev"
    boxes = args.boxes or [args.data / "dlib_faces" / f for f in ("testing.xml", "training.xml")]
    require(*boxes, lfw, what="a folder holding dlib_faces/ and lfw_dev/")
    groups: dict[Path, Truth] = {}
    for file in boxes:
        groups.update(read_boxes(file))
    sets = {"groups": ({p: read_image(p) for p in groups}, groups), "crowds": crowds(lfw)}
    news = sorted(lfw.glob("*/*.jpg"))
    random.Random(0).shuffle(news)
    news_images = {p: read_image(p) for p in news[:LFW_PHOTOS]}
    rows = []
    for name in args.detectors.split(","):
        for min_size in (int(v) for v in args.min_sizes.split(",")):
            detector = FaceDetector(name, upsample=args.upsample, min_size=min_size,
                                    device=args.device)
            row: dict = {"detector": name, "min_size": min_size}
            for label, (images, truth) in sets.items():
                found, seconds = timed(detector, images, args.repeat)
                scores = evaluate(found, truth, args.iou)
                row[label] = {"recall": round(scores.recall, 4),
                              "precision": round(scores.precision, 4),
                              "ap": round(scores.ap, 4), "faces": scores.faces,
                              "seconds_per_photo": round(seconds, 4)}
            found, seconds = timed(detector, news_images, 1)
            row["lfw"] = {"subject_found": round(subject_found(found, news_images), 4),
                          "faces_per_photo": round(float(np.mean([len(v) for v in
                                                                  found.values()])), 3),
                          "seconds_per_photo": round(seconds, 4)}
            rows.append(row)
            print(f"{name} (min size {min_size}): done", flush=True)
    base = next((r["groups"]["seconds_per_photo"] for r in rows if r["detector"] == "cnn"),
                None)
    print(f"\n{len(sets['groups'][0])} group photos ({rows[0]['groups']['faces']} faces), "
          f"{CANVASES} crowd canvases ({rows[0]['crowds']['faces']} faces), {LFW_PHOTOS} LFW "
          f"photos; IoU {args.iou}, device {args.device}\n")
    print("| detector | min size | groups AP | recall | precision | s/photo | x cnn | crowds AP "
          "| recall | precision | s/photo | LFW subject | faces/photo | s/photo |")
    print("|---" * 14 + "|")
    for r in rows:
        g, c, n = r["groups"], r["crowds"], r["lfw"]
        ratio = f"{base / g['seconds_per_photo']:.1f}" if base else "-"
        print(f"| {r['detector']} | {r['min_size']} | {g['ap']:.3f} | {g['recall']:.3f} | "
              f"{g['precision']:.3f} | {g['seconds_per_photo']:.3f} | {ratio} | {c['ap']:.3f} | "
              f"{c['recall']:.3f} | {c['precision']:.3f} | {c['seconds_per_photo']:.3f} | "
              f"{n['subject_found']:.3f} | {n['faces_per_photo']:.2f} | "
              f"{n['seconds_per_photo']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                    "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
