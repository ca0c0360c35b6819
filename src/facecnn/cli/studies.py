"""The study commands of `facecnn`: compare, ensemble, visualize."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from facecnn.choices.optimizers import OPTIMIZER_CHOICES
from facecnn.choices.schedules import SCHEDULE_CHOICES
from facecnn.cli.options import BATCH_SIZE, DEVICE, NAME, PROJECT, QUIET
from facecnn.data.augment_presets import AUGMENT_CHOICES
from facecnn.errors import FacecnnError
from facecnn.models.freeze import FREEZE_CHOICES
from facecnn.models.init import INIT_CHOICES
from facecnn.registry import Registry
from facecnn.terminal import console, reporter_for


def _split(text: Optional[str], cast: Any = str) -> Optional[list[Any]]:
    if text is None:
        return None
    try:
        return [cast(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise FacecnnError(f"cannot read the list {text!r}") from None


def _some_of(choices: Registry, also: str = "") -> str:
    """Help for a comma-separated list of a registry's names."""
    return f"Comma-separated: {', '.join(choices)}{also}."


def compare(
    study_file: Optional[Path] = typer.Argument(None, help="Study YAML (see studies/)."),
    data: Optional[str] = typer.Option(None, help="Folder or built-in name (mnist5k, digits)."),
    models: Optional[str] = typer.Option(None, help="Comma-separated model names."),
    optimizers: Optional[str] = typer.Option(None, help=_some_of(OPTIMIZER_CHOICES)),
    lrs: Optional[str] = typer.Option(None),
    schedules: Optional[str] = typer.Option(None, help=_some_of(SCHEDULE_CHOICES)),
    inits: Optional[str] = typer.Option(None, help=_some_of(INIT_CHOICES)),
    freezes: Optional[str] = typer.Option(None, help=_some_of(FREEZE_CHOICES, " or a stage "
                                                               "such as layer1-3")),
    augments: Optional[str] = typer.Option(None, help=_some_of(AUGMENT_CHOICES)),
    seeds: Optional[str] = typer.Option(None, help="e.g. 0,1,2 (mean and std per row)"),
    epochs: Optional[int] = typer.Option(None, min=1),
    img_size: Optional[int] = typer.Option(None, min=8),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass."),
    weights: Optional[Path] = typer.Option(None, help="ImageNet weights for runs that use "
                                           "{weights}."),
    project: str = PROJECT,
    name: Optional[str] = typer.Option(None, help="Study name (default: the file's)."),
    quiet: bool = QUIET,
) -> None:
    """Train every combination of a study and write comparison.csv, .md and .png."""
    from facecnn.studies.study import Study, run_study
    from facecnn.studies.summary import write_comparison

    study = Study.load(study_file) if study_file else Study(name or "exp")
    axes = {key: values for key, values in {
        "model": _split(models), "optimizer": _split(optimizers), "lr": _split(lrs, float),
        "schedule": _split(schedules), "init": _split(inits), "freeze": _split(freezes),
        "augment": _split(augments), "seed": _split(seeds, int)}.items() if values}
    base = {key: value for key, value in {"epochs": epochs, "img_size": img_size,
                                          "batch_size": batch_size}.items() if value}
    study = study.override(data=data, axes=axes, base=base)
    if name:
        study.name = name
    reporter = reporter_for(quiet)
    root, records = run_study(study, project=project, quiet=quiet, reporter=reporter,
                              weights=str(weights) if weights else None)
    for record in records:
        if "skipped" in record:
            console.print(f"skipped {record['name']}: {record['skipped']}", highlight=False)
    for path in write_comparison(root, study, records):
        console.print(str(path), highlight=False)


def ensemble(
    runs: List[Path] = typer.Argument(..., help="Training run folders (same classes)."),
    data: str = typer.Option(..., help="Folder (its test/ or val/, else the images no run's "
                             "split.json shows it trained on) or a built-in's test part."),
    weights: Optional[str] = typer.Option(None, help="Comma-separated weight per run."),
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    project: str = PROJECT,
    name: str = NAME,
    quiet: bool = QUIET,
) -> None:
    """Average the probabilities of several runs on images none of them trained on; report
    each member and the ensemble."""
    from facecnn.studies.ensemble import ensemble as run_ensemble

    out, metrics = run_ensemble(runs, data, weights=_split(weights, float),
                                batch_size=batch_size, device=device, project=project,
                                name=name, reporter=reporter_for(quiet))
    console.print(metrics["scored"], highlight=False)
    for member in metrics["members"]:
        console.print(f"{member['run']}: accuracy {member['accuracy']:.4f}", highlight=False)
    console.print(f"ensemble: accuracy {metrics['accuracy']:.4f}, macro-F1 "
                  f"{metrics['macro_f1']:.4f}; {out / 'predictions.csv'}", highlight=False)


visualize_app = typer.Typer(help="Pictures of schedules, kernels, feature maps, Grad-CAM and "
                            "predictions.", no_args_is_help=True)


def _out(project: str, name: str) -> Path:
    from facecnn.runs import new_run_dir

    return new_run_dir(project, "visualize", name)


def _show(paths: list[Path]) -> None:
    for path in paths:
        console.print(str(path), highlight=False)


def _model_input(run: Path, photo: Path) -> tuple[Any, dict, Any, Any]:
    """(model, meta, normalised input tensor, the photo as the model sees it)."""
    import torch

    from facecnn.data.decode import decode_image
    from facecnn.inference.pytorch import Predictor

    predictor = Predictor.load(run, "cpu")
    meta = predictor.meta
    try:
        image = decode_image(photo, meta["img_size"], meta["in_chans"])
    except ValueError as exc:
        raise FacecnnError(f"{photo}: {exc}") from None
    x = predictor.rt.from_uint8(torch.from_numpy(image[None]).permute(0, 3, 1, 2))
    return predictor.model, meta, x, image


@visualize_app.command("schedule")
def visualize_schedule(schedule: str = typer.Option("rampup_expdecay",
                                                    help=SCHEDULE_CHOICES.describe()),
                       epochs: int = typer.Option(25, min=1),
                       lr: float = typer.Option(5e-5, help="Base (peak) learning rate."),
                       step_size: Optional[int] = typer.Option(None),
                       gamma: float = typer.Option(0.1),
                       project: str = PROJECT, name: str = NAME) -> None:
    """The learning rate of every epoch (seed B plotted its ramp-up and decay)."""
    from facecnn.choices.schedules import schedule_values
    from facecnn.viz.plots import plot_lr_schedule

    values = schedule_values(schedule, lr, epochs, step_size=step_size, gamma=gamma)
    _show([plot_lr_schedule(values, _out(project, name) / f"schedule_{schedule}.png",
                            f"{schedule}, base lr {lr:g}")])


@visualize_app.command("kernels")
def visualize_kernels(photo: Path, project: str = PROJECT, name: str = NAME) -> None:
    """Sobel x/y, sharpen and outline kernels and the RGB channels of a photo (seed E)."""
    from facecnn.data.decode import read_image
    from facecnn.viz.kernels import kernel_figure

    try:
        image = read_image(photo)
    except ValueError as exc:
        raise FacecnnError(f"{photo}: {exc}") from None
    _show([kernel_figure(image, _out(project, name) / f"kernels_{photo.stem}.png")])


@visualize_app.command("feature-maps")
def visualize_feature_maps(run: Path, photo: Path, max_channels: int = typer.Option(64),
                           project: str = PROJECT, name: str = NAME) -> None:
    """The activations of every conv layer for one photo, one PNG per layer (seed B)."""
    from facecnn.viz.feature_maps import feature_maps

    model, _, x, _ = _model_input(run, photo)
    _show(feature_maps(model, x, _out(project, name), max_channels))


@visualize_app.command("gradcam")
def visualize_gradcam(run: Path, photo: Path,
                      target: Optional[str] = typer.Option(None, help="Class to explain "
                                                           "(default: the predicted one)."),
                      project: str = PROJECT, name: str = NAME) -> None:
    """Where the model looked to decide (Grad-CAM on the last conv layer)."""
    from facecnn.viz.gradcam import gradcam, overlay_figure

    model, meta, x, image = _model_input(run, photo)
    index = None
    if target is not None:
        if target not in meta["classes"]:
            raise FacecnnError(f"unknown class {target!r}")
        index = meta["classes"].index(target)
    heat, index, prob = gradcam(model, x, index)
    title = f"{meta['classes'][index]} ({prob:.2f})"
    _show([overlay_figure(image, heat, title,
                          _out(project, name) / f"gradcam_{photo.stem}.png")])


@visualize_app.command("predictions")
def visualize_predictions(run: Path, data: str, grid: str = typer.Option("4x8"),
                          project: str = PROJECT, name: str = NAME) -> None:
    """A grid of images titled 'predicted (true)', green when right, red when wrong (seed E)."""
    import numpy as np

    from facecnn.data.datasets import load_folder_for
    from facecnn.inference.pytorch import Predictor
    from facecnn.viz.predictions import parse_grid, predictions_grid

    rows, cols = parse_grid(grid)
    predictor = Predictor.load(run, "cpu")
    meta = predictor.meta
    images, _ = load_folder_for(data, meta["classes"], meta["img_size"], meta["in_chans"])
    chosen = np.random.default_rng(0).permutation(len(images))[:rows * cols]
    pixels = images.batch(chosen)
    predicted = predictor.probabilities(pixels).argmax(1)
    classes = meta["classes"]
    _show([predictions_grid(pixels, [classes[i] for i in predicted],
                            [classes[i] for i in images.labels[chosen]],
                            _out(project, name) / "predictions.png", rows, cols)])


def register(app: typer.Typer) -> None:
    app.command()(compare)
    app.command()(ensemble)
    app.add_typer(visualize_app, name="visualize")
