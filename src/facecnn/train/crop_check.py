"""Whether a pretrained face model will be fed the crops it learnt on: a folder `prepare` cut in
another layout, or photos not cut by `prepare` at all, cost a pretrained backbone much of its
accuracy."""

from __future__ import annotations

from pathlib import Path

from facecnn.data.crop_layout import crop_settings, describe, same_layout
from facecnn.models.catalog import model_info


def crop_mismatch(model: str, data: Path) -> str | None:
    """Why `model`'s pretrained weights would see faces unlike those they learnt on, or
    None."""
    native = model_info(model).crop
    if native is None:
        return None
    fix = f"cut the photos with `facecnn prepare PHOTOS OUT --crop {model}`"
    found = crop_settings(data)
    if found is None:
        return (f"{model}'s pretrained weights expect {describe(native)}; {data} was not "
                f"cut by `facecnn prepare`, so they may see other crops: {fix}")
    if not same_layout(found, native):
        return (f"{model}'s pretrained weights expect {describe(native)}, but {data} holds "
                f"{describe(found)}; accuracy suffers: {fix}")
    return None
