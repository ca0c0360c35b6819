"""facecnn's layers and import contracts (pyproject's [tool.importlinter], checked by
import-linter: no import upwards, the face system and the CNN lab apart, no cycle between sibling
modules with TYPE_CHECKING imports included), and `import facecnn.cli` loads no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_the_import_contracts_hold() -> None:
    result = subprocess.run([shutil.which("lint-imports") or "lint-imports"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_model_registry_keeps_dlibs_own_chip() -> None:
    """dlib_resnet spells out the crop faces/crops.py names DLIB_CHIP (importing it was a cycle)."""
    from facecnn.faces.crops import DLIB_CHIP
    from facecnn.models.catalog import model_info

    assert model_info("dlib_resnet").crop == DLIB_CHIP


@pytest.mark.e2e
def test_the_cli_and_onnx_inference_load_no_torch() -> None:
    code = ("import sys, facecnn.cli, facecnn.inference, facecnn.inference.onnx, "
            "facecnn.faces.embedders.onnx, facecnn.models.registry\n"
            "sys.exit('torch loaded' if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
def test_recognizing_one_photo_loads_no_torch(tmp_path: Path) -> None:
    """`facecnn recognize one.jpg --gallery G` (the default detector, a dlib gallery) runs
    without importing PyTorch, whose import alone took longer than the rest of the command."""
    from helpers import make_jpeg_tree, run_cli

    photos = make_jpeg_tree(tmp_path / "photos", ["s1", "s2"], 3, size=160)
    gallery = tmp_path / "g.db"
    assert run_cli("enroll", str(photos), "--gallery", str(gallery), "--quiet",
                   cwd=tmp_path).returncode == 0
    code = ("import sys\nfrom facecnn.cli import main\n"
            f"sys.argv = ['facecnn', 'recognize', {str(photos / 's1' / '1.jpg')!r}, "
            f"'--gallery', {str(gallery)!r}, '--json']\n"
            "try:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
            "sys.exit('torch loaded' if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"name": "s1"' in result.stdout
