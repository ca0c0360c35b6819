"""What a user can choose from: `facecnn models`, `detectors`, `embedders`."""

from __future__ import annotations

import json

import typer
from rich.table import Column, Table

from facecnn.cli.options import JSON
from facecnn.faces.detectors import DETECTORS
from facecnn.terminal import console


def models(
    num_classes: int = typer.Option(1000, help="Class count used for the parameter column."),
) -> None:
    """List every model name with its input size and parameter count."""
    from facecnn.models.catalog import list_models, model_info, parameter_count

    table = Table(Column("model", no_wrap=True), "input", f"parameters ({num_classes} classes)",
                  "description")
    for name in list_models():
        info = model_info(name)
        table.add_row(name, f"{info.img_size}x{info.img_size}x{info.in_chans}",
                      f"{parameter_count(name, num_classes):,}", info.description)
    console.print(table)


def _model_files(files) -> list[dict[str, str]]:
    return [{"file": m.name, "from": m.source, "licence": m.licence} for m in files]


def _print_rows(rows: list[dict], columns: dict[str, str], as_json: bool) -> None:
    """The rows as JSON, or as a table of `columns` (key -> heading); model files last."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    first, *rest = columns.values()  # names whole; file names folded, never cut short
    table = Table(Column(first, no_wrap=True), *rest,
                  Column("model files (licence)", overflow="fold"))
    for row in rows:
        files = "; ".join(f"{m['file']} from {m['from']} ({m['licence']})" for m in row["models"])
        table.add_row(*(str(row[key]) for key in columns), files)
    console.print(table)


def detectors(as_json: bool = JSON) -> None:
    """Every face detector: what it is, its landmarks, speed, model files and licences."""
    from facecnn.faces.detect import DEFAULT_LANDMARKER
    from facecnn.faces.landmarks import LANDMARKERS

    step = LANDMARKERS.get(DEFAULT_LANDMARKER)
    rows = [{"name": e.name, "description": e.help,
             "landmarks": "own 5 points" if e.value.gives_landmarks else
             f"{DEFAULT_LANDMARKER} on its boxes", "speed_2_cpu_cores": e.value.speed,
             "models": _model_files(e.value.models if e.value.gives_landmarks
                                    else (*e.value.models, *step.models))}
            for e in DETECTORS.entries()]
    _print_rows(rows, {"name": "detector", "description": "what it is",
                       "landmarks": "landmarks", "speed_2_cpu_cores": "speed (2 cores)"},
                as_json)


def embedders(as_json: bool = JSON) -> None:
    """Every face embedder: what it is, its default threshold, model files and licences."""
    from facecnn.faces.embedders import EMBEDDERS, spelling

    rows = [{"name": spelling(e.name),
             "description": e.help, "default_threshold": e.value.default_threshold,
             "same_vectors_as": [o.name for o in EMBEDDERS.entries() if o.name != e.name
                                 and e.value.family and o.value.family == e.value.family],
             "models": _model_files(e.value.models)} for e in EMBEDDERS.entries()]
    _print_rows(rows, {"name": "embedder", "description": "what it is",
                       "default_threshold": "threshold"}, as_json)


def register(app: typer.Typer) -> None:
    for command in (models, detectors, embedders):
        app.command()(command)
