"""Checkpoints written atomically, with every random state needed to resume exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecnn.errors import FacecnnError
from facecnn.fileio import atomic_write
from facecnn.inference.pytorch import MODEL_FILE as BEST_WEIGHTS


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save written whole or not at all: a crash never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def resume_checkpoint(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(checkpoint, note) that `--resume` continues from: weights/last.pt, or when a kill left
    none the best epoch's (its progress in weights/best.pt, its weights in
    model.safetensors; the optimizer starts afresh), with a line saying so."""
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    if last.is_file() or not best.is_file():
        return load_checkpoint(last), None
    weights = best_weights(run_dir)
    if weights is None:
        raise FacecnnError(f"{last} and {run_dir / BEST_WEIGHTS} are missing: nothing to "
                           "resume from")
    ckpt = {**load_checkpoint(best), "model": weights}
    return ckpt, (f"{last} is missing: continuing from {best} (after epoch "
                  f"{ckpt['state']['epoch']}; the optimizer's state starts afresh)")


def best_weights(run_dir: Path) -> dict[str, torch.Tensor] | None:
    """The best epoch's weights (model.safetensors), or None before there is one."""
    path = run_dir / BEST_WEIGHTS
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # a damaged file: many error types
        raise FacecnnError(f"cannot read {path}: {type(exc).__name__}") from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FacecnnError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise FacecnnError(f"cannot read checkpoint {path}: {type(exc).__name__}") from None
    if not isinstance(ckpt, dict):
        raise FacecnnError(f"{path} is not a checkpoint (a dict was expected)")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Every global random state, as types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
