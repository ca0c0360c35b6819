"""What a new user of a fresh clone hit first (issue 14, item 7): studies and benchmarks that
read the team's ../shared data ask for --data in one line, `--version`, single-spaced piped
output, size and latency in report.md, integer epochs and readable labels in comparison.png."""

from __future__ import annotations

import io
import json
import runpy
import subprocess
import sys
from importlib.metadata import version
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from rich.console import Console

from facecnn import terminal
from facecnn.data.builtin import BUILTIN
from facecnn.errors import FacecnnError
from facecnn.studies.study import Study, run_study
from facecnn.studies.summary import comparison_figure
from helpers import HANG_GUARD, run_cli

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))
# the helper; made-up vectors, no photos
NO_DATA = {"datapath.py", "gallery_search.py", "refit.py"}
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in NO_DATA)


@pytest.fixture(scope="module")
def piped_train(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A real two-epoch `facecnn train`, its stdout captured through a pipe."""
    tmp = tmp_path_factory.mktemp("piped")
    result = run_cli("train", "digits", "--model", "seed_mlp", "--epochs", "2", "--no-amp",
                     "--project", str(tmp), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, tmp / "train" / "exp"


@pytest.mark.e2e
def test_piped_output_has_one_line_per_message(piped_train: tuple[str, Path]) -> None:
    out, _ = piped_train
    lines = out.splitlines()
    assert len(lines) == 4, out  # the run, two epochs, the result
    assert lines[1].startswith("epoch 1/2") and lines[2].startswith("epoch 2/2")
    assert "" not in lines


def test_terminal_still_gets_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "console", Console(file=screen, force_terminal=True,
                                                     force_interactive=True, width=80))
    with terminal.RichReporter().task("decoding", 3) as advance:
        advance(3)
    assert "decoding" in screen.getvalue()


@pytest.mark.e2e
def test_report_gives_size_and_latency(piped_train: tuple[str, Path]) -> None:
    _, run = piped_train
    metrics = json.loads((run / "metrics.json").read_text())
    report = (run / "report.md").read_text()
    assert f"model file {metrics['model_file_mb']:.3f} MB" in report
    assert f"latency {metrics['latency_ms']:.2f} ms per image" in report


@pytest.mark.e2e
def test_version_without_torch(tmp_path: Path) -> None:
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['facecnn', "
            "'--version']; runpy.run_module('facecnn', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert result.stdout == version("facecnn") + "\n"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_uses_built_in_data_or_asks_for_data(
        path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = Study.load(path)
    if all(settings.get("data", study.data) in BUILTIN for _, settings in study.plan()):
        return  # runs anywhere
    monkeypatch.chdir(tmp_path)  # no ../shared here, as in a fresh clone
    with pytest.raises(FacecnnError, match="not found; pass --data FOLDER"):
        run_study(study, project=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()  # refused before anything trained


@pytest.mark.e2e
def test_study_without_its_data_is_one_line(tmp_path: Path) -> None:
    result = run_cli("compare", str(ROOT / "studies" / "mobile_size.yaml"), "--project",
                     str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: study mobile_size: data folder ../shared/data/att_faces not found; pass "
        "--data FOLDER (one folder of photos per person)"]


def _without_data(script: Path, missing: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What the benchmark exits with, run in this process as `python SCRIPT --data MISSING`
    runs it (the imports it shares with the others load once)."""
    monkeypatch.setattr(sys, "argv", [str(script), "--data", str(missing)])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    return exited.value.code


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_without_its_data_is_one_line(script: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    message = _without_data(script, missing, monkeypatch)
    assert isinstance(message, str) and "\n" not in message, message  # exit status 1
    assert message.startswith(f"error: {missing}") and "pass --data" in message


@pytest.mark.e2e
def test_a_benchmark_without_its_data_exits_1_with_the_line_on_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run([sys.executable, str(BENCHMARKS[0]), "--data", str(missing)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD)
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {missing}") and "pass --data" in lines[0]


def _row(run: str, size_mb: float, val_acc: float, epochs: int) -> dict:
    return {"run": run, "size_mb": size_mb, "val_acc": val_acc,
            "curve": [0.5 + 0.1 * e for e in range(epochs)]}


@pytest.mark.e2e
def test_comparison_plot_epochs_are_whole_and_labels_apart() -> None:
    rows = [_row("optimizer-adam", 1.0, 0.9, 4), _row("optimizer-sgd", 1.0, 0.9, 4),
            _row("optimizer-adamw", 1.0, 0.9001, 3), _row("optimizer-rmsprop", 1.0, 0.8999, 4)]
    fig = comparison_figure(rows, "optimizers")
    curves, scatter = fig.axes
    low, high = curves.get_xlim()
    ticks = [t for t in curves.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)
    fig.canvas.draw()
    labels = {text.get_text(): text.get_window_extent() for text in scatter.texts}
    assert set(labels) == {"optimizer-adam, optimizer-sgd", "optimizer-adamw",
                           "optimizer-rmsprop"}  # the same point has one label
    plt.close(fig)
    for a, b in combinations(labels.values(), 2):
        assert not a.overlaps(b)


def test_a_prepared_folder_gives_no_report_to_predict(tmp_path: Path) -> None:
    """`predict faces/` on what `prepare` wrote: its prepare_report.json is not an input (and
    so not "skipped: not an image"), nor is any .json in a folder; a file of that name given
    by hand still is."""
    from facecnn.data.folders import expand_inputs

    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "1.png").write_bytes(b"")
    (tmp_path / "prepare_report.json").write_text("{}")
    (tmp_path / "s1" / "prepare_report.json").write_text("{}")
    assert expand_inputs([tmp_path]) == [tmp_path / "s1" / "1.png"]
    assert expand_inputs([tmp_path / "prepare_report.json"]) == [tmp_path /
                                                                 "prepare_report.json"]


def test_piped_tables_keep_names_whole() -> None:
    """Off a terminal (no COLUMNS), `facecnn models` and `--help` are 120 columns wide, and
    every model name is printed whole."""
    import os

    from facecnn.models.catalog import list_models

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    shown = subprocess.run([sys.executable, "-m", "facecnn", "models"], capture_output=True,
                           text=True, env=env, check=True).stdout
    names = {line.split("│")[1].strip() for line in shown.splitlines() if line.startswith("│")}
    assert set(list_models()) <= names
    helped = subprocess.run([sys.executable, "-m", "facecnn", "train", "--help"],
                            capture_output=True, text=True, env=env, check=True).stdout
    assert max(len(line) for line in helped.splitlines()) == 120
