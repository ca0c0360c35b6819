"""The `facecnn` command: parses flags, calls the API, prints with rich. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from facecnn import cli_faces, cli_studies
from facecnn.cli_options import BATCH_SIZE, DEVICE, NAME, PROJECT, QUIET
from facecnn.errors import FacecnnError, Interrupted
from facecnn.fileio import write_csv_atomic
from facecnn.terminal import console, err_console, reporter_for

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Face recognition with convolutional networks: train, evaluate, predict.")
# Choices are listed here (not imported) so `--help` stays instant; a test checks they match
# the registries.
OPTIMIZER_NAMES = "sgd, sgd_clip, momentum, nesterov, adagrad, adadelta, rmsprop, adam, adamw"
SCHEDULE_NAMES = "constant, step, rampup_expdecay, cosine, onecycle"
INIT_NAMES = "default, zeros, normal, glorot, he"
AUGMENT_NAMES = "none, seed_b_flowers, seed_b_faces, seed_c, faces, digits"
OBJECTIVE_NAMES = "softmax, arcface, triplet"


@app.command()
def train(
    data: Optional[str] = typer.Argument(None, help="Folder of class folders (or with train/ "
                                         "val/ [test/]), or a built-in: mnist5k, digits."),
    model: str = typer.Option("seed_face_cnn", help="Model name (see `facecnn models`)."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(32, min=1),
    img_size: Optional[int] = typer.Option(None, help="Input size (default: the model's)."),
    head: Optional[str] = typer.Option(None, help="Head spec, e.g. gap-dense512-dropout0.5."),
    pretrained: bool = typer.Option(False, help="Pretrained weights: ImageNet from the hub "
                                    "(online); dlib_resnet: dlib's face weights (offline)."),
    weights: Optional[Path] = typer.Option(None, help="Local weights: timm/torchvision state "
                                           "dict or a facecnn checkpoint."),
    freeze: str = typer.Option("none", help="none, backbone, all-but-head, or stages such as "
                               "layer1-3."),
    optimizer: str = typer.Option("adam", help=OPTIMIZER_NAMES),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: the optimizer's)."),
    weight_decay: float = typer.Option(0.0),
    schedule: str = typer.Option("constant", help=SCHEDULE_NAMES),
    step_size: Optional[int] = typer.Option(None, help="step schedule: epochs per decay "
                                            "(default: seed B's table)."),
    gamma: float = typer.Option(0.1, help="step schedule: decay factor."),
    init: str = typer.Option("default", help=INIT_NAMES),
    augment: str = typer.Option("none", help=AUGMENT_NAMES),
    label_smoothing: float = typer.Option(0.0, min=0.0, max=0.99),
    objective: str = typer.Option("softmax", help=f"Loss: {OBJECTIVE_NAMES} (the last two "
                                  "train the embedding; docs/objectives.md)."),
    margin: Optional[float] = typer.Option(None, help="arcface: angular margin in radians "
                                           "(default 0.5); triplet: distance margin (0.2)."),
    scale: Optional[float] = typer.Option(None, help="arcface: logit scale (default 30)."),
    patience: Optional[int] = typer.Option(None, help="Early stop after this many epochs "
                                           "without a better val loss."),
    clip_grad: Optional[float] = typer.Option(None, help="Clip the gradient norm."),
    val_split: float = typer.Option(0.2, help="Validation fraction when DATA has no val/."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision "
                                       "(default: on for CUDA and for CPUs with bf16 instructions)."),
    project: str = typer.Option("runs", help="Runs are saved under PROJECT/train/NAME."),
    name: str = typer.Option("exp"),
    quiet: bool = typer.Option(False, help="No progress bars."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder."),
) -> None:
    """Train a classifier on a folder of photos; leaves a run folder with curves and a report."""
    from facecnn.config import TrainConfig
    from facecnn.train.trainer import Trainer

    if resume is None and data is None:
        raise FacecnnError("give DATA (a folder or mnist5k/digits) or --resume RUN_DIR")
    cfg = None
    if resume is None:
        cfg = TrainConfig(data=data, model=model, epochs=epochs, batch_size=batch_size,
                          img_size=img_size, head=head, pretrained=pretrained,
                          weights=str(weights) if weights else None, freeze=freeze,
                          optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                          schedule=schedule, step_size=step_size, gamma=gamma, init=init,
                          augment=augment, label_smoothing=label_smoothing,
                          objective=objective, margin=margin, scale=scale, patience=patience,
                          clip_grad=clip_grad, val_split=val_split, seed=seed, device=device,
                          amp=amp, project=project, name=name, quiet=quiet)
    trainer = Trainer(cfg, reporter_for(quiet), resume=resume)
    trainer.fit(resume)


@app.command()
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
    """Measure a trained model on images it never trained on: metrics.json, confusion matrix,
    report."""
    from facecnn.evaluate import evaluate_run

    reporter = reporter_for(quiet)
    out, metrics = evaluate_run(run, data, batch_size=batch_size, device=device,
                                project=project, name=name, reporter=reporter)
    reporter.log(metrics["scored"])
    reporter.log(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
                 f"({metrics['images']} images); results in {out}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A training run folder or its model file."),
    files: List[Path] = typer.Argument(..., help="Images or folders of images."),
    top_k: int = typer.Option(1, min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write id,label rows here (id: "
                                            "the file's path below the folder the inputs "
                                            "share)."),
    device: str = typer.Option("auto"),
) -> None:
    """Name the class of each image."""
    from facecnn.classify import load_classifier
    from facecnn.data.folders import expand_inputs, relative_ids

    paths = expand_inputs(files)
    named = dict(zip(relative_ids(files, paths), paths))  # a file given twice is one row
    if csv_path is not None and csv_path.exists():
        raise FacecnnError(f"{csv_path} exists; choose another --csv path")
    predictions, skipped = load_classifier(run, device)(list(named.values()), top_k=top_k)
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


@app.command()
def export(
    run: Path = typer.Argument(..., help="A training run folder or its model file."),
    format: str = typer.Option("onnx", help="onnx (the one format for now)."),
    out: Optional[Path] = typer.Option(None, help="Output file (default: RUN/model.onnx)."),
    opset: int = typer.Option(17, help="ONNX opset version."),
) -> None:
    """Export a trained model for programs without PyTorch (checked against PyTorch)."""
    from facecnn.export import export_onnx

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


@app.command()
def models(
    num_classes: int = typer.Option(1000, help="Class count used for the parameter column."),
) -> None:
    """List every model name with its input size and parameter count."""
    from facecnn.models.registry import list_models, model_info, parameter_count

    table = Table("model", "input", f"parameters ({num_classes} classes)", "description")
    for name in list_models():
        info = model_info(name)
        table.add_row(name, f"{info.img_size}x{info.img_size}x{info.in_chans}",
                      f"{parameter_count(name, num_classes):,}", info.description)
    console.print(table)


@app.command()
def demo(
    epochs: int = typer.Option(20, min=1),
    project: str = typer.Option("runs"),
    name: str = typer.Option("demo"),
    quiet: bool = typer.Option(False),
) -> None:
    """Offline demo: seed D's MNIST CNN on MNIST-5k, scored on a held-out test part."""
    from facecnn.config import TrainConfig
    from facecnn.train.trainer import Trainer

    cfg = TrainConfig(data="mnist5k", model="seed_mnist_cnn", epochs=epochs, batch_size=32,
                      optimizer="adam", schedule="cosine", augment="digits", val_split=0.1,
                      project=project, name=name, quiet=quiet)
    trainer = Trainer(cfg, reporter_for(quiet))
    trainer.fit()
    accuracy = trainer.metrics["test"]["accuracy"]
    console.print(f"[bold]MNIST-5k held-out test accuracy: {accuracy:.4f}[/bold] "
                  f"({len(trainer.data.test)} images never trained on)")


cli_faces.register(app)
cli_studies.register(app)


def main() -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    try:
        app()
    except FacecnnError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        err_console.print(f"interrupted: saved {exc.run_dir}/weights/last.pt; continue with "
                          f"`facecnn train --resume {exc.run_dir}`", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
