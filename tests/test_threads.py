"""Idle threads sleep instead of spinning, so a busy core elsewhere does not stall every
parallel step (benchmarks/cli_vs_server.py measures what spinning cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from facecnn.inference.onnx import onnx_session


def _wait_policy(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return subprocess.run([sys.executable, "-c", "import os, facecnn; "
                           "print(os.environ['OMP_WAIT_POLICY'])"], env={**clean, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_openmp_threads_sleep_unless_the_user_chose() -> None:
    assert _wait_policy() == "PASSIVE"
    assert _wait_policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_onnxruntime_threads_do_not_spin(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    session = onnx_session(path)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    out = session.run(None, {"x": np.array([[-1.0, 0.0, 2.0]], np.float32)})[0]
    assert out.tolist() == [[0.0, 0.0, 2.0]]
