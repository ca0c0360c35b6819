"""Studies end to end through the CLI: every shipped YAML on tiny settings, resume, seeds,
the odd/even transfer head, ensembles and every visualize command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import timm
import torch

from facecnn.data.datasets import load_dataset
from facecnn.studies.study import Study
from facecnn.studies.summary import write_comparison
from facecnn.train.report import write_results_csv
from helpers import copy_run, invoke_cli, make_jpeg_tree

STUDIES = Path(__file__).resolve().parents[1] / "studies"
# `compare` has no --no-amp: pin it as --no-amp would (see conftest.no_auto_amp)
pytestmark = pytest.mark.usefixtures("no_auto_amp")


def rows(study_dir: Path) -> list[dict[str, str]]:
    with (study_dir / "comparison.csv").open() as handle:
        return list(csv.DictReader(handle))


def compare(tmp_path: Path, *args: str) -> Path:
    result = invoke_cli("compare", *args, "--epochs", "1", "--quiet", "--project",
                        str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jpeg_tree(tmp_path_factory.mktemp("studies") / "faces", ["s1", "s2", "s3"], 5)


@pytest.mark.slow
def test_optimizers_study(tmp_path: Path) -> None:
    compare(tmp_path, str(STUDIES / "optimizers.yaml"), "--data", "digits", "--seeds", "0")
    out = tmp_path / "compare" / "optimizers"
    names = {r["run"] for r in rows(out)}
    assert names == {f"optimizer-{o}" for o in ("sgd", "sgd_clip", "momentum", "nesterov",
                                                 "adagrad", "adadelta", "rmsprop", "adam",
                                                 "adamw")}
    accs = [float(r["val_acc"]) for r in rows(out)]
    assert accs == sorted(accs, reverse=True)  # the table is sorted, best first
    assert (out / "comparison.png").stat().st_size > 10_000
    assert "| optimizer-adam |" in (out / "comparison.md").read_text()


@pytest.mark.e2e
def test_seeds_pool_into_mean_and_std_and_a_study_resumes(tmp_path: Path) -> None:
    study = str(STUDIES / "initializers.yaml")
    compare(tmp_path, study, "--data", "digits", "--seeds", "0,1")
    out = tmp_path / "compare" / "initializers"
    table = {r["run"]: r for r in rows(out)}
    assert set(table) == {"init-zeros", "init-normal", "init-glorot", "init-he"}
    assert all(r["seeds"] == "2" for r in table.values())
    assert float(table["init-he"]["val_acc"]) > float(table["init-zeros"]["val_acc"])
    runs = out / "train"
    finished = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in runs.iterdir()}
    assert len(finished) == 8
    (runs / "init-he_seed-1" / "metrics.json").unlink()  # as if stopped before the end
    compare(tmp_path, study, "--data", "digits", "--seeds", "0,1")
    again = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in runs.iterdir()}
    changed = {name for name in finished if again[name] != finished[name]}
    assert changed == {"init-he_seed-1"}  # only the unfinished run trained again
    assert len(rows(out)) == 4


@pytest.mark.e2e
def test_transfer_odd_even_trains_only_a_two_unit_head(tmp_path: Path) -> None:
    compare(tmp_path, str(STUDIES / "transfer_odd_even.yaml"), "--data", "digits_odd_even")
    table = {r["run"]: r for r in rows(tmp_path / "compare" / "transfer_odd_even")}
    assert set(table) == {"digits", "scratch", "transfer"}
    assert float(table["transfer"]["trainable"]) == 202  # seed E: 100 * 2 + 2
    assert float(table["scratch"]["trainable"]) == float(table["scratch"]["total"])


@pytest.mark.e2e
def test_pretrained_study_says_what_it_needs(tmp_path: Path, faces: Path) -> None:
    study = str(STUDIES / "pretrained_vs_scratch.yaml")
    result = compare(tmp_path, study, "--data", str(faces), "--img-size", "32")
    assert "skipped resnet18_pretrained: needs ImageNet weights" in result.stdout
    out = tmp_path / "compare" / "pretrained_vs_scratch"
    table = {r["run"]: r for r in rows(out)}
    assert set(table) == {"resnet18_scratch", "seed_face_cnn3", "dlib_resnet_scratch",
                          "dlib_resnet_pretrained_stage1-3", "dlib_resnet_pretrained_head"}
    classes = len([p for p in faces.iterdir() if p.is_dir()])
    assert float(table["dlib_resnet_pretrained_head"]["trainable"]) == 129 * classes
    assert float(table["dlib_resnet_scratch"]["trainable"]) == float(
        table["dlib_resnet_scratch"]["total"])
    assert "skipped: needs ImageNet weights" in (out / "comparison.md").read_text()
    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), weights)
    compare(tmp_path, study, "--data", str(faces), "--img-size", "32", "--weights", str(weights))
    table = {r["run"]: r for r in rows(out)}
    assert float(table["resnet18_pretrained"]["trainable"]) < \
        float(table["resnet18_pretrained"]["total"])  # layer1-3 frozen


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("mobile_size", "32"), ("architectures", "96")])
def test_size_and_architecture_studies(tmp_path: Path, faces: Path, name: str,
                                       size: str) -> None:
    compare(tmp_path, str(STUDIES / f"{name}.yaml"), "--data", str(faces), "--img-size", size)
    table = rows(tmp_path / "compare" / name)
    assert len(table) in (4, 5) and all(float(r["size_mb"]) > 0 for r in table)
    assert all(float(r["latency_ms"]) > 0 for r in table)


@pytest.mark.e2e
def test_compare_from_flags_alone(tmp_path: Path, faces: Path) -> None:
    compare(tmp_path, "--data", str(faces), "--models", "seed_face_cnn3,resnet18",
            "--optimizers", "adam,sgd", "--img-size", "32", "--name", "grid")
    out = tmp_path / "compare" / "grid"
    assert len(rows(out)) == 4
    for row in rows(out):  # each row is the kept checkpoint, as its run measured it
        run = out / "train" / row["run"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert int(row["epoch"]) == metrics["best"]["epoch"]
        assert float(row["val_acc"]) == pytest.approx(metrics["val"]["accuracy"])
        assert float(row["val_f1"]) == pytest.approx(metrics["val"]["macro_f1"])


def _fake_run(folder: Path, history: list[tuple[float, float, float]], best: int) -> None:
    """A finished run's folder: (val_loss, val_acc, val_f1) per epoch, `best` kept."""
    (folder / "weights").mkdir(parents=True)
    write_results_csv([{"epoch": i, "train_loss": 1.0, "train_acc": 0.5, "train_f1": 0.5,
                        "val_loss": loss, "val_acc": acc, "val_f1": f1, "lr": 1e-3,
                        "seconds": 2.0} for i, (loss, acc, f1) in enumerate(history, 1)],
                      folder / "results.csv")
    metrics = {"best": {"epoch": best}, "parameters": {"trainable": 10, "total": 12},
               "model_file_mb": 0.5, "latency_ms": 1.5}
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.mark.parametrize("best,kept", [(2, 2), (0, 4)])  # 0: no epoch lowered the val loss
def test_a_row_is_one_epoch_the_kept_checkpoint(tmp_path: Path, best: int, kept: int) -> None:
    """Epoch 3 has the best accuracy and epoch 1 the best F1; the kept epoch is the row."""
    history = [(0.9, 0.30, 0.40), (0.5, 0.23, 0.07), (0.7, 0.36, 0.20), (0.8, 0.25, 0.10)]
    _fake_run(tmp_path / "train" / "a", history, best)
    write_comparison(tmp_path, Study("s"), [{"name": "a", "folder": tmp_path / "train" / "a"}])
    (row,) = rows(tmp_path)
    loss, acc, f1 = history[kept - 1]
    assert (row["epoch"], row["epochs"]) == (str(kept), "4")
    assert [float(row[k]) for k in ("val_loss", "val_acc", "val_f1")] == [loss, acc, f1]
    assert float(row["train_seconds"]) == 8.0  # the whole run's time
    assert not {"best_val_acc", "macro_f1", "epochs_to_best"} & set(row)
    table = (tmp_path / "comparison.md").read_text()
    assert "| kept epoch | epochs run | val loss | val acc | val macro-F1 |" in table
    assert f"| a | 1 | {kept} | 4 | {loss:.4f} | {acc:.4f} | {f1:.4f} | 8.0 |" in table


def test_bad_study_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\naxes: {colour: [red]}\ndata: digits\n")
    result = invoke_cli("compare", str(tmp_path / "bad.yaml"), "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and "unknown axis 'colour'" in result.stderr


@pytest.fixture(scope="module")
def digit_runs(tmp_path_factory: pytest.TempPathFactory, digits_run: Path) -> list[Path]:
    """Two seed_mnist_cnn runs of two epochs: seed 0 (conftest's digits_run) and seed 1."""
    root = tmp_path_factory.mktemp("digit_runs")
    copy_run(digits_run, root / "train" / "d")
    result = invoke_cli("train", "digits", "--model", "seed_mnist_cnn", "--epochs", "2",
                        "--seed", "1", "--no-amp", "--quiet", "--project", str(root),
                        "--name", "d", cwd=root)
    assert result.returncode == 0, result.stderr
    return [root / "train" / "d", root / "train" / "d2"]


@pytest.mark.e2e
def test_ensemble_cli(tmp_path: Path, digit_runs: list[Path]) -> None:
    result = invoke_cli("ensemble", *map(str, digit_runs), "--data", "digits", "--weights", "1,1",
                        "--quiet", "--project", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "ensemble" / "exp"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["members"]) == 2
    assert metrics["accuracy"] >= min(m["accuracy"] for m in metrics["members"]) - 0.02
    lines = (out / "predictions.csv").read_text().splitlines()
    test_images = len(load_dataset("digits", 28, 1).test)
    assert lines[0] == "id,label" and len(lines) == test_images + 1
    assert len({line.split(",")[0] for line in lines[1:]}) == test_images  # ids are unique
    said = f"scored {test_images} held-out images of digits (its fixed test part)"
    assert said in result.stdout and metrics["scored"] == said


def test_every_visualize_command(tmp_path: Path, digit_runs: list[Path], att_faces: Path) -> None:
    run, photo = str(digit_runs[0]), str(att_faces / "s1" / "1.pgm")
    commands = {"schedule": ["--schedule", "step", "--epochs", "22", "--lr", "5e-4"],
                "kernels": [photo], "feature-maps": [run, photo], "gradcam": [run, photo],
                "predictions": [run, "digits", "--grid", "3x4"]}
    expected = {"schedule": 1, "kernels": 1, "feature-maps": 3, "gradcam": 1,
                "predictions": 1}  # seed_mnist_cnn has three conv layers
    for command, args in commands.items():
        result = invoke_cli("visualize", command, *args, "--project", str(tmp_path), "--name",
                            command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        pngs = sorted((tmp_path / "visualize" / command).glob("*.png"))
        assert len(pngs) == expected[command], command
        assert all(p.stat().st_size > 2000 for p in pngs)
        assert all(str(p) in result.stdout for p in pngs)
