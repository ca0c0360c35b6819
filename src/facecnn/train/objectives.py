"""What a run's loss asks of the embedding: softmax, ArcFace or batch-hard triplet.

`softmax` trains the classifier with cross-entropy (the default). `arcface` and `triplet` shape
the penultimate features - the vector `run:` embedders use - so that distances mean identity:

- arcface (Deng et al. 2019): cross-entropy on s * cos(theta + m) for the true class and
  s * cos(theta) for the others, theta being the angle between the L2-normalised feature and
  the L2-normalised row of the final Linear (its bias is zeroed and frozen; its rows start at
  each class's mean feature direction). Validation and training accuracy use the plain
  cosine logits s * cos(theta).
- triplet (Hermans et al. 2017, "batch hard"): per face, its farthest same-person face must be
  nearer than its nearest other-person face by `margin`, on L2-normalised features. Batches are
  P people x K images (`PKBatchLoader`). The final Linear learns by cross-entropy on detached
  features, so the embedding is shaped by the triplet loss alone while predict and evaluate
  still get a trained classifier.

Each objective wraps the model instead of sitting beside it: DDP then synchronises every
parameter the loss touches, and the model itself stays an ordinary `Classifier` that predict,
evaluate, export and `run:` embedders load unchanged. A new objective is a class here and its
entry in objective_choices.py, which `--help` reads without loading torch.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from facecnn.choices.objectives import OBJECTIVE_CHOICES
from facecnn.config import TrainConfig
from facecnn.errors import FacecnnError
from facecnn.models.classifier import Classifier

TRIPLET_PER_PERSON = 4  # K of the P x K batches; P = batch size // K


def cosine_similarity(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(B, C) cosines between features and class centres, in float32 even under autocast:
    bf16 rounds cosines near 1 by up to 0.004, which the scale turns into 0.1 in a logit."""
    with torch.autocast(features.device.type, enabled=False):
        return F.normalize(features.float()) @ F.normalize(centres.float()).T


def arcface_logits(cosine: torch.Tensor, labels: torch.Tensor, margin: float,
                   scale: float) -> torch.Tensor:
    """s * cos(theta + m) at each row's label, s * cos(theta) elsewhere.

    Past theta = pi - m, cos(theta + m) would rise again and reward a worse angle, so there
    the target falls back to a cosine margin, cos(theta) - m * sin(m), which keeps falling
    with theta (insightface's threshold handling, without `easy_margin`). Only a class
    centre almost opposite its faces lands there, as can happen early in training.
    """
    target = cosine.gather(1, labels[:, None])
    # the clamp keeps the gradient of the sine finite where cos theta is +-1
    sine = (1.0 - target.square()).clamp_min(1e-7).sqrt()
    shifted = target * math.cos(margin) - sine * math.sin(margin)
    shifted = torch.where(target > math.cos(math.pi - margin), shifted,
                          target - margin * math.sin(margin))
    return scale * cosine.scatter(1, labels[:, None], shifted)


def hardest_pairs(distances: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor (row): the index of its farthest positive (same label, not itself), of its
    nearest negative, and whether it has both."""
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    farthest = distances.masked_fill(~positive, -math.inf).argmax(1)
    nearest = distances.masked_fill(same, math.inf).argmin(1)
    return farthest, nearest, positive.any(1) & ~same.all(1)


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor,
                            margin: float) -> torch.Tensor:
    """Mean hinge max(0, d(a, hardest p) - d(a, hardest n) + margin) over the anchors that have
    a positive and a negative, with Euclidean distances between L2-normalised features."""
    with torch.autocast(features.device.type, enabled=False):
        unit = F.normalize(features.float())
        # |a - b|^2 = 2 - 2 a.b for unit vectors; the clamp keeps sqrt's gradient finite at 0
        distances = (2.0 - 2.0 * unit @ unit.T).clamp_min(1e-12).sqrt()
    farthest, nearest, valid = hardest_pairs(distances.detach(), labels)
    rows = torch.arange(len(labels), device=labels.device)
    hinge = F.relu(distances[rows, farthest] - distances[rows, nearest] + margin)
    return (hinge * valid).sum() / valid.sum().clamp_min(1)


IMPRINT_LOGIT = 10.0  # an average face's logit for its own class after softmax imprinting


@torch.no_grad()
def imprint(model: Classifier, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
            all_sum: Callable[[torch.Tensor], torch.Tensor], scale: float | None) -> None:
    """Set each row of the final Linear to its class's mean feature direction (Qi et al.
    2018, weight imprinting); a class without training images keeps its row.

    `scale=None` (ArcFace): unit rows of raw features. With a scale (softmax): directions of
    features centred on their overall mean, the bias subtracting that mean's share, and rows
    long enough that an average face scores `scale` for its own class - faces of different
    people point much the same way before centring, which would leave the softmax flat.
    Sums are added across DDP ranks.
    """
    weight, bias = model.classifier.weight, model.classifier.bias
    sums = torch.zeros(weight.shape, dtype=torch.float64)
    counts = torch.zeros(weight.shape[0], dtype=torch.float64)
    total = torch.zeros(weight.shape[1], dtype=torch.float64)
    model.eval()
    for x, labels in batches:
        features = model.features(x).float().double().cpu()
        sums.index_add_(0, labels.cpu(), features if scale else F.normalize(features))
        counts.index_add_(0, labels.cpu(), torch.ones(len(labels), dtype=torch.float64))
        total += features.sum(0)
    model.train()
    sums, counts, total = all_sum(sums), all_sum(counts), all_sum(total)
    seen = counts > 0
    if scale is None:
        weight[seen] = F.normalize(sums[seen]).to(weight)
        return
    centre = total / counts.sum()
    offsets = sums[seen] / counts[seen, None] - centre
    rows = F.normalize(offsets) * scale / offsets.norm(dim=1).mean().clamp_min(1e-12)
    weight[seen] = rows.to(weight)
    if bias is not None:
        bias[seen] = -(rows @ centre).to(bias)


class Softmax(nn.Module):
    """Cross-entropy on the classifier's logits: `forward(x)` -> logits for metrics,
    `forward(x, labels)` -> (loss, logits)."""

    defaults: ClassVar[dict[str, float]] = {}
    per_person: ClassVar[int | None] = None  # images per person in a batch, when it matters

    def __init__(self, model: Classifier, label_smoothing: float = 0.0,
                 imprint_head: bool = False) -> None:
        super().__init__()
        self.model, self.imprint_head = model, imprint_head
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.model(x)
        return logits if labels is None else (self.cross_entropy(logits, labels), logits)

    def start(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              all_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Before the first epoch of a new run (not on resume). A new head on pretrained
        features starts imprinted: a random one learns slowly when the features are small
        (dlib's embedding has a norm near 1: head-only training at Adam's 1e-3 reached 0.59
        on AT&T in 10 epochs)."""
        if self.imprint_head:
            imprint(self.model, batches, all_sum, IMPRINT_LOGIT)

    def finalize(self) -> None:
        """Put the model in the form saved for inference (nothing to do for softmax)."""


class ArcFace(Softmax):
    defaults = {"margin": 0.5, "scale": 30.0}

    def __init__(self, model: Classifier, label_smoothing: float = 0.0,
                 imprint_head: bool = False, *, margin: float, scale: float) -> None:
        super().__init__(model, label_smoothing, imprint_head)
        self.margin, self.scale = margin, scale
        bias = model.classifier.bias
        if bias is not None:  # class centres are directions: the bias has no part in the loss
            nn.init.zeros_(bias)
            bias.requires_grad_(False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        cosine = cosine_similarity(self.model.features(x), self.model.classifier.weight)
        logits = self.scale * cosine
        if labels is None:
            return logits
        margined = arcface_logits(cosine, labels, self.margin, self.scale)
        return self.cross_entropy(margined, labels), logits

    def start(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              all_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Each class centre starts at its people's mean feature direction (weight
        imprinting). From random centres the margin first drags every face of a person
        towards an arbitrary direction, which wrecks a pretrained embedding before the centres
        catch up (docs/objectives.md has the numbers)."""
        imprint(self.model, batches, all_sum, scale=None)

    @torch.no_grad()
    def finalize(self) -> None:
        """Unit-length class centres: the saved plain Linear (zero bias) then computes
        |feature| * cos, whose arg-max - what predict and evaluate report - is the cosine's."""
        weight = self.model.classifier.weight
        weight.copy_(F.normalize(weight))


class Triplet(Softmax):
    defaults = {"margin": 0.2}
    per_person = TRIPLET_PER_PERSON

    def __init__(self, model: Classifier, label_smoothing: float = 0.0,
                 imprint_head: bool = False, *, margin: float) -> None:
        super().__init__(model, label_smoothing, imprint_head)
        self.margin = margin

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        features = self.model.features(x)
        if labels is None:
            return self.model.classifier(features)
        logits = self.model.classifier(features.detach())
        loss = (batch_hard_triplet_loss(features, labels, self.margin)
                + self.cross_entropy(logits, labels))
        return loss, logits


def resolve_objective(cfg: TrainConfig) -> dict[str, float | None]:
    """{margin, scale} for `cfg.objective`, defaults filled in, or one line on what is wrong."""
    cls = OBJECTIVE_CHOICES[cfg.objective]
    values = {"margin": cfg.margin, "scale": cfg.scale}
    for key, value in values.items():
        if value is not None and key not in cls.defaults:
            takers = " or ".join(e.name for e in OBJECTIVE_CHOICES.entries()
                                 if key in OBJECTIVE_CHOICES[e.name].defaults)
            raise FacecnnError(f"--{key} is for --objective {takers}, not {cfg.objective}")
        if key in cls.defaults and value is None:
            values[key] = cls.defaults[key]
    margin, scale = values["margin"], values["scale"]
    if cfg.objective == "arcface" and not (0 <= margin < math.pi / 2 and scale > 0):
        raise FacecnnError(f"arcface needs 0 <= --margin < {math.pi / 2:.4f} (radians) and "
                           f"--scale > 0; got margin {margin}, scale {scale}")
    if cfg.objective == "triplet" and not 0 < margin <= 2:
        raise FacecnnError(f"triplet needs 0 < --margin <= 2 (unit vectors are at most 2 "
                           f"apart); got {margin}")
    if cls.per_person and cfg.batch_size < 2 * cls.per_person:
        raise FacecnnError(f"--objective {cfg.objective} needs --batch-size of at least "
                           f"{2 * cls.per_person} (batches of people x {cls.per_person} images)")
    return values


def build_objective(cfg: TrainConfig, model: Classifier) -> Softmax:
    """The objective of a config whose margin and scale `resolve_objective` filled in."""
    cls = OBJECTIVE_CHOICES[cfg.objective]
    # --pretrained always comes with a new head (a --weights file may bring its own); only a
    # lone Linear is imprinted: new layers before it would move the features it was fitted to
    imprint_head = cfg.pretrained and len(model.head) == 1
    return cls(model, cfg.label_smoothing, imprint_head,
               **{key: getattr(cfg, key) for key in cls.defaults})


def describe(cfg: TrainConfig) -> str:
    """`arcface (margin 0.5, scale 30)`: the objective as report.md and train.log show it."""
    defaults = OBJECTIVE_CHOICES[cfg.objective].defaults
    args = ", ".join(f"{key} {getattr(cfg, key):g}" for key in defaults)
    return f"{cfg.objective} ({args})" if args else cfg.objective
