"""Seconds per photo of dlib's MMOD CNN face detector against its PyTorch port
(`facecnn.models.dlib_mmod.MMODDetector`), in the same run, on the same photos.

Photos: the 9 PASCAL VOC group photos in ../shared/data/dlib_faces (or `--data DIR`), at
each `--upsample`. dlib runs one photo per call (its list call takes photos of one size
only, and computes on one core); the port one photo per call (batch 1) and all photos in one
call (photos of one size share a batch), on the CPU with each `--threads` count (1 and
torch's default: on a shared machine two OpenMP threads can lose more to waiting on each
other than they gain) and on CUDA when present. Each pass over the photos is timed
`--repeats` times, interleaved, and the best pass kept: the machine may be shared. After a
warm-up pass for each (the port builds its kernels for each new size on first use).

Agreement with dlib, per row: for every dlib box, the IoU of the best-matching port box
(mean and min) and the score difference (max); `unmatched` counts boxes of either side
without a match of IoU >= 0.5. Subnormals are flushed to zero for both (MMODDetector sets
it process-wide, so dlib runs with it too).

    python benchmarks/detect_mmod.py --json benchmarks/results/detect_mmod.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from datapath import SHARED, require  # noqa: E402
from facecnn.faces import dlib_models  # noqa: E402
from facecnn.models.dlib_mmod import MODEL_FILE, MMODDetector  # noqa: E402
from facecnn.models.dlib_port import model_file  # noqa: E402
from test_dlib_mmod import iou  # noqa: E402  (the tests' box overlap)


def best_passes(systems: dict, repeats: int) -> dict:
    """Seconds of each system's fastest pass, the systems taking turns `repeats` times."""
    times: dict = {key: [] for key in systems}
    for _ in range(repeats):
        for key, work in systems.items():
            start = time.perf_counter()
            work()
            times[key].append(time.perf_counter() - start)
    return {key: min(seconds) for key, seconds in times.items()}


def agreement(found: list, reference: list) -> dict:
    ious, diffs, unmatched = [], [], 0
    for ours, theirs in zip(found, reference):
        for box, score in theirs:
            match = max(ours, key=lambda f: iou(f[0], box), default=None)
            overlap = iou(match[0], box) if match else 0.0
            ious.append(overlap)
            if match:
                diffs.append(abs(match[1] - score))
            unmatched += overlap < 0.5
        unmatched += sum(max((iou(box, b) for b, _ in theirs), default=0.0) < 0.5
                         for box, _ in ours)
    return {"faces": len(ious), "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "min_iou": round(min(ious), 4) if ious else None,
            "max_score_diff": float(max(diffs, default=0.0)), "unmatched": unmatched}


def port(detector: MMODDetector, photos: list, upsample: int, batched: bool, threads: int):
    def work():
        torch.set_num_threads(threads)
        if batched:
            return detector(photos, upsample)
        return [detector([p], upsample)[0] for p in photos]
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", "--photos", type=Path, default=SHARED / "dlib_faces",
                        help="a folder of .jpg photos")
    parser.add_argument("--upsample", default="0,1", help="comma-separated upsample counts")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per row")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="comma-separated torch CPU thread counts for the port")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    require(args.data, what="a folder of .jpg photos")
    photos = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(args.data.glob("*.jpg"))]
    dlib = dlib_models.import_dlib()
    cnn = dlib.cnn_face_detection_model_v1(str(model_file(MODEL_FILE)))
    threads = sorted({int(t) for t in args.threads.split(",")})
    cpu = MMODDetector("cpu", batch_size=len(photos))
    gpu = MMODDetector("cuda", batch_size=len(photos)) if torch.cuda.is_available() else None
    rows = []
    for upsample in (int(u) for u in args.upsample.split(",")):
        def run_dlib():
            return [[((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()),
                      d.confidence) for d in cnn(p, upsample)] for p in photos]
        # (system, batch, device, CPU threads): dlib computes on one core (CPU time = wall)
        systems = {("dlib", 1, "cpu", 1): run_dlib}
        for n in threads:
            for batch in (1, len(photos)):
                systems["port", batch, "cpu", n] = port(cpu, photos, upsample, batch > 1, n)
        if gpu:
            for batch in (1, len(photos)):
                systems["port", batch, "cuda", threads[-1]] = port(gpu, photos, upsample,
                                                                   batch > 1, threads[-1])
        found = {key: work() for key, work in systems.items()}  # also the warm-up pass
        seconds = best_passes(systems, args.repeats)
        dlib_seconds = seconds["dlib", 1, "cpu", 1]
        for key in systems:
            system, batch, device, n = key
            rows.append({"system": system, "batch": batch, "device": device, "threads": n,
                         "upsample": upsample, "s_per_photo": round(seconds[key] / len(photos), 4),
                         "x_faster_than_dlib": round(dlib_seconds / seconds[key], 1),
                         **agreement(found[key], found["dlib", 1, "cpu", 1])})
    print("| system | batch | device | threads | upsample | s/photo | x dlib | dlib faces | "
          "mean IoU | min IoU | max score diff | unmatched |\n" + "|---" * 12 + "|")
    for r in rows:
        print(f"| {r['system']} | {r['batch']} | {r['device']} | {r['threads']} | "
              f"{r['upsample']} | {r['s_per_photo']:.3f} | {r['x_faster_than_dlib']:.1f} | "
              f"{r['faces']} | {r['mean_iou']} | {r['min_iou']} | "
              f"{r['max_score_diff']:.1e} | {r['unmatched']} |")
    print(f"{len(photos)} photos from {args.data}, "
          f"{torch.cuda.get_device_name() if gpu else 'no GPU'}, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
