"""The user install (`pip install -e .`, no extras) must run every command: every package the
code imports is a [project] dependency, not only a test extra."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml",
                 "sklearn": "scikit-learn", "faiss": "faiss-cpu", "dlib": "dlib-bin",
                 "multipart": "python-multipart"}


def _imported_distributions() -> dict[str, str]:
    """distribution -> first file importing it, for every third-party import under src/."""
    found: dict[str, str] = {}
    for file in sorted((ROOT / "src").rglob("*.py")):
        text = file.read_text()
        tops = ["onnx"] if "torch.onnx.export" in text else []  # the exporter needs onnx
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                tops += [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.append(node.module.split(".")[0])
        for top in tops:
            if top in sys.stdlib_module_names or top in ("facecnn", "__future__"):
                continue
            found.setdefault(DISTRIBUTIONS.get(top, top).lower().replace("_", "-"),
                             str(file.relative_to(ROOT)))
    return found


def test_every_import_is_a_user_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {dep.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0]
                .strip().lower().replace("_", "-") for dep in project["dependencies"]}
    missing = {dist: file for dist, file in _imported_distributions().items()
               if dist not in declared}
    assert not missing, f"imported but only installed by extras (or not at all): {missing}"
    assert "onnx" in declared  # `facecnn export` after `pip install .`
