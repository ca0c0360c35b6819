"""Embedding objectives: the ArcFace and batch-hard triplet losses, the P x K sampler, exact
resume, and real runs through the CLI used as face embedders on held-out AT&T photos."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from facecnn.choices.objectives import OBJECTIVE_CHOICES
from facecnn.config import TrainConfig
from facecnn.data.datasets import ImageSet
from facecnn.errors import FacecnnError, Interrupted
from facecnn.inference.pytorch import load_inference_model
from facecnn.models.classifier import Classifier
from facecnn.train.checkpoint import load_checkpoint
from facecnn.train.loader import PKBatchLoader
from facecnn.train.objectives import (
    ArcFace,
    arcface_logits,
    batch_hard_triplet_loss,
    cosine_similarity,
    hardest_pairs,
    resolve_objective,
)
from facecnn.train.trainer import Trainer
from helpers import invoke_cli, write_photos

PEOPLE = [f"s{i}" for i in range(1, 9)]


# ---- ArcFace ----------------------------------------------------------------------------
def test_arcface_without_margin_is_cross_entropy_on_scaled_cosines() -> None:
    torch.manual_seed(0)
    features, centres = torch.randn(6, 5), torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    cosine = cosine_similarity(features, centres)
    expected = F.normalize(features) @ F.normalize(centres).T
    assert torch.allclose(cosine, expected, atol=1e-6)
    logits = arcface_logits(cosine, labels, margin=0.0, scale=30.0)
    assert torch.equal(logits, 30.0 * cosine)
    assert torch.equal(F.cross_entropy(logits, labels), F.cross_entropy(30.0 * cosine, labels))


def test_arcface_margin_lowers_only_the_target_logit() -> None:
    m, s = 0.5, 64.0
    cosine = torch.tensor([[0.8, 0.1, -0.3], [0.2, 0.9, 0.0], [-0.5, 0.4, -0.95]])
    labels = torch.tensor([0, 1, 2])
    logits = arcface_logits(cosine, labels, m, s)
    target = torch.zeros_like(cosine, dtype=torch.bool)
    target[torch.arange(3), labels] = True
    assert torch.equal(logits[~target], s * cosine[~target])
    assert (logits[target] < s * cosine[target]).all()
    # cos(theta + m) where theta + m < pi; past that, the cosine-margin fallback
    assert logits[0, 0].item() == pytest.approx(s * math.cos(math.acos(0.8) + m), rel=1e-5)
    assert logits[2, 2].item() == pytest.approx(s * (-0.95 - m * math.sin(m)), rel=1e-5)


def test_arcface_gradient_reaches_backbone_and_centres_but_not_the_bias() -> None:
    torch.manual_seed(0)
    model = Classifier(nn.Sequential(nn.Linear(8, 6), nn.ReLU()), nn.Sequential(nn.Linear(6, 3)))
    objective = ArcFace(model, margin=0.5, scale=30.0)
    x, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    loss, logits = objective(x, labels)
    loss.backward()
    assert torch.allclose(logits, objective(x), atol=1e-6)  # metrics see the plain cosines
    for p in (model.backbone[0].weight, model.classifier.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert not model.classifier.bias.requires_grad and model.classifier.bias.abs().sum() == 0
    # a face exactly on its centre (cos = 1) still has a finite gradient
    cosine = torch.tensor([[1.0, 0.0]], requires_grad=True)
    F.cross_entropy(arcface_logits(cosine, torch.tensor([0]), 0.5, 30.0),
                    torch.tensor([0])).backward()
    assert torch.isfinite(cosine.grad).all()


def test_arcface_centres_start_at_each_class_mean_direction() -> None:
    torch.manual_seed(0)
    model = Classifier(nn.Sequential(nn.Linear(4, 4)), nn.Sequential(nn.Linear(4, 3)))
    objective = ArcFace(model, margin=0.5, scale=30.0)
    x = torch.randn(12, 4)
    labels = torch.tensor([0, 1] * 6)  # class 2 has no images: its centre stays as it was
    untouched = model.classifier.weight[2].clone()
    objective.start([(x[:5], labels[:5]), (x[5:], labels[5:])], lambda t: t)
    with torch.no_grad():
        unit = F.normalize(model.features(x))
    for c in (0, 1):
        expected = F.normalize(unit[labels == c].sum(0), dim=0)
        assert torch.allclose(model.classifier.weight[c], expected, atol=1e-6)
    assert torch.equal(model.classifier.weight[2], untouched)
    assert model.training


def test_softmax_head_on_pretrained_features_starts_imprinted() -> None:
    """Clusters that point much the same way (as dlib's embeddings do): the imprinted head
    already names every training point, with confident logits, before any step."""
    torch.manual_seed(0)
    centres = F.normalize(torch.tensor([[5.0, 1, 0, 0], [5.0, 0, 1, 0], [5.0, 0, 0, 1]]))
    labels = torch.arange(3).repeat_interleave(10)
    x = centres[labels] + 0.03 * torch.randn(30, 4)
    model = Classifier(nn.Identity(), nn.Sequential(nn.Linear(4, 3)))
    objective = OBJECTIVE_CHOICES["softmax"](model, 0.0, True)
    objective.start([(x, labels)], lambda t: t)
    logits = objective(x)
    assert torch.equal(logits.argmax(1), labels)
    own = logits.gather(1, labels[:, None]).mean()
    assert 5.0 < own < 20.0 and F.cross_entropy(logits, labels) < 0.1
    plain = OBJECTIVE_CHOICES["softmax"](Classifier(nn.Identity(), nn.Sequential(nn.Linear(4, 3))))
    before = plain.model.classifier.weight.clone()
    plain.start([(x, labels)], lambda t: t)  # without pretrained features: left as built
    assert torch.equal(plain.model.classifier.weight, before)


# ---- batch-hard triplet -----------------------------------------------------------------
def _on_circle(degrees: list[float]) -> torch.Tensor:
    radians = torch.tensor(degrees) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1)


def test_batch_hard_picks_the_farthest_positive_and_nearest_negative() -> None:
    """Unit vectors at known angles: person 0 at 0, 10, 60 degrees; person 1 at 70, 180."""
    degrees = [0.0, 10.0, 60.0, 70.0, 180.0]
    labels = torch.tensor([0, 0, 0, 1, 1])
    unit = _on_circle(degrees)
    distances = torch.cdist(unit, unit)
    farthest, nearest, valid = hardest_pairs(distances, labels)
    assert farthest.tolist() == [2, 2, 0, 4, 3]
    assert nearest.tolist() == [3, 3, 3, 2, 2]
    assert valid.all()

    def chord(a: float, b: float) -> float:  # distance of unit vectors `a - b` degrees apart
        return 2 * math.sin(math.radians(abs(a - b)) / 2)

    margin = 0.2
    hinges = [max(0.0, chord(degrees[a], degrees[p]) - chord(degrees[a], degrees[n]) + margin)
              for a, (p, n) in enumerate(zip(farthest.tolist(), nearest.tolist()))]
    loss = batch_hard_triplet_loss(3 * unit, labels, margin)  # lengths do not matter
    assert loss.item() == pytest.approx(sum(hinges) / 5, rel=1e-5)


def test_batch_hard_skips_anchors_without_a_positive() -> None:
    labels = torch.tensor([0, 0, 1])
    unit = _on_circle([0.0, 90.0, 45.0])
    _, _, valid = hardest_pairs(torch.cdist(unit, unit), labels)
    assert valid.tolist() == [True, True, False]
    features = unit.clone().requires_grad_(True)
    loss = batch_hard_triplet_loss(features, labels, 0.2)
    # both anchors: positive 90 degrees away, negative 45: hinge = chord(90) - chord(45) + 0.2
    assert loss.item() == pytest.approx(2 * math.sin(math.pi / 4) - 2 * math.sin(math.pi / 8)
                                        + 0.2, rel=1e-5)
    loss.backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_pk_batches_are_people_times_images_and_fixed_by_seed_and_epoch() -> None:
    counts = [6, 6, 6, 6, 2]  # the last person has fewer images than K
    labels = np.repeat(np.arange(len(counts)), counts)
    data = ImageSet(np.zeros((len(labels), 2, 2, 1), np.uint8), np.arange(len(labels)), labels,
                    [str(i) for i in range(len(labels))])
    loader = PKBatchLoader(data, batch_size=8, per_person=4, seed=3)
    batches = loader._index_batches(0)
    assert len(loader) == len(batches) == math.ceil(len(labels) / 8)
    for idx in batches:
        people, images = np.unique(labels[idx], return_counts=True)
        assert len(people) == 2 and (images == 4).all()
        for person in people:  # without replacement whenever the person has enough images
            assert len(set(idx[labels[idx] == person])) == min(4, counts[person])
    same = [np.array_equal(a, b) for a, b in zip(batches, loader._index_batches(0))]
    assert all(same)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, loader._index_batches(1)))
    tail = [y for _, y in loader.batches(0, start=2)]
    assert [y.tolist() for y in tail] == [labels[idx].tolist() for idx in batches[2:]]
    shards = [PKBatchLoader(data, 8, 4, seed=3, rank=r, world=2)._index_batches(0)
              for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) >= 1


# ---- choices and errors -----------------------------------------------------------------
def test_help_lists_every_objective(tmp_path: Path) -> None:
    result = invoke_cli("train", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert all(f"{name} (" in help_text for name in OBJECTIVE_CHOICES)


def test_defaults_are_filled_in() -> None:
    assert resolve_objective(TrainConfig(data="x")) == {"margin": None, "scale": None}
    assert resolve_objective(TrainConfig(data="x", objective="arcface")) == {
        "margin": 0.5, "scale": 30.0}
    assert resolve_objective(TrainConfig(data="x", objective="triplet", margin=0.3)) == {
        "margin": 0.3, "scale": None}


@pytest.mark.parametrize("values, message", [
    ({"objective": "arcface", "scale": 0.0}, "--scale > 0"),
    ({"objective": "arcface", "margin": 2.0}, "0 <= --margin < 1.5708"),
    ({"objective": "triplet", "margin": 0.0}, "0 < --margin <= 2"),
    ({"objective": "triplet", "scale": 16.0}, "--scale is for --objective arcface"),
    ({"objective": "triplet", "batch_size": 4}, "--batch-size of at least 8"),
])
def test_bad_values_are_refused(values: dict, message: str) -> None:
    with pytest.raises(FacecnnError, match=re.escape(message)):
        resolve_objective(TrainConfig(data="x", **values))


@pytest.mark.parametrize("args, expected", [
    (["--objective", "nonsense"], "unknown objective 'nonsense'; choose one of: softmax, "
                                  "arcface, triplet"),
    (["--margin", "0.3"], "--margin is for --objective arcface or triplet, not softmax"),
])
def test_bad_objective_is_one_line_exit_2(tmp_path: Path, args: list[str],
                                          expected: str) -> None:
    result = invoke_cli("train", "digits", *args, "--no-amp", "--quiet", "--project",
                        str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {expected}"
    assert not (tmp_path / "train").exists()


# ---- exact resume -----------------------------------------------------------------------
def _digits(tmp_path: Path, name: str, objective: str) -> TrainConfig:
    extra = {"scale": 16.0} if objective == "arcface" else {}
    return TrainConfig(data="digits", model="seed_mnist_cnn", epochs=3, batch_size=16,
                       objective=objective, margin=0.3, seed=5, amp=False,
                       project=str(tmp_path), name=name, quiet=True, **extra)


@pytest.mark.e2e
@pytest.mark.parametrize("objective", ["arcface", "triplet"])
def test_interrupted_run_resumes_exactly(tmp_path: Path, objective: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped mid-epoch as Ctrl-C stops it, then resumed: same losses, same weights, and
    margin and scale come back from the checkpoint."""
    full = Trainer(_digits(tmp_path, "full", objective))
    full.fit()
    checks = iter(range(10**6))
    monkeypatch.setattr(Trainer, "_stop_requested", lambda self: next(checks) == 100)
    with pytest.raises(Interrupted) as stopped:
        Trainer(_digits(tmp_path, "cut", objective)).fit()
    monkeypatch.undo()
    cut = stopped.value.run_dir
    assert load_checkpoint(cut / "weights" / "last.pt")["state"]["epoch"] == 1  # mid-epoch 2
    resumed = Trainer(None, resume=cut)
    resumed.fit(cut)
    assert (resumed.cfg.margin, resumed.cfg.scale) == (full.cfg.margin, full.cfg.scale)
    assert full.cfg.margin == 0.3
    keys = ("train_loss", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in resumed.state.history] == \
        [[r[k] for k in keys] for r in full.state.history]
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(),
                                                 resumed.model.state_dict().values()))


# ---- end to end: a run as a face embedder -----------------------------------------------
@pytest.fixture(scope="module")
def faces8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 people: photos 1-6 (enrolled, and their 64 px crops to train on) and 7-10 (held out
    from both)."""
    work = tmp_path_factory.mktemp("objectives")
    write_photos(work / "enroll", PEOPLE, range(1, 7))
    write_photos(work / "held_out", PEOPLE, range(7, 11))
    prepared = invoke_cli("prepare", str(work / "enroll"), str(work / "crops"), "--size", "64",
                          "--quiet", cwd=work)
    assert prepared.returncode == 0, prepared.stderr
    return work


@pytest.mark.e2e
@pytest.mark.parametrize("objective", ["arcface", "triplet"])
def test_trained_embedding_names_held_out_photos(faces8: Path, objective: str) -> None:
    work, name = faces8, f"{objective}8"
    trained = invoke_cli("train", str(work / "crops"), "--model", "seed_face_cnn3", "--img-size",
                         "64", "--epochs", "6", "--batch-size", "16", "--objective", objective,
                         "--no-amp", "--quiet", "--project", str(work / "runs"), "--name", name,
                         cwd=work)
    assert trained.returncode == 0, trained.stderr
    run = work / "runs" / "train" / name
    config = yaml.safe_load((run / "config.yaml").read_text())
    defaults = {"arcface": (0.5, 30.0), "triplet": (0.2, None)}[objective]
    assert (config["objective"], config["margin"], config["scale"]) == (objective, *defaults)
    assert f"**objective**: {objective} (margin" in (run / "report.md").read_text()
    with (run / "results.csv").open() as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert losses[-1] < 0.7 * losses[0]

    db = work / f"{name}.db"
    enrolled = invoke_cli("enroll", str(work / "enroll"), "--gallery", str(db), "--embedder",
                          f"run:{run}", "--quiet", cwd=work)
    assert enrolled.returncode == 0, enrolled.stderr
    # threshold 2 (the largest distance of unit vectors): always the nearest enrolled person
    result = invoke_cli("recognize", str(work / "held_out"), "--gallery", str(db), "--threshold",
                        "2", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    named = sum(bool(r["faces"]) and r["faces"][0]["name"] == Path(r["file"]).parent.name
                for r in records)
    assert len(records) == 32
    assert named >= 24  # measured 29-30 of 32; chance is 4

    model, _ = load_inference_model(run)  # what predict, evaluate and export load
    if objective == "arcface":  # unit class centres and no bias: Linear's arg-max = cosine's
        norms = model.classifier.weight.norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
        assert model.classifier.bias.abs().sum() == 0
