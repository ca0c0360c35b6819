"""`facecnn.train(...)` from Python, the trainer's callbacks, and what a run folder keeps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

import facecnn
from facecnn.train.callbacks import Callback
from helpers import invoke_cli, tensor_files_equal

pytestmark = pytest.mark.e2e


def digits(tmp_path: Path, **options: object) -> facecnn.train.Run:
    settings = {"model": "seed_mlp", "epochs": 2, "batch_size": 128, "amp": False,
                "project": str(tmp_path), **options}
    return facecnn.train("digits", **settings)


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_fit_start(self, trainer) -> None:
        self.events.append("fit_start")

    def on_epoch_end(self, trainer, row) -> None:
        self.events.append(f"epoch_end {row['epoch']}")

    def on_interrupt(self, trainer) -> None:
        self.events.append("interrupt")

    def on_fit_end(self, trainer, metrics) -> None:
        self.events.append(f"fit_end {metrics['best']['epoch']}")


def test_train_from_python_returns_the_run(tmp_path: Path) -> None:
    recorder = Recorder()
    run = digits(tmp_path, callbacks=[recorder])
    assert run.dir == tmp_path / "train" / "exp" and run.model_file.is_file()
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.metrics["val"]["accuracy"] > 0.5
    assert recorder.events == ["fit_start", "epoch_end 1", "epoch_end 2",
                               f"fit_end {run.metrics['best']['epoch']}"]
    config = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert config["lr"] == 0.001 and config["backbone_lr_scale"] == 1.0  # what ran


def test_a_callback_can_stop_the_run(tmp_path: Path) -> None:
    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, row) -> None:
            trainer.should_stop = True

    run = digits(tmp_path, epochs=5, callbacks=[StopAfterOne()])
    assert len(run.history) == 1
    assert len((run.dir / "results.csv").read_text().splitlines()) == 2


def test_a_failing_fit_releases_its_log(tmp_path: Path) -> None:
    class Broken(Callback):
        def on_epoch_end(self, trainer, row) -> None:
            raise RuntimeError("disk full")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="disk full"):
        digits(tmp_path, name="broken", callbacks=[recorder, Broken()])
    assert recorder.events == ["fit_start", "epoch_end 1", "interrupt"]
    assert not logging.getLogger("facecnn.train").handlers
    later = digits(tmp_path, name="later", epochs=1)
    broken_log = (tmp_path / "train" / "broken" / "train.log").read_text()
    assert str(later.dir) not in broken_log and "epoch 1/2" in broken_log


def test_a_run_keeps_each_tensor_once(tmp_path: Path) -> None:
    """The best weights only in model.safetensors (best.pt: their progress), the last ones
    and the optimizer's state only in last.pt; the report says what the run weighs."""
    from safetensors.torch import load_file

    from facecnn.models.weights import read_state_dict

    run = digits(tmp_path, optimizer="adam")
    best = torch.load(run.dir / "weights" / "best.pt", weights_only=True)
    last = torch.load(run.dir / "weights" / "last.pt", weights_only=True)
    assert not {"model", "optimizer", "best_model"} & set(best) and "best_model" not in last
    assert best["state"]["epoch"] == run.metrics["best"]["epoch"]
    assert last["optimizer"]["state"]  # last.pt still resumes exactly
    weights = load_file(run.dir / "model.safetensors")
    assert tensor_files_equal(read_state_dict(run.dir / "weights" / "best.pt"), weights)
    sizes = {f: (run.dir / f).stat().st_size for f in ("model.safetensors", "weights/best.pt",
                                                        "weights/last.pt")}
    assert sizes["weights/best.pt"] < 0.05 * sizes["model.safetensors"]
    assert sizes["weights/last.pt"] < 3.3 * sizes["model.safetensors"]  # weights + Adam's two
    weighs = run.metrics["run_mb"]
    assert weighs == pytest.approx(sum(sizes.values()) / 2**20, abs=0.01)
    assert f"run folder weights {weighs:.2f} MB" in (run.dir / "report.md").read_text()


def test_a_bug_is_one_line_unless_debugging(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is a bug: one line and exit 1; FACECNN_DEBUG=1 shows where."""
    import facecnn.apps.prepare

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(facecnn.apps.prepare, "prepare", broken)
    (tmp_path / "raw" / "alice").mkdir(parents=True)
    args = ("prepare", str(tmp_path / "raw"), str(tmp_path / "out"))
    plain = invoke_cli(*args, cwd=tmp_path)
    debug = invoke_cli(*args, cwd=tmp_path, env={"FACECNN_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        "error: unexpected ZeroDivisionError: boom (a facecnn bug; FACECNN_DEBUG=1 shows where)"]
    assert "Traceback" in debug.stderr and "broken" in debug.stderr
