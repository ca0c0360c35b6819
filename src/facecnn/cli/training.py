"""The training commands of `facecnn`: train, evaluate, predict, export, demo."""

from __future__ import annotations

import inspect
import json
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, Callable, List, Optional, get_type_hints

import typer
from rich.table import Table
from rich.text import Text

from facecnn.cli.options import BATCH_SIZE, DEVICE, JSON, NAME, PROJECT, QUIET
from facecnn.config import TrainConfig
from facecnn.errors import FacecnnError
from facecnn.fileio import write_csv_atomic
from facecnn.progress import Reporter
from facecnn.terminal import console, err_console, reporter_for


def _config_parameters(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` a parameter per TrainConfig field, its default, help and limits read
    from the field (a field without a default becomes an optional argument, as --resume needs
    none), ahead of the command's own keyword-only parameters."""
    hints = get_type_hints(TrainConfig)
    params = []
    for f in fields(TrainConfig):
        meta = f.metadata
        help, choices = meta["help"], meta["choices"]
        if choices is not None:
            help = help.format(choices=choices.describe())
        if f.default is MISSING:
            default, annotation = typer.Argument(None, help=help), Optional[hints[f.name]]
        else:
            default = typer.Option(f.default, help=help, min=meta["min"], max=meta["max"])
            annotation = hints[f.name]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=annotation))
    own = [p for p in inspect.signature(command).parameters.values()
           if p.kind is inspect.Parameter.KEYWORD_ONLY]
    command.__signature__ = inspect.Signature(params + own)  # type: ignore[attr-defined]
    return command


@_config_parameters
def train(*, resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder."),
          **settings: Any) -> None:
    """Train a classifier on a folder of photos; leaves a run folder with curves and a report."""
    from facecnn.train.trainer import Trainer

    if resume is None and settings["data"] is None:
        raise FacecnnError("give DATA (a folder or mnist5k/digits) or --resume RUN_DIR")
    reporter = reporter_for(settings["quiet"])
    cfg = TrainConfig(**settings) if resume is None else None
    if cfg is not None and cfg.pretrained:
        cfg = _in_the_models_crop(cfg, reporter)
    trainer = Trainer(cfg, reporter, resume=resume)
    trainer.fit(resume)


def _in_the_models_crop(cfg: TrainConfig, reporter: Reporter) -> TrainConfig:
    """A pretrained face model learnt on its own crop (dlib's chips for dlib_resnet): a folder
    `prepare` cut in another layout is cut again in the model's, from the photos it
    recorded (apps/recut.py), and trained on instead."""
    from facecnn.data.crop_layout import crop_settings, describe, same_layout
    from facecnn.models.catalog import model_info

    native, data = model_info(cfg.model).crop, Path(cfg.data).expanduser()
    found = crop_settings(data) if data.is_dir() else None
    if native is None or found is None or same_layout(found, native):
        return cfg
    from facecnn.apps.recut import recut

    again = recut(data, native, reporter)
    reporter.log(f"{data} holds {describe(found)}; {cfg.model}'s pretrained weights learnt on "
                 f"{describe(native)}: training on its faces cut so, from the photos "
                 f"`prepare` recorded ({again})")
    return replace(cfg, data=str(again))


def evaluate(
    run: Path = typer.Argument(..., help="A training run folder or its model file."),
    data: str = typer.Argument(..., help="Folder of class folders (its test/ or val/ if it has "
                               "one, else the images RUN's split.json shows it did not train "
                               "on), or a built-in's test part."),
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    project: str = PROJECT,
    name: str = NAME,
    quiet: bool = QUIET,
) -> None:
    """Measure a trained model on images it never trained on: metrics, confusion matrix, report."""
    from facecnn.evaluate import evaluate_run

    reporter = reporter_for(quiet)
    out, metrics = evaluate_run(run, data, batch_size=batch_size, device=device,
                                project=project, name=name, reporter=reporter)
    reporter.log(metrics["scored"])
    reporter.log(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
                 f"({metrics['images']} images); results in {out}")


def predict(
    run: Path = typer.Argument(..., help="A training run folder or its model file."),
    files: List[Path] = typer.Argument(..., help="Images or folders of images."),
    top_k: int = typer.Option(1, min=1),
    as_json: bool = JSON,
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write id,label rows here (id: "
                                            "the file's path below the folder the inputs "
                                            "share)."),
    device: str = DEVICE,
) -> None:
    """Name the class of each image.

    A run trained on face crops (`prepare`) names the largest face of a photo, cut as its
    crops were; images in a folder `prepare` wrote go in as they are.
    """
    from facecnn.apps.predict import predict_files
    from facecnn.data.folders import expand_inputs, relative_ids
    from facecnn.inference import load_classifier

    paths = expand_inputs(files)
    named = dict(zip(relative_ids(files, paths), paths))  # a file given twice is one row
    if csv_path is not None and csv_path.exists():
        raise FacecnnError(f"{csv_path} exists; choose another --csv path")
    predictions, skipped = predict_files(load_classifier(run, device), list(named.values()),
                                         top_k=top_k)
    for item in skipped:
        err_console.print(f"skipped {item['file']}: {item['reason']}", highlight=False)
    if csv_path is not None:
        ids = {str(path): image_id for image_id, path in named.items()}
        write_csv_atomic(csv_path, [["id", "label"]]
                         + [[ids[p.file], p.label] for p in predictions])
    if as_json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return
    table = Table("file", "label", "score", *(["top k"] if top_k > 1 else []))
    for p in predictions:
        extra = [", ".join(f"{n} {s:.3f}" for n, s in p.top_k)] if top_k > 1 else []
        table.add_row(p.file, p.label, f"{p.score:.3f}", *extra)
    console.print(table)


def export(
    run: Path = typer.Argument(..., help="A training run folder or its model file."),
    format: str = typer.Option("onnx", help="onnx (the one format for now)."),
    out: Optional[Path] = typer.Option(None, help="Output file (default: RUN/model.onnx)."),
    opset: int = typer.Option(17, help="ONNX opset version."),
) -> None:
    """Export a trained model for programs without PyTorch (checked against PyTorch)."""
    from facecnn.inference.export import export_onnx

    if format != "onnx":
        raise FacecnnError(f"unknown format {format!r}; the one format is onnx")
    report = export_onnx(run, out, opset)
    table = Table("", "PyTorch", "ONNX (onnxruntime)")
    table.add_row("file MB", f"{report['pytorch_mb']:.3f}", f"{report['onnx_mb']:.3f}")
    table.add_row("latency ms (1 image, CPU)", f"{report['pytorch_latency_ms']:.2f}",
                  f"{report['onnx_latency_ms']:.2f}")
    console.print(table)
    console.print(f"{report['onnx']} (opset {report['opset']}; differs from PyTorch by "
                  f"{report['max_abs_difference']:.1e} in probability, "
                  f"{report['max_relative_logit_difference']:.1e} in relative logits); "
                  f"classes and preprocessing in "
                  f"{report['onnx']}.json", highlight=False)


def demo(
    epochs: int = typer.Option(12, min=1),
    project: str = PROJECT,
    name: str = typer.Option("demo", help="Run name (demo2, demo3... when taken)."),
    quiet: bool = QUIET,
) -> None:
    """Offline demo: seed D's MNIST CNN on MNIST-5k, scored on a held-out test part."""
    from facecnn.train.trainer import Trainer

    cfg = TrainConfig(data="mnist5k", model="seed_mnist_cnn", epochs=epochs, batch_size=32,
                      optimizer="adam", schedule="onecycle", augment="digits", val_split=0.1,
                      project=project, name=name, quiet=quiet)
    trainer = Trainer(cfg, reporter_for(quiet))
    trainer.fit()
    accuracy = trainer.metrics["test"]["accuracy"]
    console.print(Text.assemble((f"MNIST-5k held-out test accuracy: {accuracy:.4f}", "bold"),
                                f" ({len(trainer.data.test)} images never trained on)"))


def register(app: typer.Typer) -> None:
    app.command()(train)
    for command in (evaluate, predict, export, demo):
        app.command()(command)
