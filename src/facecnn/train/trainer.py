"""The training loop: one place that trains every model, alone or under torchrun.

`Trainer.setup` is a row of small builders (data, model, loaders, optimization, distributed
wrap, start-or-restore) that a subclass may override one at a time; what happens around the
loop (train.log, results.csv, checkpoints, early stopping) is callbacks (train/callbacks.py).

Exact resume is by construction: each epoch's sample order and augmentation draw from
(seed, epoch), and a checkpoint taken mid-epoch (Ctrl-C) stores the batch index, the partial
epoch's sums and every random state, so `--resume` continues the very same sequence.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
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

from facecnn.choices.optimizers import OPTIMIZER_CHOICES, PRETRAINED_BACKBONE_LR_SCALE
from facecnn.config import TrainConfig
from facecnn.data.crop_layout import crop_settings
from facecnn.data.datasets import Dataset, load_dataset
from facecnn.data.heldout import record_split
from facecnn.data.transforms import build_augmentation
from facecnn.errors import FacecnnError, Interrupted
from facecnn.fileio import remove_stale_temps
from facecnn.inference.pytorch import MODEL_FILE, latency_ms, save_inference_model
from facecnn.models.catalog import count_parameters, create_model, model_info
from facecnn.models.classifier import Classifier
from facecnn.models.freeze import apply_freeze, keep_frozen_bn_eval
from facecnn.models.init import initialize
from facecnn.models.weights import load_weights
from facecnn.progress import Reporter
from facecnn.runs import new_run_dir
from facecnn.runtime import Runtime, select_device
from facecnn.train.callbacks import Callback, default_callbacks
from facecnn.train.checkpoint import (
    best_weights,
    resume_checkpoint,
    rng_state,
    save_atomic,
    seed_everything,
    set_rng_state,
)
from facecnn.train.crop_check import crop_mismatch
from facecnn.train.distributed import DistContext
from facecnn.train.evaluation import evaluate
from facecnn.train.loader import BatchLoader, PKBatchLoader
from facecnn.train.metrics import accuracy_f1
from facecnn.train.objectives import build_objective, describe, resolve_objective
from facecnn.train.optim import build_optimizer, param_groups
from facecnn.train.report import environment, write_results_csv, write_train_outputs
from facecnn.train.schedules import build_scheduler

log = logging.getLogger("facecnn.train")


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


class Tally:
    """One stretch of an epoch's batches, summed on the device (no sync per batch)."""

    def __init__(self, n_classes: int, device: torch.device) -> None:
        self.n = n_classes
        self.cm = torch.zeros(n_classes * n_classes, dtype=torch.int64, device=device)
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        self.loss += loss.detach().double() * len(labels)
        self.count += len(labels)
        self.cm += torch.bincount(labels * self.n + logits.argmax(1), minlength=self.n ** 2)

    def fold_into(self, partial: EpochSums) -> None:
        partial.loss += float(self.loss)
        partial.count += self.count
        partial.cm = partial.cm + self.cm.view(partial.cm.shape).cpu().numpy()
        partial.seconds += time.perf_counter() - self.start


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


def resolve_optimization(cfg: TrainConfig) -> dict[str, Any]:
    """The lr and the backbone's share of it a config leaves to defaults, written back so
    config.yaml says what ran: pretrained backbone layers learn at lr x 0.01 (optim.py)."""
    scale = cfg.backbone_lr_scale
    if scale is None:
        scale = PRETRAINED_BACKBONE_LR_SCALE if cfg.pretrained or cfg.weights else 1.0
    return {"lr": OPTIMIZER_CHOICES.get(cfg.optimizer).lr if cfg.lr is None else cfg.lr,
            "backbone_lr_scale": scale}


class Trainer:
    """`Trainer(cfg).fit()` trains and returns the run folder; `callbacks` run after the
    built-in ones (train/callbacks.py)."""

    def __init__(self, cfg: TrainConfig, reporter: Reporter | None = None,
                 resume: Path | None = None, callbacks: list[Callback] | None = None) -> None:
        self.reporter = reporter or Reporter()
        self.resume_ckpt, self.resume_note = None, None
        if resume is not None:
            self.resume_ckpt, self.resume_note = resume_checkpoint(resume)
            cfg = TrainConfig.from_dict(self.resume_ckpt["config"])
        self.cfg = cfg
        self.user_callbacks = list(callbacks or [])
        self.callbacks: list[Callback] = []
        self.run_dir: Path | None = None
        self.metrics: dict[str, Any] = {}
        self.should_stop = False   # a callback's request to end after this epoch
        self.interrupted = False   # Ctrl-C: stop at the next batch, saving last.pt
        self.augment_state: torch.Tensor | None = None  # the epoch's augmentation rng
        self.best_state: dict[str, torch.Tensor] | None = None
        self.state = TrainState()

    # ---- set-up: one builder per part ------------------------------------------------------
    def setup(self, resume_dir: Path | None = None) -> None:
        self.cfg = cfg = self.resolve_config()
        self.dist = DistContext.from_env()
        seed_everything(cfg.seed)
        self.info = model_info(cfg.model)
        self.img_size = cfg.img_size or self.info.img_size
        self.data = self.build_data()
        self.model = self.build_model()
        self.objective = build_objective(cfg, self.model)
        self.params = count_parameters(self.model)
        self.device = select_device(cfg.device, self.dist.local_rank)
        self.rt = Runtime.create(self.device, self.info.mean, self.info.std, cfg.amp)
        self.model.to(self.device, memory_format=torch.channels_last
                      if self.rt.channels_last else torch.preserve_format)
        self.augment = build_augmentation(cfg.augment)
        self.train_loader, self.val_loader = self.build_loaders()
        self.build_optimization()
        self.net = self.wrap_distributed(self.objective)
        self.callbacks = default_callbacks(cfg.patience) + self.user_callbacks
        self.start_or_restore(resume_dir)

    def resolve_config(self) -> TrainConfig:
        """Defaults filled in here land in config.yaml and the checkpoint, so resume keeps them."""
        cfg = self.cfg
        return dataclasses.replace(cfg, **resolve_objective(cfg), **resolve_optimization(cfg))

    def build_data(self) -> Dataset:
        """Rank 0 fills the image cache first; the other ranks then read it."""
        cfg = self.cfg

        def load() -> Dataset:
            with self.reporter.task("caching images", 0) as advance:
                return load_dataset(cfg.data, self.img_size, self.info.in_chans,
                                    val_split=cfg.val_split, seed=cfg.seed,
                                    progress=lambda total: advance)

        data = load() if self.dist.is_main else None
        self.dist.barrier()
        return data if data is not None else load()

    def build_model(self) -> Classifier:
        return build_model(self.cfg, len(self.data.classes), self.reporter)

    def build_loaders(self) -> tuple[BatchLoader, BatchLoader]:
        cfg, dist = self.cfg, self.dist
        shards = {"seed": cfg.seed, "rank": dist.rank, "world": dist.world}
        if self.objective.per_person:
            train = PKBatchLoader(self.data.train, cfg.batch_size, self.objective.per_person,
                                  **shards)
        else:
            train = BatchLoader(self.data.train, cfg.batch_size, shuffle=True, **shards)
        val = BatchLoader(self.data.val, cfg.batch_size * 2, shuffle=False, rank=dist.rank,
                          world=dist.world)
        return train, val

    def build_optimization(self) -> None:
        """The optimizer (the backbone at its share of the lr), schedule, AMP scaler, clip."""
        cfg = self.cfg
        if not any(p.requires_grad for p in self.model.parameters()):
            raise FacecnnError(f"--freeze {cfg.freeze} leaves nothing to train")
        self.optimizer = build_optimizer(cfg.optimizer,
                                         param_groups(self.model, cfg.backbone_lr_scale),
                                         cfg.lr, cfg.weight_decay)
        self.scheduler = build_scheduler(cfg.schedule, self.optimizer, cfg.epochs,
                                         len(self.train_loader), step_size=cfg.step_size,
                                         gamma=cfg.gamma)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.rt.amp_dtype == torch.float16)
        self.clip = cfg.clip_grad or OPTIMIZER_CHOICES.get(cfg.optimizer).clip

    def wrap_distributed(self, module: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return module
        # channels-last 1-channel convs have ambiguous strides: harmless, but DDP warns
        warnings.filterwarnings("ignore", message="Grad strides do not match")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def start_or_restore(self, resume_dir: Path | None) -> None:
        """A resumed run continues its folder; a new one imprints its head and gets one."""
        if self.resume_ckpt is not None:
            self.run_dir = resume_dir
            self._restore(self.resume_ckpt)
            if self.dist.is_main:  # what a killed run left half-written; results.csv as
                for folder in (self.run_dir, self.run_dir / "weights"):  # the checkpoint says
                    remove_stale_temps(folder)
                write_results_csv(self.state.history, self.run_dir / "results.csv")
            return
        self.objective.start(((self.rt.from_uint8(images), labels.to(self.device))
                              for images, labels in self.train_loader.batches(0)),
                             self.dist.all_sum)
        run_dir = new_run_dir(self.cfg.project, "train", self.cfg.name) \
            if self.dist.is_main else None
        self.run_dir = Path(self.dist.broadcast(str(run_dir) if run_dir else ""))
        if self.dist.is_main:
            self.cfg.save(self.run_dir / "config.yaml")
            record_split(self.run_dir, self.data)  # evaluate/ensemble leave these out

    def _restore(self, ckpt: dict[str, Any]) -> None:
        """last.pt continues exactly; best.pt (no optimizer state) from its epoch's end."""
        self.model.load_state_dict(ckpt["model"])
        s = ckpt["state"]
        partial = EpochSums(**{**s["partial"], "cm": s["partial"]["cm"].numpy()})
        self.state = TrainState(s["epoch"], s["batch"], partial, s["history"],
                                s["best_loss"], s["best_epoch"], s["bad_epochs"])
        self.best_state = best_weights(self.run_dir)
        if "optimizer" not in ckpt:
            with warnings.catch_warnings():  # no optimizer step to pair these with
                warnings.simplefilter("ignore")
                for _ in range(self.state.epoch * len(self.train_loader)):
                    self.scheduler.step()
            return
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self._resume_rng = ckpt["rng"]

    # ---- checkpoints --------------------------------------------------------------------
    def checkpoint(self, aug_rng: torch.Tensor | None) -> dict[str, Any]:
        """Everything an exact resume needs (weights/last.pt) but the best weights, which
        model.safetensors holds."""
        return {"model": self.model.state_dict(), **self.progress(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": {**rng_state(), "augment": aug_rng}}

    def save_best(self) -> None:
        """The best weights so far (model.safetensors, what inference loads), then the
        progress they were reached at (weights/best.pt): each kept once on disk."""
        save_inference_model(self.model, self.inference_meta(), self.run_dir / MODEL_FILE)
        save_atomic(self.progress(), self.run_dir / "weights" / "best.pt")

    def progress(self) -> dict[str, Any]:
        """Where training stands: epoch, history, the best so far (weights/best.pt)."""
        s = self.state
        return {"state": {"epoch": s.epoch, "batch": s.batch, "partial": s.partial.state(),
                          "history": s.history, "best_loss": s.best_loss,
                          "best_epoch": s.best_epoch, "bad_epochs": s.bad_epochs},
                "classes": self.data.classes, "config": self.cfg.to_dict(),
                "img_size": self.img_size}

    # ---- the loop -----------------------------------------------------------------------
    def fit(self, resume_dir: Path | None = None) -> Path:
        """Train to the end (or an early stop) and return the run folder."""
        self.setup(resume_dir)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self._emit("on_fit_start")
            self._log_start()
            while self.state.epoch < self.cfg.epochs and not self.should_stop:
                self._train_epoch()
                self._end_epoch()
            self.metrics = self._finish()
        except BaseException:
            self._emit("on_interrupt")
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        self._emit("on_fit_end", self.metrics)
        self.dist.close()
        return self.run_dir

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def log(self, message: str) -> None:
        """Print through the reporter; the `facecnn.train` logger (train.log) keeps it."""
        self.reporter.log(message)
        log.info(message)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def _stop_requested(self) -> bool:
        """Every rank must stop at the same batch, so the flag is agreed on collectively."""
        if not self.dist.enabled:
            return self.interrupted
        flag = torch.tensor([float(self.interrupted)], device=self.device
                            if self.device.type == "cuda" else "cpu")
        self.interrupted = bool(self.dist.all_sum(flag).item() > 0)
        return self.interrupted

    def _log_start(self) -> None:
        p, d, cfg = self.params, self.data, self.cfg
        if self.resume_note:
            self.log(self.resume_note)
        backbone = (f" (backbone x {cfg.backbone_lr_scale:g})"
                    if cfg.backbone_lr_scale != 1 else "")
        self.log(f"{cfg.model}: {p['trainable']:,} trainable / {p['frozen']:,} frozen "
                 f"parameters; {len(d.train)} train, {len(d.val)} val images, "
                 f"{len(d.classes)} classes; objective {describe(cfg)}; {cfg.optimizer} lr "
                 f"{cfg.lr:g}{backbone}; device {self.device}"
                 + (f", {self.dist.world} ranks" if self.dist.enabled else ""))
        if d.skipped:
            self.log(f"skipped {len(d.skipped)} unreadable files (listed in report.md)")
        mismatch = cfg.pretrained and crop_mismatch(cfg.model, Path(d.source))
        if mismatch:
            self.log(f"warning: {mismatch}")

    def _epoch_generator(self) -> torch.Generator:
        """The epoch's random streams: drawn from (seed, epoch), or as Ctrl-C left them."""
        s, cfg = self.state, self.cfg
        generator = torch.Generator()
        if s.batch == 0:
            torch.manual_seed(cfg.seed * 100_003 + s.epoch)
            generator.manual_seed(cfg.seed * 100_019 + s.epoch * 997 + self.dist.rank)
            n = len(self.data.classes)
            s.partial = EpochSums(cm=np.zeros((n, n), dtype=np.int64))
        else:
            set_rng_state(self._resume_rng)
            generator.set_state(self._resume_rng["augment"])
        return generator

    def _train_epoch(self) -> None:
        s = self.state
        generator = self._epoch_generator()
        self.net.train()
        keep_frozen_bn_eval(self.net)
        tally = Tally(len(self.data.classes), self.device)
        total = len(self.train_loader)
        with self.reporter.task(f"epoch {s.epoch + 1}/{self.cfg.epochs}",
                                total - s.batch) as advance:
            for images, labels in self.train_loader.batches(s.epoch, start=s.batch):
                x = self.rt.normalize(self.augment(images.to(self.device), generator))
                y = labels.to(self.device)
                with self.rt.autocast():
                    loss, logits = self.net(x, y)
                self._step(loss)
                tally.add(loss, y, logits)
                s.batch += 1
                advance(1)
                if self._stop_requested():
                    tally.fold_into(s.partial)
                    self.augment_state = generator.get_state()
                    raise Interrupted(resume_hint(self.run_dir), self.run_dir)
        tally.fold_into(s.partial)

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

    def _end_epoch(self) -> None:
        """Validate, count the epoch, keep the best weights; the callbacks write the files."""
        s = self.state
        row = self._epoch_row()
        s.history.append(row)
        s.epoch += 1
        s.batch = 0
        if row["val_loss"] < s.best_loss:
            s.best_loss, s.best_epoch, s.bad_epochs = row["val_loss"], s.epoch, 0
            self.best_state = copy.deepcopy({k: v.detach().cpu()
                                             for k, v in self.model.state_dict().items()})
        else:
            s.bad_epochs += 1
        self._emit("on_epoch_end", row)
        if self._stop_requested():
            raise Interrupted(resume_hint(self.run_dir), self.run_dir)

    def _epoch_row(self) -> dict[str, float]:
        p = self.state.partial
        sums = self.dist.all_sum(torch.tensor([p.loss, p.count], dtype=torch.float64))
        train_acc, train_f1 = accuracy_f1(self.dist.all_sum(torch.from_numpy(p.cm)).numpy())
        val = evaluate(self.net, self.val_loader, self.rt, len(self.data.classes), self.dist)
        val_acc, val_f1 = accuracy_f1(val.cm)
        return {"epoch": self.state.epoch + 1, "train_loss": float(sums[0] / max(sums[1], 1)),
                "train_acc": train_acc, "train_f1": train_f1, "val_loss": val.loss,
                "val_acc": val_acc, "val_f1": val_f1,
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(p.seconds, 3)}

    # ---- the end ------------------------------------------------------------------------
    def inference_meta(self) -> dict[str, Any]:
        """What using the model needs, the face crop of its data included (a folder that
        `prepare` wrote says its layout), so recognizing cuts faces as it was trained on."""
        info = self.info
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
        metrics = write_train_outputs(self.run_dir, history=self.state.history, val_cm=val.cm,
                                      test_cm=test.cm if test else None,
                                      classes=self.data.classes,
                                      metrics=self._metrics(val.loss, model_file))
        self.log(f"val accuracy {metrics['val']['accuracy']:.4f}"
                 + (f", test accuracy {metrics['test']['accuracy']:.4f}" if test else "")
                 + f"; results in {self.run_dir}")
        return metrics

    def _metrics(self, val_loss: float, model_file: Path) -> dict[str, Any]:
        s, cfg, d = self.state, self.cfg, self.data
        backbone = (f", backbone lr x {cfg.backbone_lr_scale:g}"
                    if cfg.backbone_lr_scale != 1 else "")
        return {
            "overview": {"model": cfg.model, "data": d.source, "classes": len(d.classes),
                         "images": f"{len(d.train)} train, {len(d.val)} val"
                         + (f", {len(d.test)} test" if d.test else ""),
                         "epochs run": len(s.history), "best epoch (val loss)": s.best_epoch,
                         "objective": describe(cfg),
                         "optimizer": f"{cfg.optimizer} lr {cfg.lr:g}{backbone}",
                         "schedule": cfg.schedule, "augmentation": cfg.augment,
                         "freeze": cfg.freeze, "device": str(self.device)},
            "final": s.history[-1] if s.history else {},
            "best": {"epoch": s.best_epoch, "val_loss": val_loss},
            "parameters": self.params,
            "model_file_mb": round(model_file.stat().st_size / 2**20, 3),
            "run_mb": round(sum(f.stat().st_size for f in (
                model_file, *(self.run_dir / "weights").glob("*.pt"))) / 2**20, 3),
            "latency_ms": round(latency_ms(self.model, self.rt, self.info.in_chans,
                                           self.img_size), 3),
            "classes": d.classes, "skipped": d.skipped, "environment": environment(),
        }


def resume_hint(run_dir: Path) -> str:
    return (f"saved {run_dir}/weights/last.pt; continue with "
            f"`facecnn train --resume {run_dir}`")
