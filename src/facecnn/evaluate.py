"""Score a trained model on another dataset and write a run folder for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facecnn.data.datasets import load_folder_for
from facecnn.data.heldout import untrained
from facecnn.inference.pytorch import Predictor
from facecnn.progress import Reporter
from facecnn.runs import new_run_dir
from facecnn.train.evaluation import evaluate
from facecnn.train.loader import BatchLoader
from facecnn.train.report import write_eval_outputs


def evaluate_run(run: Path, data: str, *, batch_size: int = 64, device: str = "auto",
                 project: str = "runs", name: str = "exp",
                 reporter: Reporter | None = None) -> tuple[Path, dict[str, Any]]:
    """Evaluate `run` on the images of `data` it did not train on; returns (run folder under
    PROJECT/evaluate, metrics), whose `scored` says which images those are."""
    reporter = reporter or Reporter()
    predictor = Predictor.load(run, device)
    meta = predictor.meta
    with reporter.task("reading images", 0) as advance:
        images, skipped = load_folder_for(data, meta["classes"], meta["img_size"],
                                          meta["in_chans"], progress=lambda total: advance)
    keep, scored = untrained(images, data, [run])
    images = images.subset(keep)
    result = evaluate(predictor.model, BatchLoader(images, batch_size, shuffle=False),
                      predictor.rt, len(meta["classes"]))
    out = new_run_dir(project, "evaluate", name)
    extra = {"run": str(run), "data": data, "images": result.count, "scored": scored,
             "skipped": skipped,
             "overview": {"model": meta["model"], "run": str(run), "data": data,
                          "images": scored}}
    metrics = write_eval_outputs(out, result.cm, meta["classes"], loss=result.loss, extra=extra,
                                 title=f"Evaluation of {run} on {data}")
    return out, metrics
