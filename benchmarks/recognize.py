"""Open-set recognition: facecnn's enroll + recognize against face_recognition's CLI.

Both see the same photos: AT&T faces (doubled in size) pasted at random places into 640x480
textured backgrounds. People s1..s30 are known from photos 1-5; the test set is their photos
6-10 plus all photos of s31..s40, who are strangers and should come out unknown.
face_recognition (`face_recognition known/ unknown/`, default tolerance 0.6, one process, and
again with --cpus -1) takes each known photo as one encoding named by its file; facecnn
enrolls the same photos and calibrates its threshold. Wall time includes start-up and
enrolling, for both.

Needs `pip install --no-deps face_recognition` and `pip install "setuptools<81"` (its model
package imports pkg_resources).

    python benchmarks/recognize.py [--data ../shared/data/att_faces] [--detectors mtcnn,hog]
        [--landmarks auto,dlib68] [--out benchmarks/results/recognize.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datapath import ATT_FACES, ATT_FACES_HELP, require

KNOWN = [f"s{i}" for i in range(1, 31)]
STRANGERS = [f"s{i}" for i in range(31, 41)]


def photo(att: Path, person: str, index: int, rng: np.random.Generator) -> np.ndarray:
    """A 640x480 'photo': blurred-noise background, the face at twice its size somewhere."""
    noise = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    background = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 3), (640, 480),
                            interpolation=cv2.INTER_CUBIC)
    face = Image.open(att / person / f"{index}.pgm").convert("RGB").resize(
        (184, 224), Image.Resampling.BICUBIC)
    top, left = rng.integers(20, 480 - 244), rng.integers(20, 640 - 204)
    background[top:top + 224, left:left + 184] = np.asarray(face)
    return background


def make_data(root: Path, att: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    tree, flat, unknown = root / "known_tree", root / "known_flat", root / "unknown"
    for folder in (flat, unknown):
        folder.mkdir(parents=True)
    for person in KNOWN + STRANGERS:
        for i in range(1, 11):
            image = Image.fromarray(photo(att, person, i, rng))
            if person in KNOWN and i <= 5:
                (tree / person).mkdir(parents=True, exist_ok=True)
                image.save(tree / person / f"{i}.jpg", quality=92)
                image.save(flat / f"{person}_{i}.jpg", quality=92)
            elif person in STRANGERS or i > 5:
                image.save(unknown / f"{person}_{i}.jpg", quality=92)
    return tree, flat, unknown


def truth(file: str) -> str:
    person = Path(file).stem.split("_")[0]
    return person if person in KNOWN else "unknown"


def score(answers: dict[str, str]) -> dict[str, float]:
    known = [f for f in answers if truth(f) != "unknown"]
    strangers = [f for f in answers if truth(f) == "unknown"]
    right = sum(answers[f] == truth(f) for f in known)
    rejected = sum(answers[f] == "unknown" for f in strangers)
    return {"known_named_right": right / len(known), "strangers_unknown": rejected / len(strangers),
            "accuracy": (right + rejected) / len(answers)}


def run_face_recognition(flat: Path, unknown: Path, cpus: int) -> tuple[float, dict[str, str]]:
    exe = shutil.which("face_recognition") or sys.exit("face_recognition is not installed")
    start = time.perf_counter()
    out = subprocess.run([exe, "--show-distance", "true", "--cpus", str(cpus), str(flat),
                          str(unknown)], capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    best: dict[str, tuple[float, str]] = defaultdict(lambda: (np.inf, "unknown"))
    for line in out.strip().splitlines():
        if line.count(",") != 2:  # "WARNING: No faces found in <known photo>. Ignoring file."
            continue
        file, name, distance = line.split(",")
        if name in ("unknown_person", "no_persons_found"):
            best.setdefault(file, (np.inf, "unknown"))
        elif float(distance) < best[file][0]:
            best[file] = (float(distance), name.split("_")[0])
    return seconds, {f: name for f, (_, name) in best.items()}


def run_facecnn(tree: Path, unknown: Path, gallery: Path, options: list[str]
                ) -> tuple[float, float, dict[str, str]]:
    facecnn = [sys.executable, "-m", "facecnn"]
    start = time.perf_counter()
    subprocess.run([*facecnn, "enroll", str(tree), "--gallery", str(gallery), "--quiet",
                    *options], check=True, capture_output=True)
    enrolled = time.perf_counter()
    out = subprocess.run([*facecnn, "recognize", str(unknown), "--gallery", str(gallery),
                          "--json", *options], check=True, capture_output=True, text=True).stdout
    done = time.perf_counter()
    answers = {r["file"]: (r["faces"][0]["name"] if r["faces"] else "unknown")
               for r in json.loads(out)}
    return done - start, enrolled - start, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ATT_FACES, help=ATT_FACES_HELP)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recognize.json"))
    parser.add_argument("--detectors", default="mtcnn", help="facecnn rows, comma-separated")
    parser.add_argument("--landmarks", default="auto", help="auto and/or dlib68, comma-separated")
    args = parser.parse_args()
    require(args.data, what=ATT_FACES_HELP)
    work = Path(tempfile.mkdtemp(prefix="facecnn-recognize-"))
    try:
        tree, flat, unknown = make_data(work, args.data)
        images = len(list(flat.iterdir())) + len(list(unknown.iterdir()))
        rows = []
        for label, cpus in (("face_recognition (1 process)", 1),
                            ("face_recognition --cpus -1", -1)):
            seconds, answers = run_face_recognition(flat, unknown, cpus)
            rows.append({"system": label, "seconds": seconds, **score(answers)})
        for detector in args.detectors.split(","):
            for landmarks in args.landmarks.split(","):
                options = ["--detector", detector, "--landmarks", landmarks]
                gallery = work / f"{detector}-{landmarks}.db"
                seconds, enroll_seconds, answers = run_facecnn(tree, unknown, gallery, options)
                rows.append({"system": f"facecnn {detector}, landmarks {landmarks}",
                             "seconds": seconds, "enroll_seconds": enroll_seconds,
                             **score(answers)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = rows[0]["seconds"]
    print(f"{images} photos of 640x480 ({len(KNOWN) * 5} known, the rest to recognize), "
          f"{os.cpu_count()} cores")
    print(f"{'system':<36}{'seconds':>9}{'faces/s':>9}{'x speed':>9}{'known ok':>10}"
          f"{'strangers':>11}{'accuracy':>10}")
    for row in rows:
        row["faces_per_second"] = images / row["seconds"]
        row["speedup_vs_face_recognition"] = baseline / row["seconds"]
        print(f"{row['system']:<36}{row['seconds']:>9.1f}{row['faces_per_second']:>9.2f}"
              f"{row['speedup_vs_face_recognition']:>9.2f}{row['known_named_right']:>10.3f}"
              f"{row['strangers_unknown']:>11.3f}{row['accuracy']:>10.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": images, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
