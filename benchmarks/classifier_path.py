"""The seeds' classifier path against the gallery path, on the same people and held-out photos.

For each dataset the photos are cut twice by `facecnn prepare`: as ArcFace-template crops (the
default) and as dlib's chips (`--crop dlib_resnet`, what dlib's ResNet learnt on). On each,
`dlib_resnet --pretrained` is trained with a new head only (all-but-head) and with stages 4-5
unfrozen (seed C's policy), the latter also at the backbone's old lr (x 1) to show what the
lower backbone lr (x 0.01, the default) keeps. The gallery path is dlib's network with a
nearest-neighbour gallery of the same training photos, scored on the same held-out photos.
Accuracy and val loss are the kept checkpoint's (lowest val loss), with the epoch-1 accuracy
beside them: where both paths name every held-out face, the val loss still shows how sure the
classifier is.

    python benchmarks/classifier_path.py [--data ../shared/data] [--epochs 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from datapath import SHARED, require  # noqa: E402
from facecnn.faces.embedders.dlib import DlibEmbedder  # noqa: E402

DATASETS = {"att_faces": "AT&T (40 people)", "johns": "Johns (5 people, dlib chips)"}
RUNS = (  # (crop, freeze, backbone lr scale)
    ("arcface", "all-but-head", None), ("dlib", "all-but-head", None),
    ("arcface", "stem,stage1-3", None), ("dlib", "stem,stage1-3", None),
    ("dlib", "stem,stage1-3", 1.0))


def facecnn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "facecnn", *args, "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)


def gallery_accuracy(chips: Path, split: dict) -> float:
    """dlib's vectors of the training chips as the gallery; the nearest names each val chip."""
    embedder = DlibEmbedder()

    def vectors(ids: list[str]) -> tuple[np.ndarray, list[str]]:
        ids = [i for i in ids if (chips / i).is_file()]
        images = np.stack([np.asarray(Image.open(chips / i).convert("RGB")) for i in ids])
        return embedder.vectors_of(images), [Path(i).parts[0] for i in ids]

    refs, owners = vectors(split["train"])
    queries, truth = vectors(split["val"])
    nearest = np.linalg.norm(queries[:, None] - refs[None], axis=2).argmin(1)
    return float(np.mean([owners[k] == name for k, name in zip(nearest, truth)]))


def train(folder: Path, freeze: str, scale: float | None, epochs: int, project: Path,
          name: str) -> dict:
    args = ["train", str(folder), "--model", "dlib_resnet", "--pretrained", "--freeze", freeze,
            "--epochs", str(epochs), "--no-amp", "--project", str(project), "--name", name]
    if scale is not None:
        args += ["--backbone-lr-scale", str(scale)]
    start = time.perf_counter()
    facecnn(*args)
    run = project / "train" / name
    rows = list(csv.DictReader((run / "results.csv").open()))
    kept = min(rows, key=lambda r: float(r["val_loss"]))
    return {"run": run, "seconds": time.perf_counter() - start,
            "epoch1_acc": float(rows[0]["val_acc"]), "kept_epoch": int(kept["epoch"]),
            "val_acc": float(kept["val_acc"]), "val_loss": float(kept["val_loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED,
                        help="a folder holding att_faces/ and johns/")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                        / "classifier_path.json")
    args = parser.parse_args()
    require(*(args.data / name for name in DATASETS), what="att_faces/ and johns/ inside")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, title in DATASETS.items():
            folders = {"arcface": Path(tmp) / dataset / "arcface",
                       "dlib": Path(tmp) / dataset / "dlib"}
            facecnn("prepare", str(args.data / dataset), str(folders["arcface"]))
            facecnn("prepare", str(args.data / dataset), str(folders["dlib"]),
                    "--crop", "dlib_resnet")
            for crop, freeze, scale in RUNS:
                name = f"{dataset}_{crop}_{freeze.replace(',', '_')}_{scale}"
                row = train(folders[crop], freeze, scale, args.epochs, Path(tmp), name)
                split = json.loads((row.pop("run") / "split.json").read_text())
                row.update(dataset=title, crop=crop, freeze=freeze,
                           backbone_lr_scale=0.01 if scale is None else scale,
                           gallery_acc=gallery_accuracy(folders["dlib"], split),
                           val_images=len(split["val"]))
                results.append(row)
                print(row, flush=True)
    print(f"\n| data | crop | freeze | backbone lr x | epoch-1 acc | kept epoch | val loss | "
          f"classifier acc | gallery acc | gap (points) | train s |\n|{'---|' * 11}")
    for r in results:
        print(f"| {r['dataset']} | {r['crop']} | {r['freeze']} | {r['backbone_lr_scale']:g} | "
              f"{r['epoch1_acc']:.3f} | {r['kept_epoch']} | {r['val_loss']:.4f} | "
              f"{r['val_acc']:.3f} | "
              f"{r['gallery_acc']:.3f} | {100 * (r['gallery_acc'] - r['val_acc']):+.1f} | "
              f"{r['seconds']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
