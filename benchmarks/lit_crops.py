"""Face sets shot under a moving light: one evenly lit grey crop enrolled per person, every
other crop of theirs named under hard light. facecnn's default rule against
face_recognition's, on the same crops.

Every lfw_dev photo's subject is cut as a grey 168 x 192 crop (the layout of such sets) in
three lights: `frontal` (as photographed: what is enrolled), `shadow` (crops.py's: lit from
one side, the far half fading into deep shadow) and `relit` (one distant light from a random
direction, 120 degrees either side and 40 below to 80 above the camera, on a round face by
Lambert's law, 2-15% ambient: much of the face near black, no cast shadows). Each crop is
embedded once per tool: `facecnn embed --largest-only` (the default pipeline) and
face_recognition with the whole crop as the face. Each of --draws draws picks --known people
(their first crop, frontal, enrolled) and --strangers others (every crop of theirs, in the
light of the row: right is "unknown"). Rows, per light and tool, the mean over the draws:
crops with no face, known crops named right and named wrong, strangers' crops named, and,
strangers left out (a closed set), known crops named right at the threshold that names as
many wrong as face_recognition's 0.6 names in the same draw.

Needs `pip install --no-deps face_recognition` and `pip install "setuptools<81"`.

    python benchmarks/lit_crops.py [--draws 10] [--out benchmarks/results/lit_crops.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from crops import subject_layouts
from crops_draws import face_recognition_vectors, facecnn_vectors, judged
from datapath import SHARED, require

LIGHTS = ("frontal", "shadow", "relit")
METRICS = ("no_face", "known_named_right", "known_named_wrong", "strangers_named",
           "known_right_at_fr_wrong")


def relit(tight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey, 168 x 192: one distant light from a random direction on an ellipsoid face."""
    grey = cv2.cvtColor(cv2.resize(tight, (168, 192)), cv2.COLOR_RGB2GRAY) / 255.0
    v, u = np.mgrid[-1:1:192j, -1:1:168j]
    u, v = u / 0.95, v / 1.05
    normal = np.stack([u, -v, np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0.05, None))], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    side, up = np.radians(rng.uniform(-120, 120)), np.radians(rng.uniform(-40, 80))
    light = np.array([np.sin(side) * np.cos(up), np.sin(up), np.cos(side) * np.cos(up)])
    ambient = rng.uniform(0.02, 0.15)
    shade = ambient + (1 - ambient) * np.clip(normal @ light, 0, None)
    return np.repeat((255 * np.clip(grey * shade, 0, 1)).astype(np.uint8)[:, :, None], 3, 2)


def cut_lights(data: Path, root: Path) -> list[str]:
    """root/<light>/<person>/<i>.png for every lfw_dev photo's subject; the people."""
    from facecnn.faces.detect import FaceDetector

    detector, rng = FaceDetector(), np.random.default_rng(0)
    people = sorted(p for p in (data / "lfw_dev").iterdir() if p.is_dir())
    for person in people:
        for i, photo in enumerate(sorted(person.glob("*.jpg"))):
            layouts = subject_layouts(photo, detector, i)
            if layouts is None:
                continue
            tight = cv2.resize(layouts["tight"], (168, 192))
            grey = cv2.cvtColor(tight, cv2.COLOR_RGB2GRAY)
            for light, crop in (("frontal", np.repeat(grey[:, :, None], 3, axis=2)),
                                ("shadow", layouts["shadow"]), ("relit", relit(tight, rng))):
                target = root / light / person.name / f"{i}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(target)
    return [p.name for p in people]


def draw(root: Path, light: str, people: list[str], known_count: int, strangers: int,
         seed: int) -> tuple[set[str], list[str], list[str]]:
    """(known people, frontal crops enrolled, crops to name in `light`) of one draw."""
    chosen = np.random.default_rng(seed).permutation(len(people))[:known_count + strangers]
    known = {people[i] for i in chosen[:known_count]}
    enrol, queries = [], []
    for i in chosen:
        crops = sorted((root / light / people[i]).glob("*.png"), key=lambda p: int(p.stem))
        if people[i] in known:
            enrol.append(str((root / "frontal" / people[i] / crops[0].name).resolve()))
            crops = crops[1:]
        queries += [str(p.resolve()) for p in crops]
    return known, enrol, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--known", type=int, default=38)
    parser.add_argument("--strangers", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lit_crops.json"))
    parser.add_argument("--data", type=Path, default=SHARED, help="a folder holding lfw_dev/ "
                        "(../shared/data)")
    args = parser.parse_args()
    require(args.data / "lfw_dev", what="a folder holding lfw_dev/")
    rows = []
    print(f"{'light':8s} {'tool':16s} " + " ".join(f"{m:>23s}" for m in METRICS))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        people = cut_lights(args.data, root)
        # face_recognition first: its named-wrong rate in each draw is facecnn's cut there
        vectors = {(tool, light): embed(root / light) for light in LIGHTS for tool, embed in
                   (("face_recognition", face_recognition_vectors),
                    ("facecnn", facecnn_vectors))}
        for light in LIGHTS:
            fr_wrong: list[float] = []
            for tool in ("face_recognition", "facecnn"):
                per_draw = []
                for seed in range(args.draws):
                    known, enrol, queries = draw(root, light, people, args.known,
                                                 args.strangers, seed)
                    enrolled = {f: vectors[tool, "frontal"][f] for f in enrol
                                if f in vectors[tool, "frontal"]}
                    per_draw.append(judged(tool, enrolled, queries, vectors[tool, light],
                                           known, root / f"{light}{seed}.db",
                                           None if tool == "face_recognition" else
                                           fr_wrong[seed]))
                    if tool == "face_recognition":
                        fr_wrong.append(per_draw[-1]["known_named_wrong"])
                row = {"light": light, "tool": tool, "draws": args.draws,
                       **{m: float(np.mean([d[m] for d in per_draw])) for m in METRICS}}
                rows.append(row)
                print(f"{light:8s} {tool:16s} " + " ".join(f"{row[m]:23.3f}" for m in METRICS),
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"known": args.known, "strangers": args.strangers,
                                    "rows": rows}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
