"""What every backend shares (torch-free): classifying image files with a model that turns
decoded images into class probabilities, and timing it."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facecnn.data.decode import decode_image


@dataclass
class Prediction:
    file: str
    label: str
    score: float
    top_k: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "label": self.label, "score": self.score,
                "top_k": [[name, score] for name, score in self.top_k]}


class ImageClassifier(ABC):
    """Base: `meta` (classes, img_size, in_chans, mean, std) and `probabilities(uint8 NHWC)`."""

    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @abstractmethod
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 at the model's size -> (N, classes) softmax probabilities."""

    def __call__(self, files: list[Path], top_k: int = 1,
                 batch_size: int = 64) -> tuple[list[Prediction], list[dict[str, str]]]:
        """Predictions for readable files and a list of the files skipped, with the reason."""
        size, chans = self.meta["img_size"], self.meta["in_chans"]
        predictions, skipped = [], []
        for start in range(0, len(files), batch_size):
            chunk, images = [], []
            for file in files[start:start + batch_size]:
                try:
                    images.append(decode_image(file, size, chans))
                    chunk.append(file)
                except ValueError as exc:
                    skipped.append({"file": str(file), "reason": str(exc)})
            if images:
                predictions += self.predict(np.stack(images), [str(f) for f in chunk], top_k)
        return predictions, skipped

    def predict(self, images: np.ndarray, names: list[str], top_k: int = 1) -> list[Prediction]:
        """Predictions for decoded model inputs (see `probabilities`), named `names`: the
        files above, or the server's uploads."""
        predictions = []
        for name, p in zip(names, self.probabilities(images)):
            order = np.argsort(-p)[:max(top_k, 1)]
            ranked = [(self.classes[i], float(p[i])) for i in order]
            predictions.append(Prediction(name, ranked[0][0], ranked[0][1], ranked))
        return predictions


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def median_ms(run: Callable[[], Any], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall milliseconds of `run()` after a few warm-up calls."""
    timings = []
    for i in range(repeats + warmup):
        start = time.perf_counter()
        run()
        if i >= warmup:
            timings.append((time.perf_counter() - start) * 1000)
    return float(np.median(timings))
