"""Training end to end through the real CLI, on real faces and real digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from facecnn.data.datasets import load_dataset
from helpers import HANG_GUARD, free_port, invoke_cli, read_rows, tensor_files_equal

RUN_FILES = ["config.yaml", "results.csv", "curves.png", "confusion_matrix.png", "metrics.json",
             "report.md", "weights/best.pt", "weights/last.pt", "model.safetensors", "train.log"]


@pytest.mark.slow
def test_att_faces_seed_cnn_reaches_accuracy(att_faces: Path, tmp_path: Path) -> None:
    """Seed C's CNN on the 40 AT&T people (8 train / 2 val photos each)."""
    result = invoke_cli("train", str(att_faces), "--model", "seed_face_cnn3", "--img-size",
                        "64", "--epochs", "12", "--batch-size", "16", "--lr", "1e-3",
                        "--augment", "seed_b_faces", "--no-amp", "--quiet", "--project",
                        str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "train" / "exp"
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] >= 0.85
    assert len(metrics["val"]["per_class"]) == 40
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"]
    assert metrics["latency_ms"] > 0 and metrics["model_file_mb"] > 0
    rows = read_rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.slow
def test_demo_reaches_97_percent_on_held_out_test(tmp_path: Path, no_auto_amp: None) -> None:
    result = invoke_cli("demo", "--quiet", "--project", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "train" / "demo" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.97
    assert sum(c["support"] for c in metrics["test"]["per_class"].values()) == 1000
    assert "held-out test accuracy" in result.stdout


def _train_digits(tmp_path: Path, name: str, *extra: str) -> list[str]:
    return ["train", "digits", "--model", "seed_mnist_cnn", "--epochs", "4", "--batch-size", "8",
            "--augment", "seed_c", "--seed", "3", "--no-amp", "--quiet", "--project",
            str(tmp_path), "--name", name, *extra]


@pytest.mark.e2e
@pytest.mark.slow
def test_interrupted_run_resumes_exactly(tmp_path: Path) -> None:
    """Ctrl-C mid-run, then --resume: consecutive epochs and the very same final weights."""
    full = invoke_cli(*_train_digits(tmp_path, "full"), cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    proc = subprocess.Popen([sys.executable, "-m", "facecnn", *_train_digits(tmp_path, "cut")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cut = tmp_path / "train" / "cut"
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline and proc.poll() is None and not (
            (cut / "results.csv").exists() and len(read_rows(cut)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert len(read_rows(cut)) < 4

    resumed = invoke_cli("train", "--resume", str(cut), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["epoch"]) for r in read_rows(cut)] == [1, 2, 3, 4]
    full_rows, cut_rows = read_rows(tmp_path / "train" / "full"), read_rows(cut)
    for a, b in zip(full_rows, cut_rows):
        assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"]
    assert tensor_files_equal(load_file(tmp_path / "train" / "full" / "model.safetensors"),
                              load_file(cut / "model.safetensors"))


@pytest.mark.e2e
@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(free_port())  # so parallel test runs never collide
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
         port, "-m", "facecnn", "train", "digits", "--model", "seed_mnist_cnn", "--epochs",
         "2", "--batch-size", "32", "--no-amp", "--quiet", "--project", str(tmp_path),
         "--name", "ddp"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr[-8000:]
    runs = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert runs == ["ddp"]  # rank 0 alone creates the folder
    rows = read_rows(tmp_path / "train" / "ddp")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((tmp_path / "train" / "ddp" / "metrics.json").read_text())
    val_size = len(load_dataset("digits", 28, 1).val)  # every val image counted exactly once
    assert sum(c["support"] for c in metrics["val"]["per_class"].values()) == val_size
    assert metrics["val"]["accuracy"] > 0.5


@pytest.mark.parametrize("layout", ["missing", "empty_class", "one_class", "file"])
def test_bad_data_is_one_line_exit_2(tmp_path: Path, faces3: Path, layout: str) -> None:
    data = {"missing": tmp_path / "nope", "one_class": faces3, "empty_class": faces3,
            "file": faces3 / "s1" / "1.jpg"}[layout]
    if layout == "empty_class":
        (faces3 / "s4").mkdir()
    if layout == "one_class":
        for person in ("s2", "s3"):
            for f in (faces3 / person).iterdir():
                f.unlink()
            (faces3 / person).rmdir()
    result = invoke_cli("train", str(data), "--model", "seed_face_cnn3", "--img-size", "32",
                        "--epochs", "1", "--no-amp", "--quiet", "--project",
                        str(tmp_path / "runs"), cwd=tmp_path)
    expected = {"missing": "data folder not found", "empty_class": "s4 is empty",
                "one_class": "only one class", "file": "got a file"}[layout]
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_files_are_skipped_and_listed(tmp_path: Path, faces3: Path) -> None:
    (faces3 / "s1" / "notes.jpg").write_text("this is text, not a JPEG")
    good = (faces3 / "s2" / "1.jpg").read_bytes()
    (faces3 / "s2" / "broken.jpg").write_bytes(good[: len(good) // 3])
    result = invoke_cli("train", str(faces3), "--model", "seed_face_cnn3", "--img-size", "32",
                        "--epochs", "1", "--no-amp", "--quiet", "--project",
                        str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "train" / "exp"
    skipped = {Path(s["file"]).name: s["reason"]
               for s in json.loads((run / "metrics.json").read_text())["skipped"]}
    assert set(skipped) == {"notes.jpg", "broken.jpg"}
    assert "not an image" in skipped["notes.jpg"]
    report = (run / "report.md").read_text()
    assert "notes.jpg" in report and "broken.jpg" in report
    assert "skipped 2 unreadable files" in result.stdout


def test_unknown_choice_lists_valid_names(tmp_path: Path, faces3: Path) -> None:
    result = invoke_cli("train", str(faces3), "--optimizer", "adamm", "--no-amp", "--quiet",
                        cwd=tmp_path)
    assert result.returncode == 2 and "adamw" in result.stderr and "Traceback" not in result.stderr
