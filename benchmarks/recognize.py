"""Enroll + recognize folders of real photos: facecnn's commands against face_recognition.

The photos are ../shared/data/lfw_dev's real news photos (250 x 250, often several faces): the
first `--known` people (by name) are enrolled from their first `--enrol` photos, and the rest
of their photos are recognized together with every photo of the next `--strangers` people,
who should come out unknown (a photo's answer is its subject's: the face nearest the centre).

Rows, all whole processes timed from start to answer, in one run:
- face_recognition's own API in one process (HOG, `face_encodings`, nearest enrolled
  encoding within its tolerance 0.6), and its CLI with `--cpus -1` (one process per core);
- `facecnn enroll` then `facecnn recognize --json`, for each detector and number of workers;
- start-up: `facecnn recognize` of one photo (the median of three runs).
images/s counts every photo, enrolled or recognized; `x face_recognition` is the ratio of
images/s to the API's, in the same run.

Needs `pip install --no-deps face_recognition` and `pip install "setuptools<81"` (its model
package imports pkg_resources).

    python benchmarks/recognize.py [--data ../shared/data/lfw_dev] [--detectors mtcnn,hog]
        [--workers 1,2] [--out benchmarks/results/recognize.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datapath import LFW_DEV, LFW_DEV_HELP, require

FACE_RECOGNITION = r"""
import json, sys
from pathlib import Path
import numpy as np
import face_recognition as fr
known, unknown = Path(sys.argv[1]), Path(sys.argv[2])
def centre_face(path):
    image = fr.load_image_file(path)
    boxes = fr.face_locations(image)
    if not boxes:
        return None
    h, w = image.shape[:2]
    box = min(boxes, key=lambda b: ((b[1] + b[3]) / 2 - w / 2) ** 2
              + ((b[0] + b[2]) / 2 - h / 2) ** 2)
    return fr.face_encodings(image, [box])[0]
names, vectors = [], []
for person in sorted(p for p in known.iterdir() if p.is_dir()):
    for photo in sorted(person.iterdir()):
        vector = centre_face(photo)
        if vector is not None:
            names.append(person.name); vectors.append(vector)
answers = {}
for photo in sorted(unknown.iterdir()):
    vector = centre_face(photo)
    if vector is None:
        answers[str(photo)] = "unknown"; continue
    distances = fr.face_distance(vectors, vector)
    best = int(np.argmin(distances))
    answers[str(photo)] = names[best] if distances[best] <= 0.6 else "unknown"
print(json.dumps(answers))
"""


def make_data(root: Path, lfw: Path, known: int, enrol: int, strangers: int
              ) -> tuple[Path, Path, Path, dict[str, str]]:
    """known/<person>/ (enrolment), flat/<person>__<photo> (the same, for face_recognition's
    CLI), unknown/ (to recognize), and each unknown photo's truth."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    tree, flat, unknown = root / "known", root / "flat", root / "unknown"
    for folder in (flat, unknown):
        folder.mkdir(parents=True)
    truth = {}
    for k, person in enumerate(people[:known + strangers]):
        for i, photo in enumerate(sorted(person.glob("*.jpg"))):
            if k < known and i < enrol:
                (tree / person.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(photo, tree / person.name / photo.name)
                shutil.copy(photo, flat / f"{person.name}__{photo.name}")
            else:
                shutil.copy(photo, unknown / photo.name)
                truth[photo.name] = person.name if k < known else "unknown"
    return tree, flat, unknown, truth


def score(answers: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    answers = {Path(f).name: name for f, name in answers.items()}
    known = [f for f in truth if truth[f] != "unknown"]
    strangers = [f for f in truth if truth[f] == "unknown"]
    right = sum(answers.get(f) == truth[f] for f in known)
    rejected = sum(answers.get(f, "unknown") == "unknown" for f in strangers)
    return {"known_named_right": right / len(known),
            "strangers_unknown": rejected / len(strangers),
            "accuracy": (right + rejected) / len(truth)}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return time.perf_counter() - start, out


def run_face_recognition_api(tree: Path, unknown: Path, env: dict[str, str]
                             ) -> tuple[float, dict[str, str]]:
    seconds, out = timed([sys.executable, "-c", FACE_RECOGNITION, str(tree), str(unknown)], env)
    return seconds, json.loads(out)


def run_face_recognition_cli(flat: Path, unknown: Path, env: dict[str, str]
                             ) -> tuple[float, dict[str, str]]:
    exe = shutil.which("face_recognition") or sys.exit("face_recognition is not installed")
    seconds, out = timed([exe, "--show-distance", "true", "--cpus", "-1", str(flat),
                          str(unknown)], env)
    best: dict[str, tuple[float, str]] = {}
    for line in out.strip().splitlines():
        if line.count(",") != 2:
            continue
        file, name, distance = line.split(",")
        if name in ("unknown_person", "no_persons_found"):
            best.setdefault(file, (float("inf"), "unknown"))
        elif float(distance) < best.get(file, (float("inf"), ""))[0]:
            best[file] = (float(distance), name.split("__")[0])
    return seconds, {f: name for f, (_, name) in best.items()}


def run_facecnn(tree: Path, unknown: Path, gallery: Path, options: list[str],
                enrolling: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, str]]:
    """`options` for both commands, `enrolling` (--flip, --jitter) for enroll: recognize
    takes them from the gallery."""
    facecnn = [sys.executable, "-m", "facecnn"]
    enrolled, _ = timed([*facecnn, "enroll", str(tree), "--gallery", str(gallery), "--quiet",
                         *options, *enrolling], env)
    recognized, out = timed([*facecnn, "recognize", str(unknown), "--gallery", str(gallery),
                             "--json", *options], env)
    answers = {r["file"]: (r["faces"][0]["name"] if r["faces"] else "unknown")
               for r in json.loads(out)}
    return enrolled + recognized, enrolled, answers


def start_up(gallery: Path, photo: Path, env: dict[str, str]) -> float:
    """`facecnn recognize` of one photo, whole process, the median of three runs."""
    return statistics.median(
        timed([sys.executable, "-m", "facecnn", "recognize", str(photo), "--gallery",
               str(gallery)], env)[0] for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LFW_DEV, help=LFW_DEV_HELP)
    parser.add_argument("--known", type=int, default=20)
    parser.add_argument("--enrol", type=int, default=4)
    parser.add_argument("--strangers", type=int, default=10)
    parser.add_argument("--detectors", default="mtcnn,hog", help="facecnn rows, comma-separated")
    parser.add_argument("--workers", default="1,2", help="facecnn rows, comma-separated")
    parser.add_argument("--flags", default="", help="enroll's flags beyond the defaults for "
                        "every facecnn row, e.g. --flags=--flip")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                        help="face_recognition's rows (the ratio needs them)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recognize.json"))
    args = parser.parse_args()
    require(args.data, what=LFW_DEV_HELP)
    work = Path(tempfile.mkdtemp(prefix="facecnn-recognize-"))
    # a cache of its own: no face is answered from an earlier run's cache
    env = {**os.environ, "FACECNN_CACHE_DIR": str(work / "cache")}
    try:
        tree, flat, unknown, truth = make_data(work, args.data, args.known, args.enrol,
                                               args.strangers)
        images = len(list(flat.iterdir())) + len(truth)
        subprocess.run([sys.executable, "-m", "facecnn", "recognize", str(next(flat.iterdir())),
                        "--gallery", str(work / "warm.db")], env=env, capture_output=True)
        rows = []
        if args.baselines:
            seconds, answers = run_face_recognition_api(tree, unknown, env)
            rows.append({"system": "face_recognition API (1 process)", "seconds": seconds,
                         **score(answers, truth)})
            seconds, answers = run_face_recognition_cli(flat, unknown, env)
            rows.append({"system": "face_recognition CLI --cpus -1", "seconds": seconds,
                         **score(answers, truth)})
        for detector in args.detectors.split(","):
            for workers in args.workers.split(","):
                gallery = work / f"{detector}-{workers}.db"
                shutil.rmtree(work / "cache", ignore_errors=True)
                seconds, enrolled, answers = run_facecnn(
                    tree, unknown, gallery,
                    ["--detector", detector, "--workers", workers], args.flags.split(), env)
                rows.append({"system": f"facecnn {detector}, {workers} worker(s) {args.flags}"
                             .strip(),
                             "seconds": seconds, "enroll_seconds": enrolled,
                             **score(answers, truth)})
        first = f"{args.detectors.split(',')[0]}-{args.workers.split(',')[0]}.db"
        one_photo = start_up(work / first, unknown / sorted(truth)[0], env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = rows[0]["seconds"]
    print(f"{images} photos of lfw_dev ({args.known} people enrolled from {args.enrol} each, "
          f"{args.strangers} strangers), {os.cpu_count()} cores")
    print(f"{'system':<36}{'seconds':>9}{'images/s':>10}"
          f"{'x face_rec' if args.baselines else 'x row 1':>11}{'known ok':>10}"
          f"{'strangers':>11}{'accuracy':>10}")
    for row in rows:
        row["images_per_second"] = images / row["seconds"]
        row["speedup_vs_face_recognition"] = baseline / row["seconds"]
        print(f"{row['system']:<36}{row['seconds']:>9.1f}{row['images_per_second']:>10.2f}"
              f"{row['speedup_vs_face_recognition']:>11.2f}{row['known_named_right']:>10.3f}"
              f"{row['strangers_unknown']:>11.3f}{row['accuracy']:>10.3f}")
    print(f"start-up: `facecnn recognize` of one photo takes {one_photo:.2f} s (whole process)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": images, "rows": rows,
                                    "one_photo_seconds": one_photo}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
