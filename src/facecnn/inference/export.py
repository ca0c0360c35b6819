"""`facecnn export RUN --format onnx`: the run's model as ONNX for programs without PyTorch.

Writes model.onnx (dynamic batch) beside model.onnx.json (classes and preprocessing), checks
onnxruntime's outputs against PyTorch's (probabilities, and logits relative to their scale,
to 1e-4), and reports size and latency of both, seed B's
question of what fits on a phone.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecnn.errors import FacecnnError
from facecnn.inference.base import median_ms, softmax
from facecnn.inference.onnx import SIDECAR, OnnxClassifier
from facecnn.inference.pytorch import latency_ms, load_inference_model, resolve_model_file
from facecnn.runtime import Runtime

OPSET = 17
TOLERANCE = 1e-4


def export_onnx(run: Path, out: Path | None = None, opset: int = OPSET) -> dict[str, Any]:
    """Export, verify and time; returns the report (also printed by the CLI)."""
    model_file = resolve_model_file(run)
    model, meta = load_inference_model(model_file)
    out = out or model_file.with_name("model.onnx")
    if out.suffix != ".onnx":
        raise FacecnnError(f"the ONNX file name must end in .onnx: {out}")
    size, chans = meta["img_size"], meta["in_chans"]
    example = torch.randn(4, chans, size, size)
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), example, str(out), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    out.with_name(out.name + SIDECAR).write_text(json.dumps(
        {**meta, "opset": opset, "input": "image: float32 NCHW, (pixels/255 - mean) / std",
         "output": "logits"}, indent=2) + "\n")
    onnx_model = OnnxClassifier(out)
    with torch.inference_mode():
        expected = model(example).numpy()
    got = onnx_model.logits(example.numpy())
    difference = float(np.abs(softmax(got) - softmax(expected)).max())
    relative = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1.0))
    if max(difference, relative) > TOLERANCE:
        raise FacecnnError(f"ONNX outputs differ from PyTorch's (probabilities by "
                           f"{difference:.1e}, logits by {relative:.1e} relative; limit "
                           f"{TOLERANCE}): the export is not faithful")
    one = example[:1].numpy()
    return {"onnx": str(out), "opset": opset, "max_abs_difference": difference,
            "max_relative_logit_difference": relative,
            "onnx_mb": round(out.stat().st_size / 2**20, 3),
            "pytorch_mb": round(model_file.stat().st_size / 2**20, 3),
            "onnx_latency_ms": round(median_ms(lambda: onnx_model.logits(one)), 3),
            "pytorch_latency_ms": round(latency_ms(model, Runtime.create(
                torch.device("cpu"), meta["mean"], meta["std"], amp=False), chans, size), 3)}
