"""ONNX export: faithful to PyTorch, dynamic batch, and usable with no PyTorch at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facecnn.data.datasets import load_dataset
from facecnn.inference.onnx import OnnxClassifier
from facecnn.inference.pytorch import load_inference_model
from helpers import HANG_GUARD, copy_run, invoke_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, digits_run: Path) -> Path:
    """`facecnn train digits --model seed_mnist_cnn --epochs 2`, this module's own copy."""
    return copy_run(digits_run, tmp_path_factory.mktemp("export") / "train" / "exp")


def test_export_matches_pytorch_with_any_batch(run: Path) -> None:
    result = invoke_cli("export", str(run), cwd=run)
    assert result.returncode == 0, result.stderr
    assert "latency ms" in result.stdout and "file MB" in result.stdout
    sidecar = json.loads((run / "model.onnx.json").read_text())
    assert sidecar["opset"] == 17 and sidecar["classes"] == [str(d) for d in range(10)]
    model, meta = load_inference_model(run)
    onnx_model = OnnxClassifier(run / "model.onnx")
    images = load_dataset("digits", 28, 1).test.batch(np.arange(37))  # not the export batch
    x = torch.from_numpy(onnx_model.prepare(images))
    with torch.inference_mode():
        expected = torch.softmax(model(x), 1).numpy()
    assert np.abs(onnx_model.probabilities(images) - expected).max() < 1e-4


@pytest.mark.e2e
def test_predict_with_onnx_never_imports_torch(run: Path, tmp_path: Path) -> None:
    if not (run / "model.onnx").exists():
        assert invoke_cli("export", str(run), cwd=run).returncode == 0
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray(load_dataset("digits", 28, 1).test.batch(np.arange(1))[0, :, :, 0]).save(image)
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from facecnn.cli import main\n"
            f"sys.argv = ['facecnn', 'predict', {str(run / 'model.onnx')!r}, {str(image)!r}, "
            "'--json']\nmain()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)[0]
    assert prediction["label"] in [str(d) for d in range(10)] and prediction["score"] > 0


def test_export_refuses_other_formats(run: Path) -> None:
    result = invoke_cli("export", str(run), "--format", "tflite", cwd=run)
    assert result.returncode == 2 and "onnx" in result.stderr
