"""Faces embedded per second on aligned 150 px chips: dlib's C++ network against its PyTorch
port (`dlib_torch`), in the same run, on the same chips.

Chips are real: AT&T faces pasted into canvases, found by dlib's HOG detector and cut by
dlib's get_face_chip, repeated to fill the largest batch. dlib is timed one face per call
and with a list per call (its batched API); the port at batch 1, 32 and 128 on the CPU, and
on CUDA too when a GPU is present. Each row also gives the largest absolute difference of
its vectors from dlib's. Subnormal floats are flushed to zero for both (facecnn does so for
its networks; dlib gains ~5% from it too, so the comparison stays like for like).

    python benchmarks/embed_throughput.py [--data ../shared/data/att_faces]
        --json benchmarks/results/embed_throughput.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datapath import ATT_FACES, ATT_FACES_HELP, require
from facecnn.faces import dlib_models
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import create_embedder
from facecnn.runtime import flush_denormals


def canvas(att: Path, person: str, index: int, side: int = 220) -> np.ndarray:
    """An AT&T face (92 x 112 gray) in the middle of a grey RGB canvas, as the tests make."""
    face = np.asarray(Image.open(att / person / f"{index}.pgm").convert("RGB"))
    out = np.full((side, side, 3), 90, np.uint8)
    top, left = (side - face.shape[0]) // 2, (side - face.shape[1]) // 2
    out[top:top + face.shape[0], left:left + face.shape[1]] = face
    return out


def real_chips(att: Path, count: int) -> np.ndarray:
    detector, embedder = FaceDetector("hog"), create_embedder("dlib")
    chips = []
    for i in range(40):
        image = canvas(att, f"s{i + 1}", 1 + i % 10)
        faces = detector(image)
        if faces:
            chips.append(embedder.chips([(image, faces[0])])[0])
    return np.stack([chips[i % len(chips)] for i in range(count)])


def rate(work, faces: int, seconds: float) -> float:
    """Faces per second of `work()` (which embeds `faces` faces), repeated for `seconds`."""
    work()  # warm-up: first calls build kernels and buffers
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        done += faces
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ATT_FACES, help=ATT_FACES_HELP)
    parser.add_argument("--faces", type=int, default=128, help="chips per measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per row")
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    require(args.data, what=ATT_FACES_HELP)
    flush_denormals()
    chips = real_chips(args.data, args.faces)
    encoder = dlib_models.face_encoder()
    reference = np.asarray([np.asarray(v) for v in encoder.compute_face_descriptor(list(chips))])
    rows = []

    def add(system: str, batch: int, device: str, per_second: float, vectors: np.ndarray):
        rows.append({"system": system, "batch": batch, "device": device,
                     "faces_per_s": round(per_second, 2),
                     "max_abs_diff": float(np.abs(vectors - reference).max())})

    single = [np.asarray(encoder.compute_face_descriptor(c)) for c in chips]
    add("dlib", 1, "cpu", rate(lambda: [encoder.compute_face_descriptor(c) for c in chips],
                               len(chips), args.seconds), np.asarray(single))
    add("dlib", len(chips), "cpu",
        rate(lambda: encoder.compute_face_descriptor(list(chips)), len(chips), args.seconds),
        reference)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in (int(b) for b in args.batches.split(",")):
            embedder = create_embedder("dlib_torch", batch_size=batch, device=device)
            part = chips[:batch] if batch < len(chips) else chips
            add("dlib_torch", batch, device,
                rate(lambda: embedder.vectors_of(part), len(part), args.seconds),
                embedder.vectors_of(chips))
    best_dlib = max(r["faces_per_s"] for r in rows if r["system"] == "dlib")
    for row in rows:
        row["speedup_vs_best_dlib"] = round(row["faces_per_s"] / best_dlib, 2)
    print("| system | batch | device | faces/s | x best dlib | max abs diff |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['batch']} | {r['device']} | {r['faces_per_s']:.1f} | "
              f"{r['speedup_vs_best_dlib']:.2f} | {r['max_abs_diff']:.1e} |")
    print(f"torch threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
