"""The training loop: one place that trains every model, alone or under torchrun.

Exact resume is by construction: each epoch's sample order and augmentation draw from
(seed, epoch), and a checkpoint taken mid-epoch (Ctrl-C) stores the batch index, the partial
epoch's sums and every random state, so `--resume` continues the very same sequence.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facecnn.config import TrainConfig
from facecnn.data.datasets import Dataset, load_dataset
from facecnn.data.heldout import record_split
from facecnn.data.transforms import build_augmentation
from facecnn.errors import FacecnnError, Interrupted
from facecnn.fileio import remove_stale_temps
from facecnn.models.classifier import Classifier
from facecnn.models.freeze import apply_freeze, keep_frozen_bn_eval
from facecnn.models.init import initialize
from facecnn.models.registry import count_parameters, create_model, model_info
from facecnn.models.weights import load_weights
from facecnn.progress import Reporter
from facecnn.inference import MODEL_FILE, latency_ms, save_inference_model
from facecnn.runs import new_run_dir
from facecnn.train.checkpoint import (resume_checkpoint, rng_state, save_atomic,
                                      seed_everything, set_rng_state)
from facecnn.train.distributed import DistContext
from facecnn.train.evaluation import evaluate
from facecnn.train.loader import BatchLoader, PKBatchLoader
from facecnn.train.metrics import accuracy_f1
from facecnn.train.objectives import build_objective, describe, resolve_objective
from facecnn.train.report import environment, write_results_csv, write_train_outputs
from facecnn.train.optim import DEFAULT_CLIP_FOR, OPTIMIZERS, build_optimizer
from facecnn.train.runtime import Runtime, select_device
from facecnn.train.schedules import build_scheduler


@dataclass
class EpochSums:
    """Running sums of one epoch; confusion counts give accuracy and F1 at the end."""

    loss: float = 0.0
    count: int = 0
    cm: np.ndarray | None = None
    seconds: float = 0.0

    def state(self) -> dict[str, Any]:
        return {"loss": self.loss, "count": self.count, "cm": torch.from_numpy(self.cm),
                "seconds": self.seconds}


@dataclass
class TrainState:
    epoch: int = 0          # completed epochs
    batch: int = 0          # batches done in the current epoch (non-zero only after Ctrl-C)
    partial: EpochSums = field(default_factory=EpochSums)
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0


def build_model(cfg: TrainConfig, num_classes: int, reporter: Reporter) -> Classifier:
    """The model a config describes: architecture, weights, initializer, frozen parts."""
    info = model_info(cfg.model)
    model = create_model(cfg.model, num_classes, img_size=cfg.img_size or info.img_size,
                         head=cfg.head, pretrained=cfg.pretrained)
    if cfg.weights:
        counts = load_weights(model, Path(cfg.weights))
        reporter.log(f"weights {cfg.weights}: {counts['loaded']} tensors loaded, "
                     f"{counts['skipped']} left as built (head)")
    pretrained = cfg.pretrained or cfg.weights
    initialize(model.head if pretrained else model, cfg.init)
    apply_freeze(model, cfg.freeze)
    return model


class Trainer:
    def __init__(self, cfg: TrainConfig, reporter: Reporter | None = None,
                 resume: Path | None = None) -> None:
        self.reporter = reporter or Reporter()
        self.resume_ckpt, self.resume_note = None, None
        if resume is not None:
            self.resume_ckpt, self.resume_note = resume_checkpoint(resume)
            cfg = TrainConfig.from_dict(self.resume_ckpt["config"])
        self.cfg = cfg
        self._stop = False

    # ---- set-up -------------------------------------------------------------------------
    def _setup(self, resume_dir: Path | None) -> None:
        cfg = self.cfg
        if cfg.optimizer not in OPTIMIZERS:
            raise FacecnnError(f"unknown optimizer {cfg.optimizer!r}; choose one of: "
                               f"{', '.join(OPTIMIZERS)}")
        # defaults filled in here land in config.yaml and the checkpoint, so resume keeps them
        self.cfg = cfg = dataclasses.replace(cfg, **resolve_objective(cfg))
        self.dist = DistContext.from_env()
        seed_everything(cfg.seed)
        info = model_info(cfg.model)
        self.img_size = cfg.img_size or info.img_size
        self.data = self._load_data(info.in_chans)
        self.model = build_model(cfg, len(self.data.classes), self.reporter)
        self.objective = build_objective(cfg, self.model)
        self.params = count_parameters(self.model)
        self.device = select_device(cfg.device, self.dist.local_rank)
        self.rt = Runtime.create(self.device, info.mean, info.std, cfg.amp)
        self.model.to(self.device, memory_format=torch.channels_last
                      if self.rt.channels_last else torch.preserve_format)
        self.augment = build_augmentation(cfg.augment)
        shards = {"seed": cfg.seed, "rank": self.dist.rank, "world": self.dist.world}
        if self.objective.per_person:
            self.train_loader: BatchLoader = PKBatchLoader(
                self.data.train, cfg.batch_size, self.objective.per_person, **shards)
        else:
            self.train_loader = BatchLoader(self.data.train, cfg.batch_size, shuffle=True,
                                            **shards)
        self.val_loader = BatchLoader(self.data.val, cfg.batch_size * 2, shuffle=False,
                                      rank=self.dist.rank, world=self.dist.world)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise FacecnnError(f"--freeze {cfg.freeze} leaves nothing to train")
        self.optimizer = build_optimizer(cfg.optimizer, trainable, cfg.lr, cfg.weight_decay)
        self.scheduler = build_scheduler(cfg.schedule, self.optimizer, cfg.epochs,
                                         len(self.train_loader), step_size=cfg.step_size,
                                         gamma=cfg.gamma)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.rt.amp_dtype == torch.float16)
        self.clip = cfg.clip_grad or DEFAULT_CLIP_FOR.get(cfg.optimizer)
        self.net: nn.Module = self.objective
        if self.dist.enabled:
            # channels-last 1-channel convs have ambiguous strides: harmless, but DDP warns
            warnings.filterwarnings("ignore", message="Grad strides do not match")
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.objective, device_ids=ids)
        self.state = TrainState()
        self.best_state: dict[str, torch.Tensor] | None = None
        if self.resume_ckpt is not None:
            self.run_dir = resume_dir
            self._restore(self.resume_ckpt)
            self._reopen_run()
        else:
            self.objective.start(((self.rt.from_uint8(images), labels.to(self.device))
                                  for images, labels in self.train_loader.batches(0)),
                                 self.dist.all_sum)
            run_dir = new_run_dir(cfg.project, "train", cfg.name) if self.dist.is_main else None
            self.run_dir = Path(self.dist.broadcast(str(run_dir) if run_dir else ""))
            if self.dist.is_main:
                cfg.save(self.run_dir / "config.yaml")
                record_split(self.run_dir, self.data)  # evaluate/ensemble leave these out

    def _reopen_run(self) -> None:
        """Clear what a killed run left half-written, and make results.csv agree with the
        checkpoint resumed from (a kill may have come between their writes)."""
        if self.resume_note:
            self._log(self.resume_note)
        if self.dist.is_main:
            for folder in (self.run_dir, self.run_dir / "weights"):
                remove_stale_temps(folder)
            write_results_csv(self.state.history, self.run_dir / "results.csv")

    def _load_data(self, channels: int) -> Dataset:
        """Rank 0 fills the image cache first; the other ranks then read it."""
        cfg = self.cfg

        def load() -> Dataset:
            with self.reporter.task("caching images", 0) as advance:
                return load_dataset(cfg.data, self.img_size, channels, val_split=cfg.val_split,
                                    seed=cfg.seed, progress=lambda total: advance)

        if self.dist.is_main:
            data = load()
        self.dist.barrier()
        if not self.dist.is_main:
            data = load()
        return data

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        s = ckpt["state"]
        partial = EpochSums(**{**s["partial"], "cm": s["partial"]["cm"].numpy()})
        self.state = TrainState(s["epoch"], s["batch"], partial, s["history"],
                                s["best_loss"], s["best_epoch"], s["bad_epochs"])
        self.best_state = ckpt.get("best_model")
        self._resume_rng = ckpt["rng"]

    # ---- checkpoints --------------------------------------------------------------------
    def _checkpoint(self, aug_rng: torch.Tensor | None) -> dict[str, Any]:
        s = self.state
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "state": {"epoch": s.epoch, "batch": s.batch, "partial": s.partial.state(),
                      "history": s.history, "best_loss": s.best_loss,
                      "best_epoch": s.best_epoch, "bad_epochs": s.bad_epochs},
            "rng": {**rng_state(), "augment": aug_rng},
            "best_model": self.best_state, "classes": self.data.classes,
            "config": self.cfg.to_dict(), "img_size": self.img_size,
        }

    def _save_last(self, aug_rng: torch.Tensor | None) -> None:
        if self.dist.is_main:
            save_atomic(self._checkpoint(aug_rng), self.run_dir / "weights" / "last.pt")

    # ---- the loop -----------------------------------------------------------------------
    def fit(self, resume_dir: Path | None = None) -> Path:
        """Train to the end (or early stop) and return the run folder."""
        self._setup(resume_dir)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self._log_start()
            while self.state.epoch < self.cfg.epochs:
                self._train_epoch()
                row = self._end_epoch()
                if self._early_stop(row):
                    break
        finally:
            signal.signal(signal.SIGINT, previous)
        self.metrics = self._finish()
        self.dist.close()
        return self.run_dir

    def _log(self, message: str) -> None:
        """Print through the reporter and keep the line in the run's train.log."""
        self.reporter.log(message)
        if self.dist.is_main and getattr(self, "run_dir", None):
            with (self.run_dir / "train.log").open("a") as log:
                log.write(message + "\n")

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._stop = True

    def _stop_requested(self) -> bool:
        """Every rank must stop at the same batch, so the flag is agreed on collectively."""
        if not self.dist.enabled:
            return self._stop
        flag = torch.tensor([float(self._stop)], device=self.device
                            if self.device.type == "cuda" else "cpu")
        return bool(self.dist.all_sum(flag).item() > 0)

    def _log_start(self) -> None:
        p, d = self.params, self.data
        self._log(
            f"{self.cfg.model}: {p['trainable']:,} trainable / {p['frozen']:,} frozen "
            f"parameters; {len(d.train)} train, {len(d.val)} val images, {len(d.classes)} "
            f"classes; objective {describe(self.cfg)}; device {self.device}"
            + (f", {self.dist.world} ranks" if self.dist.enabled else ""))
        if d.skipped:
            self._log(f"skipped {len(d.skipped)} unreadable files (listed in report.md)")

    def _train_epoch(self) -> None:
        s, cfg = self.state, self.cfg
        epoch, n_classes = s.epoch, len(self.data.classes)
        generator = torch.Generator()
        if s.batch == 0:
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            generator.manual_seed(cfg.seed * 100_019 + epoch * 997 + self.dist.rank)
            s.partial = EpochSums(cm=np.zeros((n_classes, n_classes), dtype=np.int64))
        else:
            set_rng_state(self._resume_rng)
            generator.set_state(self._resume_rng["augment"])
        self.net.train()
        keep_frozen_bn_eval(self.net)
        start_time = time.perf_counter()
        cm = torch.zeros(n_classes * n_classes, dtype=torch.int64, device=self.device)
        losses = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        total = len(self.train_loader)
        with self.reporter.task(f"epoch {epoch + 1}/{cfg.epochs}", total - s.batch) as advance:
            for images, labels in self.train_loader.batches(epoch, start=s.batch):
                x = self.rt.normalize(self.augment(images.to(self.device), generator))
                y = labels.to(self.device)
                with self.rt.autocast():
                    loss, logits = self.net(x, y)
                self._step(loss)
                losses += loss.detach().double() * len(y)
                count += len(y)
                cm += torch.bincount(y * n_classes + logits.argmax(1),
                                     minlength=n_classes * n_classes)
                s.batch += 1
                advance(1)
                if self._stop_requested():
                    self._fold_sums(losses, count, cm, start_time)
                    self._save_last(generator.get_state())
                    raise Interrupted(self.run_dir)
        self._fold_sums(losses, count, cm, start_time)

    def _fold_sums(self, losses: torch.Tensor, count: int, cm: torch.Tensor,
                   start_time: float) -> None:
        p = self.state.partial
        p.loss += float(losses)
        p.count += count
        p.cm = p.cm + cm.view(p.cm.shape).cpu().numpy()
        p.seconds += time.perf_counter() - start_time

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                     self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def _end_epoch(self) -> dict[str, float]:
        s = self.state
        p = s.partial
        sums = self.dist.all_sum(torch.tensor([p.loss, p.count], dtype=torch.float64))
        cm = self.dist.all_sum(torch.from_numpy(p.cm)).numpy()
        train_acc, train_f1 = accuracy_f1(cm)
        val = evaluate(self.net, self.val_loader, self.rt, len(self.data.classes), self.dist)
        val_acc, val_f1 = accuracy_f1(val.cm)
        row = {"epoch": s.epoch + 1, "train_loss": float(sums[0] / max(sums[1], 1)),
               "train_acc": train_acc, "train_f1": train_f1, "val_loss": val.loss,
               "val_acc": val_acc, "val_f1": val_f1,
               "lr": self.optimizer.param_groups[0]["lr"],
               "seconds": round(p.seconds, 3)}
        s.history.append(row)
        s.epoch += 1
        s.batch = 0
        if val.loss < s.best_loss:
            s.best_loss, s.best_epoch, s.bad_epochs = val.loss, s.epoch, 0
            self.best_state = copy.deepcopy({k: v.detach().cpu()
                                             for k, v in self.model.state_dict().items()})
            if self.dist.is_main:
                save_atomic(self._checkpoint(None), self.run_dir / "weights" / "best.pt")
        else:
            s.bad_epochs += 1
        self._save_last(None)
        if self.dist.is_main:
            write_results_csv(s.history, self.run_dir / "results.csv")
        self._log(
            f"epoch {row['epoch']}/{self.cfg.epochs}  loss {row['train_loss']:.4f}  "
            f"acc {train_acc:.4f}  val_loss {val.loss:.4f}  val_acc {val_acc:.4f}  "
            f"val_f1 {val_f1:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")
        if self._stop_requested():
            raise Interrupted(self.run_dir)
        return row

    def _early_stop(self, row: dict[str, float]) -> bool:
        patience = self.cfg.patience
        if patience is not None and self.state.bad_epochs >= patience:
            self._log(f"early stop: val loss has not improved for {patience} epochs "
                              f"(best epoch {self.state.best_epoch})")
            return True
        return False

    # ---- the end ------------------------------------------------------------------------
    def inference_meta(self) -> dict[str, Any]:
        """What using the model needs, the face crop of its data included (a folder that
        `prepare` wrote says its margin), so recognizing crops faces as it was trained on."""
        from facecnn.faces.prepare import crop_settings

        info = model_info(self.cfg.model)
        return {"model": self.cfg.model, "head": self.cfg.head, "img_size": self.img_size,
                "in_chans": info.in_chans, "mean": list(info.mean), "std": list(info.std),
                "classes": self.data.classes,
                "crop": crop_settings(Path(self.cfg.data).expanduser())}

    def _finish(self) -> dict[str, Any]:
        """Best weights back in; final val/test metrics, model file, plots and report."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.objective.finalize()
        n = len(self.data.classes)
        val = evaluate(self.net, self.val_loader, self.rt, n, self.dist)
        test = None
        if self.data.test is not None:
            loader = BatchLoader(self.data.test, self.cfg.batch_size * 2, shuffle=False,
                                 rank=self.dist.rank, world=self.dist.world)
            test = evaluate(self.net, loader, self.rt, n, self.dist)
        if not self.dist.is_main:
            return {}
        model_file = save_inference_model(self.model, self.inference_meta(),
                                          self.run_dir / MODEL_FILE)
        s, cfg = self.state, self.cfg
        metrics: dict[str, Any] = {
            "overview": {"model": cfg.model, "data": self.data.source,
                         "classes": len(self.data.classes),
                         "images": f"{len(self.data.train)} train, {len(self.data.val)} val"
                         + (f", {len(self.data.test)} test" if self.data.test else ""),
                         "epochs run": len(s.history), "best epoch (val loss)": s.best_epoch,
                         "objective": describe(cfg),
                         "optimizer": f"{cfg.optimizer} lr {self.optimizer.defaults['lr']:g}",
                         "schedule": cfg.schedule, "augmentation": cfg.augment,
                         "freeze": cfg.freeze, "device": str(self.device)},
            "final": s.history[-1] if s.history else {},
            "best": {"epoch": s.best_epoch, "val_loss": val.loss},
            "parameters": self.params,
            "model_file_mb": round(model_file.stat().st_size / 2**20, 3),
            "latency_ms": round(latency_ms(self.model, self.rt, model_info(cfg.model).in_chans,
                                           self.img_size), 3),
            "classes": self.data.classes,
            "skipped": self.data.skipped,
            "environment": environment(),
        }
        metrics = write_train_outputs(self.run_dir, history=s.history, val_cm=val.cm,
                                      test_cm=test.cm if test else None,
                                      classes=self.data.classes, metrics=metrics)
        self._log(f"val accuracy {metrics['val']['accuracy']:.4f}"
                          + (f", test accuracy {metrics['test']['accuracy']:.4f}"
                             if test else "") + f"; results in {self.run_dir}")
        return metrics
