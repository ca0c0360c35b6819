"""Faces that come as crops: facecnn's default commands (no flags) against face_recognition
told that the whole crop is the face.

Every set is cut from ../shared/data/lfw_dev: the subject of each photo (the face nearest the
centre, found by the default detector in the whole photo), in the layouts face sets ship:

- tight: the detector's box, in colour; grey: the same in grey levels;
- arcface112: 112 px chips aligned on the five points (ArcFace's template);
- dlib150: dlib's 150 px chips (what face_recognition and `facecnn cluster` cut);
- shadow: grey 168 x 192 crops lit from one side, the far half in deep shadow (face sets shot
  under controlled light);
- nonface: patches of ../shared/data/dlib_faces photos away from every boxed face, and corners
  of LFW photos: these must stay "no face".

For each layout, `facecnn enroll` takes the first 5 crops of each of the known people, and
`facecnn recognize --json` names the rest of theirs and every crop of the strangers (right:
"unknown"), as whole CLI processes. face_recognition encodes the same crops with the whole crop
as the face location and names a query by its nearest enrolled encoding within its default
tolerance 0.6. Rows: crops with no face found, named right, named wrong (another person, or a
stranger named), unknown; known people's crops named right, strangers' crops named; and known
crops named right at the threshold that names 1% of the strangers' crops (for facecnn, from a
second `recognize --threshold 1e6` on the same gallery): how well the vectors and the rule tell
people apart, whatever the default threshold. For nonface, the share taken as a face.

Needs `pip install --no-deps face_recognition` and `pip install "setuptools<81"`.

    python benchmarks/crops.py [--known 40] [--strangers 20] [--out benchmarks/results/crops.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datapath import SHARED, require

ENROL = 5
STRANGERS_NAMED = 0.01  # the stranger rate at which tools' separation is compared
Nearest = dict[str, tuple[str, float] | None]
LAYOUTS = ("tight", "grey", "arcface112", "dlib150", "shadow")


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def _shadow(tight: np.ndarray, side: int) -> np.ndarray:
    """Grey, 168 x 192, lit from the left or right: the far half fades into deep shadow."""
    grey = cv2.cvtColor(cv2.resize(tight, (168, 192)), cv2.COLOR_RGB2GRAY) / 255.0
    ramp = np.linspace(1.0, 0.03, 168)[None, :]
    lit = (255 * (grey * (ramp if side else ramp[:, ::-1])) ** 1.5).astype(np.uint8)
    return np.repeat(lit[:, :, None], 3, axis=2)


def layouts(image: np.ndarray, face, index: int) -> dict[str, np.ndarray]:
    from facecnn.faces.align import align_face
    from facecnn.faces.crops import DLIB_CHIP, make_chips

    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    tight = image[max(y1, 0):y2, max(x1, 0):x2]
    return {"tight": tight, "grey": _grey(tight),
            "arcface112": align_face(image, face.landmarks, 112),
            "dlib150": make_chips(DLIB_CHIP, [(image, face)])[0],
            "shadow": _shadow(tight, index % 2)}


def make_sets(root: Path, data: Path, known: int, strangers: int, seed: int) -> dict[str, int]:
    """root/<layout>/{enrol,query}/<person>/<i>.png and root/nonface/<i>.png, from `data`'s
    lfw_dev and dlib_faces."""

    from facecnn.faces.detect import FaceDetector

    rng = np.random.default_rng(seed)
    people = sorted(p for p in (data / "lfw_dev").iterdir() if p.is_dir())
    chosen = [people[i] for i in rng.permutation(len(people))[:known + strangers]]
    detector = FaceDetector()
    counts = {"enrol": 0, "query": 0}
    for n, person in enumerate(chosen):
        for i, photo in enumerate(sorted(person.glob("*.jpg"))):
            crops = subject_layouts(photo, detector, i)
            if crops is None:
                continue
            part = "enrol" if n < known and i < ENROL else "query"
            counts[part] += 1
            for layout, crop in crops.items():
                target = root / layout / part / person.name / f"{i}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(target)
    _nonfaces(root / "nonface", data / "dlib_faces", rng)
    return counts


def subject_layouts(photo: Path, detector, index: int) -> dict[str, np.ndarray] | None:
    """The photo's subject (the face nearest the centre) in every layout; None if no face
    with landmarks is found."""
    from facecnn.data.decode import read_image
    from facecnn.faces.pipeline import picked

    image = read_image(photo)
    faces = picked(detector(image), image.shape, "center")
    if not faces or faces[0].landmarks is None:
        return None
    return layouts(image, faces[0], index)


def _nonfaces(folder: Path, groups: Path, rng: np.random.Generator) -> None:
    from facecnn.data.decode import read_image

    folder.mkdir(parents=True)
    count = 0
    for xml in ("training.xml", "testing.xml"):
        for entry in ET.parse(groups / xml).getroot().iter("image"):
            image = read_image(groups / entry.get("file"))
            boxes = [(int(b.get("left")), int(b.get("top")),
                      int(b.get("left")) + int(b.get("width")),
                      int(b.get("top")) + int(b.get("height"))) for b in entry.iter("box")]
            height, width = image.shape[:2]
            for _ in range(60):
                side = int(rng.integers(60, 180))
                x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
                margin = side // 4  # clear of every face, hair and shoulders included
                if any(x < bx2 + margin and x + side > bx1 - margin and y < by2 + margin
                       and y + side > by1 - margin for bx1, by1, bx2, by2 in boxes):
                    continue
                Image.fromarray(image[y:y + side, x:x + side]).save(folder / f"{count}.png")
                count += 1


def _recognized(layout_dir: Path, gallery: Path, flags: list[str]
                ) -> dict[str, tuple[str, float] | None]:
    """file -> (name, distance) of its face as `facecnn recognize --json` answers (None: no
    face)."""
    answer = subprocess.run([sys.executable, "-m", "facecnn", "recognize",
                             str(layout_dir / "query"), "--gallery", str(gallery), "--json",
                             "--quiet", *flags], capture_output=True, text=True, check=True)
    found = {}
    for result in json.loads(answer.stdout):
        faces = result.get("faces") or []
        found[str(Path(result["file"]).resolve())] = ((faces[0]["name"], faces[0]["distance"])
                                                      if faces else None)
    return found


def facecnn_run(layout_dir: Path, work: Path, flags: list[str], enrolling: list[str]
                ) -> tuple[dict[str, str | None], Nearest, float]:
    """file -> the name facecnn's commands (default, or with `flags`, and `enrolling` for
    enroll alone) give its crop (None: no face); file -> its nearest person and distance (a
    second recognize with every threshold lifted, untimed)."""
    started = time.perf_counter()
    gallery = work / "g.db"
    subprocess.run([sys.executable, "-m", "facecnn", "enroll", str(layout_dir / "enrol"),
                    "--gallery", str(gallery), "--quiet", *flags, *enrolling], check=True,
                   capture_output=True)
    named = {f: a and a[0] for f, a in _recognized(layout_dir, gallery, flags).items()}
    seconds = time.perf_counter() - started
    return named, _recognized(layout_dir, gallery, [*flags, "--threshold", "1e6"]), seconds


def face_recognition_run(layout_dir: Path) -> tuple[dict[str, str | None], Nearest, float]:
    """file -> the name face_recognition gives its crop, the whole crop as the face; file ->
    its nearest enrolled encoding's person and distance."""
    started = time.perf_counter()
    names, vectors = [], []
    for path in sorted((layout_dir / "enrol").glob("*/*.png")):
        names.append(path.parent.name)
        vectors.append(encode_whole(path))
    refs = np.array(vectors)
    named, nearest = {}, {}
    for path in sorted((layout_dir / "query").glob("*/*.png")):
        distances = np.linalg.norm(refs - encode_whole(path), axis=1)
        best = int(np.argmin(distances))
        named[str(path.resolve())] = names[best] if distances[best] <= 0.6 else "unknown"
        nearest[str(path.resolve())] = (names[best], float(distances[best]))
    return named, nearest, time.perf_counter() - started


def encode_whole(path: Path) -> np.ndarray:
    """face_recognition's encoding of a crop, the whole crop as the face's location."""
    import face_recognition

    image = face_recognition.load_image_file(path)
    height, width = image.shape[:2]
    return face_recognition.face_encodings(image, [(0, width, height, 0)])[0]


def score(named: dict[str, str | None], known: set[str]) -> dict[str, float]:
    truth = {file: Path(file).parent.name for file in named}
    total = len(named)
    right = sum(1 for f, n in named.items()
                if n == (truth[f] if truth[f] in known else "unknown"))
    wrong = sum(1 for f, n in named.items() if n not in (None, "unknown") and n != truth[f])
    return {"crops": total, "no_face": sum(n is None for n in named.values()) / total,
            "right": right / total, "wrong": wrong / total,
            "unknown": sum(n == "unknown" for n in named.values()) / total,
            "known_named_right": sum(1 for f, n in named.items()
                                     if truth[f] in known and n == truth[f])
            / max(1, sum(truth[f] in known for f in named)),
            "strangers_named": sum(1 for f, n in named.items()
                                   if truth[f] not in known and n not in (None, "unknown"))
            / max(1, sum(truth[f] not in known for f in named))}


def known_at_equal_strangers(nearest: Nearest, known: set[str],
                             strangers_named: float = STRANGERS_NAMED) -> float:
    """Known crops named right at the threshold that names `strangers_named` of the strangers'
    crops: how well a tool's vectors and rule tell people apart, whatever its default
    threshold (no face counts as not named)."""
    truth = {file: Path(file).parent.name for file in nearest}
    stranger = [d for f, (_, d) in ((f, a) for f, a in nearest.items() if a)
                if truth[f] not in known]
    cut = np.quantile(stranger, strangers_named)
    queries = [f for f in nearest if truth[f] in known]
    return sum(1 for f in queries if nearest[f] and nearest[f][0] == truth[f]
               and nearest[f][1] <= cut) / max(1, len(queries))


def nonface_rate(folder: Path) -> tuple[float, int]:
    """The share of non-face patches facecnn's default detector takes for a face."""
    from facecnn.data.decode import read_image
    from facecnn.faces.detect import FaceDetector

    detector = FaceDetector()
    patches = sorted(folder.glob("*.png"))
    found = sum(bool(detector(read_image(p))) for p in patches)
    return found / len(patches), len(patches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--known", type=int, default=40)
    parser.add_argument("--strangers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--tools", default="facecnn,face_recognition")
    parser.add_argument("--flags", default="", help="facecnn's flags beyond the defaults, "
                        "for enroll and recognize alike (e.g. \"--detector hog\")")
    parser.add_argument("--enroll-flags", default="", help="enroll's alone: recognize takes "
                        "them from the gallery (e.g. --enroll-flags=--flip)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/crops.json"))
    parser.add_argument("--data", type=Path, default=SHARED, help="a folder holding lfw_dev/ "
                        "and dlib_faces/ (../shared/data)")
    args = parser.parse_args()
    require(args.data / "lfw_dev", args.data / "dlib_faces",
            what="a folder holding lfw_dev/ and dlib_faces/")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counts = make_sets(root, args.data, args.known, args.strangers, args.seed)
        print(f"{counts['enrol']} enrolment and {counts['query']} query crops per layout "
              f"({args.known} known people, {args.strangers} strangers)", flush=True)
        print(f"{'layout':11s} {'tool':16s} {'no face':>8s} {'right':>6s} {'wrong':>6s} "
              f"{'unknown':>8s} {'known right':>11s} {'strangers named':>15s} "
              f"{'known right at 1%':>17s} {'s':>6s}")
        for layout in args.layouts.split(","):
            known = {p.name for p in (root / layout / "enrol").iterdir()}
            runs = {"facecnn": lambda d=root / layout, w=root / f"w_{layout}":
                    (w.mkdir(), facecnn_run(d, w, args.flags.split(),
                                             args.enroll_flags.split()))[1],
                    "face_recognition": lambda d=root / layout: face_recognition_run(d)}
            for tool, run in ((t, runs[t]) for t in args.tools.split(",")):
                named, nearest, seconds = run()
                row = {"layout": layout, "tool": tool, **score(named, known),
                       "known_right_at_1pct": known_at_equal_strangers(nearest, known),
                       "seconds": round(seconds, 1)}
                rows.append(row)
                print(f"{layout:11s} {tool:16s} {row['no_face']:8.3f} {row['right']:6.3f} "
                      f"{row['wrong']:6.3f} {row['unknown']:8.3f} "
                      f"{row['known_named_right']:11.3f} {row['strangers_named']:15.3f} "
                      f"{row['known_right_at_1pct']:17.3f} {seconds:6.1f}", flush=True)
        taken, patches = nonface_rate(root / "nonface")
        print(f"nonface: {patches} patches, {taken:.3f} taken for a face by facecnn's default "
              "detector")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "nonface": {"patches": patches,
                                                              "taken": taken}}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
