"""Training throughput: facecnn's trainer against a plain PyTorch loop of the kind seed C wrote.

The plain loop reads every JPEG with cv2.imread, resizes it and applies ToTensor + Normalize
in a Dataset's __getitem__, every epoch, through a DataLoader (batch 128), in fp32. facecnn
decodes each image once into its uint8 cache and trains with its defaults (channels-last,
bf16 autocast where the hardware has it). Same model, data, batch size and machine, in one
run; images per second of training (validation excluded), epoch 1 (facecnn's includes
building the cache) and later epochs.

    python benchmarks/train_throughput.py [--data ../shared/data/att_faces] [--images 400]
        [--epochs 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from datapath import ATT_FACES, ATT_FACES_HELP, require
from facecnn.config import TrainConfig
from facecnn.data.datasets import load_dataset
from facecnn.models.catalog import create_model, model_info
from facecnn.train.trainer import Trainer

CASES = [("resnet18", 112), ("seed_face_cnn", 224)]
BATCH = 128


def make_jpegs(att: Path, root: Path, count: int, side: int) -> Path:
    """`count` colour JPEGs (side x side) of the 40 AT&T people, varied by flips and crops."""
    rng = np.random.default_rng(0)
    sources = sorted(att.glob("s*/*.pgm"))
    for i in range(count):
        src = sources[i % len(sources)]
        img = Image.open(src).convert("RGB")
        if i >= len(sources):
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            dx, dy = rng.integers(0, 8, size=2)
            img = img.crop((dx, dy, img.width - 8 + dx, img.height - 8 + dy))
        out = root / src.parent.name
        out.mkdir(parents=True, exist_ok=True)
        img.resize((side, side), Image.Resampling.BICUBIC).save(out / f"{i}.jpg", quality=92)
    return root


class SeedCDataset(torch.utils.data.Dataset):
    """What seed C's training script did: decode, resize and convert every item, every epoch."""

    def __init__(self, root: Path, size: int) -> None:
        self.items = [(p, i) for i, d in enumerate(sorted(root.iterdir()))
                      for p in sorted(d.iterdir())]
        self.size = size
        self.to_tensor = transforms.Compose([
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (self.size, self.size))
        return self.to_tensor(image), label


def plain_loop(root: Path, model_name: str, size: int, epochs: int) -> list[float]:
    """Seconds per epoch of the plain loop."""
    torch.manual_seed(0)
    data = SeedCDataset(root, size)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True)
    model = create_model(model_name, len({label for _, label in data.items}), img_size=size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def facecnn_run(root: Path, model_name: str, size: int, epochs: int,
                work: Path, **options: object) -> tuple[float, list[float], int]:
    """(seconds to build the image cache, training seconds per epoch, training images)."""
    os.environ["FACECNN_CACHE_DIR"] = str(work / f"cache-{model_name}-{len(options)}")
    start = time.perf_counter()
    load_dataset(str(root), size, model_info(model_name).in_chans, val_split=0.1)
    cache_seconds = time.perf_counter() - start
    cfg = TrainConfig(data=str(root), model=model_name, img_size=size, epochs=epochs,
                      batch_size=BATCH, val_split=0.1, project=str(work / "runs"), quiet=True,
                      **options)
    trainer = Trainer(cfg)
    trainer.fit()
    return cache_seconds, [row["seconds"] for row in trainer.state.history], len(trainer.data.train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ATT_FACES, help=ATT_FACES_HELP)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--side", type=int, default=250, help="JPEG side in pixels")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/train_throughput.json"))
    args = parser.parse_args()
    require(args.data, what=ATT_FACES_HELP)

    work = Path(tempfile.mkdtemp(prefix="facecnn-bench-"))
    try:
        root = make_jpegs(args.data, work / "jpegs", args.images, args.side)
        results = []
        for model_name, size in CASES:
            plain = plain_loop(root, model_name, size, args.epochs)
            cache_s, ours, n_train = facecnn_run(root, model_name, size, args.epochs, work)
            _, fp32, _ = facecnn_run(root, model_name, size, args.epochs, work, amp=False)
            n_plain = args.images
            row = {
                "model": model_name, "img_size": size, "images": args.images,
                "plain_epoch1_ips": n_plain / plain[0],
                "plain_later_ips": n_plain / float(np.mean(plain[1:])),
                "facecnn_epoch1_ips": n_train / (cache_s + ours[0]),
                "facecnn_later_ips": n_train / float(np.mean(ours[1:])),
                "facecnn_fp32_later_ips": n_train / float(np.mean(fp32[1:])),
                "cache_build_seconds": cache_s,
            }
            row["ratio_epoch1"] = row["facecnn_epoch1_ips"] / row["plain_epoch1_ips"]
            row["ratio_later"] = row["facecnn_later_ips"] / row["plain_later_ips"]
            row["ratio_later_fp32"] = row["facecnn_fp32_later_ips"] / row["plain_later_ips"]
            results.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = (f"{'model':<15}{'size':>5}{'plain ep1':>11}{'plain later':>13}{'facecnn ep1':>13}"
              f"{'facecnn later':>15}{'fp32 later':>12}{'x ep1':>8}{'x later':>9}{'x fp32':>8}")
    print(f"images/second of training, {args.images} JPEGs of {args.side}px, batch {BATCH}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(header)
    for r in results:
        print(f"{r['model']:<15}{r['img_size']:>5}{r['plain_epoch1_ips']:>11.1f}"
              f"{r['plain_later_ips']:>13.1f}{r['facecnn_epoch1_ips']:>13.1f}"
              f"{r['facecnn_later_ips']:>15.1f}{r['facecnn_fp32_later_ips']:>12.1f}"
              f"{r['ratio_epoch1']:>8.2f}{r['ratio_later']:>9.2f}{r['ratio_later_fp32']:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "torch": torch.__version__,
                                    "threads": torch.get_num_threads(),
                                    "epochs": args.epochs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
