"""TrainConfig is the one source of the training flags: types coerced with one-line errors,
every choice checked against its registry (with a suggestion), `facecnn train` generated from
the fields, and its help listing each registry without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import typer

from facecnn import cli
from facecnn.choices.objectives import OBJECTIVE_CHOICES
from facecnn.choices.optimizers import OPTIMIZER_CHOICES
from facecnn.choices.schedules import SCHEDULE_CHOICES
from facecnn.config import TrainConfig
from facecnn.data.augment_presets import AUGMENT_CHOICES
from facecnn.errors import FacecnnError
from facecnn.models.freeze import FREEZE_CHOICES
from facecnn.models.init import INIT_CHOICES
from facecnn.registry import Registry
from facecnn.studies.study import AXES, Study
from helpers import HANG_GUARD, invoke_cli

REGISTRIES: dict[str, Registry] = {"optimizer": OPTIMIZER_CHOICES, "schedule": SCHEDULE_CHOICES,
                                   "init": INIT_CHOICES, "augment": AUGMENT_CHOICES,
                                   "objective": OBJECTIVE_CHOICES, "freeze": FREEZE_CHOICES}


def one_line_error(values: dict) -> str:
    with pytest.raises(FacecnnError) as caught:
        TrainConfig.from_dict({"data": "digits", **values})
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- types ------------------------------------------------------------------------------
def test_strings_and_whole_floats_are_coerced() -> None:
    cfg = TrainConfig.from_dict({"data": Path("faces"), "lr": "1e-3", "epochs": "5",
                                 "batch_size": 8.0, "gamma": 1, "pretrained": "true",
                                 "name": 2024, "img_size": None})
    assert (cfg.data, cfg.lr, cfg.epochs, cfg.batch_size) == ("faces", 0.001, 5, 8)
    assert (cfg.gamma, cfg.pretrained, cfg.name, cfg.img_size) == (1.0, True, "2024", None)
    assert type(cfg.epochs) is int and type(cfg.gamma) is float


@pytest.mark.parametrize("values, message", [
    ({"lr": [1e-3]}, "lr: expected a number, got [0.001]"),
    ({"lr": "fast"}, "lr: expected a number, got 'fast'"),
    ({"epochs": 2.5}, "epochs: expected a whole number, got 2.5"),
    ({"epochs": True}, "epochs: expected a whole number, got True"),
    ({"epochs": None}, "epochs: expected a whole number, got None"),
    ({"pretrained": "maybe"}, "pretrained: expected true or false, got 'maybe'"),
    ({"model": ["resnet18"]}, "model: expected a string, got ['resnet18']"),
    ({"epochs": 0}, "epochs: must be at least 1, got 0"),
    ({"label_smoothing": 1}, "label_smoothing: must be at most 0.99, got 1.0"),
    ({"lrr": 0.1}, "unknown config keys: lrr; did you mean 'lr'?"),
])
def test_bad_values_are_one_line_naming_the_field(values: dict, message: str) -> None:
    assert one_line_error(values) == message


def test_a_config_needs_its_data() -> None:
    with pytest.raises(FacecnnError, match="missing config keys: data"):
        TrainConfig.from_dict({"epochs": 3})


def test_a_saved_config_loads_back(tmp_path: Path) -> None:
    cfg = TrainConfig(data="digits", lr=0.5, objective="triplet", freeze="layer1-3")
    cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml") == cfg


# ---- choices ----------------------------------------------------------------------------
@pytest.mark.parametrize("field, typo, meant, kind", [
    ("optimizer", "adm", "adam", "optimizer"), ("schedule", "cosin", "cosine", "lr schedule"),
    ("init", "glorott", "glorot", "initializer"), ("augment", "fces", "faces", "augmentation"),
    ("objective", "arcfase", "arcface", "objective"),
])
def test_unknown_choice_suggests_the_registered_name(field: str, typo: str, meant: str,
                                                     kind: str) -> None:
    names = ", ".join(REGISTRIES[field])
    assert one_line_error({field: typo}) == (f"unknown {kind} {typo!r}; did you mean {meant!r}? "
                                             f"choose one of: {names}")


def test_the_builders_give_the_same_suggestions() -> None:
    import torch
    from torch import nn

    from facecnn.choices.schedules import schedule_values
    from facecnn.data.transforms import build_augmentation
    from facecnn.models.classifier import Classifier
    from facecnn.models.freeze import frozen_modules
    from facecnn.models.init import initialize
    from facecnn.train.optim import build_optimizer

    attempts = [(lambda: build_optimizer("adm", [nn.Parameter(torch.zeros(1))]), "'adam'"),
                (lambda: schedule_values("cosin", 0.1, 3), "'cosine'"),
                (lambda: initialize(nn.Linear(2, 2), "glorott"), "'glorot'"),
                (lambda: build_augmentation("fces"), "'faces'")]
    for attempt, meant in attempts:
        with pytest.raises(FacecnnError, match=f"did you mean {meant}"):
            attempt()
    model = Classifier(nn.Sequential(), nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(FacecnnError, match="no stage 'backbon'.*did you mean 'backbone'"):
        frozen_modules(model, "backbon")


def test_freeze_takes_stage_lists_as_well_as_its_policies() -> None:
    assert TrainConfig(data="x", freeze="stem,stage1-3").freeze == "stem,stage1-3"


# ---- the command ------------------------------------------------------------------------
def test_train_options_are_the_config_fields_with_their_defaults() -> None:
    command = typer.main.get_command(cli.app).commands["train"]
    defaults = {param.name: param.default for param in command.params}
    assert defaults.pop("resume") is None
    assert defaults == {f.name: None if f.default is MISSING else f.default
                        for f in fields(TrainConfig)}


def test_train_builds_the_config_its_flags_describe(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    from facecnn.train import trainer

    built = []

    class Recorder:
        def __init__(self, cfg: TrainConfig, reporter: object, resume: Path | None) -> None:
            built.append(cfg)

        def fit(self, resume: Path | None) -> None:
            pass

    monkeypatch.setattr(trainer, "Trainer", Recorder)
    result = invoke_cli("train", "digits", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = invoke_cli("train", "digits", "--lr", "1e-3", "--no-amp", "--pretrained",
                        "--weights", "w.pt", "--optimizer", "sgd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert built == [TrainConfig(data="digits"),
                     TrainConfig(data="digits", lr=0.001, amp=False, pretrained=True,
                                 weights="w.pt", optimizer="sgd")]


def test_unknown_choice_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    result = invoke_cli("train", "digits", "--schedule", "cosin", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: unknown lr schedule 'cosin'; did you mean 'cosine'? "
                                     f"choose one of: {', '.join(SCHEDULE_CHOICES)}")
    assert not (tmp_path / "runs").exists()


def _help(*command: str) -> str:
    """`facecnn COMMAND --help` in a fresh process that cannot import torch, wide enough that no
    name is wrapped."""
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = ['facecnn', *{list(command)!r}, '--help']; "
            "runpy.run_module('facecnn', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_GUARD, env={**os.environ, "COLUMNS": "1000"})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.e2e
def test_help_lists_every_registered_name_without_torch() -> None:
    text = _help("train")
    for registry in REGISTRIES.values():
        for entry in registry.entries():
            assert f"{entry.name} ({entry.help})" in text
    compare = _help("compare")
    for key in ("optimizer", "schedule", "init", "augment", "freeze"):
        assert ", ".join(REGISTRIES[key]) in compare


# ---- studies ----------------------------------------------------------------------------
def test_every_field_a_study_does_not_set_is_an_axis() -> None:
    assert AXES == tuple(f.name for f in fields(TrainConfig)
                         if f.name not in ("project", "name", "quiet"))
    assert {"weight_decay", "backbone_lr_scale", "gamma"} <= set(AXES)


def test_study_values_are_coerced_and_runs_keep_their_written_names(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-3 (no dot) as a string
    (tmp_path / "lrs.yaml").write_text("data: digits\naxes: {lr: [1e-3, 0.01]}\n"
                                       "base: {epochs: '2'}\n")
    plan = Study.load(tmp_path / "lrs.yaml").plan()
    assert plan == [("lr-1e-3", {"epochs": 2, "lr": 0.001}), ("lr-0.01", {"epochs": 2, "lr": 0.01})]


@pytest.mark.parametrize("text, message", [
    ("base: {lr: [1e-3]}\naxes: {seed: [0]}", "study bad, run seed-0: lr: expected a number, "
                                              "got ['1e-3']"),
    ("axes: {optimizer: [adm]}", "study bad, run optimizer-adm: unknown optimizer 'adm'; did "
                                 "you mean 'adam'?"),
    ("runs: [sgd]", "study bad, runs: expected a mapping of settings, got 'sgd'"),
])
def test_bad_study_settings_are_one_line_before_anything_trains(tmp_path: Path, text: str,
                                                                message: str) -> None:
    (tmp_path / "bad.yaml").write_text(f"data: digits\n{text}\n")
    result = invoke_cli("compare", str(tmp_path / "bad.yaml"), "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_study_file_with_a_wrong_type_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("data: digits\naxes: [lr]\n")
    with pytest.raises(FacecnnError, match=r"bad\.yaml: axes: expected a mapping, got \['lr'\]"):
        Study.load(tmp_path / "bad.yaml")
