"""Optimizers build and step by name; schedules reproduce seed B's values and resume exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facecnn.choices.optimizers import OPTIMIZER_CHOICES
from facecnn.choices.schedules import SCHEDULE_CHOICES, schedule_values
from facecnn.errors import FacecnnError
from facecnn.train.optim import build_optimizer
from facecnn.train.schedules import build_scheduler


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(model(x), y)


@pytest.mark.parametrize("name", OPTIMIZER_CHOICES.names())
def test_every_optimizer_takes_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    opt = build_optimizer(name, model.parameters())
    assert opt.param_groups[0]["lr"] == OPTIMIZER_CHOICES.get(name).lr
    before = [p.detach().clone() for p in model.parameters()]
    start = _loss(model, x, y).item()
    for _ in range(3):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert _loss(model, x, y).item() < start


def test_optimizer_options() -> None:
    model = nn.Linear(4, 2)
    model.bias.requires_grad_(False)
    opt = build_optimizer("nesterov", model.parameters(), lr=0.5)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.5, 0.9, True)
    assert group["params"] == [model.weight]  # frozen bias left out
    assert build_optimizer("adamw", model.parameters()).param_groups[0]["weight_decay"] == 0.01
    decayed = build_optimizer("adamw", model.parameters(), weight_decay=0.1)
    assert decayed.param_groups[0]["weight_decay"] == 0.1
    rms = build_optimizer("rmsprop", model.parameters()).param_groups[0]
    assert (rms["alpha"], rms["eps"]) == (0.9, 1e-7)
    assert {e.name: e.value.clip for e in OPTIMIZER_CHOICES.entries()
            if e.value.clip is not None} == {"sgd_clip": 1.0}


def test_unknown_optimizer_and_frozen_model() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(FacecnnError, match="adamw"):
        build_optimizer("lbfgs", model.parameters())
    model.requires_grad_(False)
    with pytest.raises(FacecnnError):
        build_optimizer("adam", model.parameters())


def test_step_schedule_reproduces_seed_b_table() -> None:
    expected = [5e-4] * 4 + [2e-4] * 4 + [1e-4] * 4 + [5e-5] * 4 + [2e-5] * 4 + [1e-5] * 2
    assert schedule_values("step", 5e-4, 22) == pytest.approx(expected, rel=1e-12)


def test_step_schedule_with_step_size() -> None:
    assert schedule_values("step", 1.0, 7, step_size=3, gamma=0.5) == pytest.approx(
        [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    )


def test_rampup_expdecay_reproduces_seed_b() -> None:
    lrs = schedule_values("rampup_expdecay", 5e-5, 30)
    assert lrs[0] == pytest.approx(1e-5, rel=1e-12)
    assert lrs[1] == pytest.approx(1.8e-5, rel=1e-12)
    assert lrs[5] == pytest.approx(5e-5, rel=1e-12)
    assert lrs[6] == pytest.approx(4.2e-5, rel=1e-12)
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)  # decays towards lr_max / 5
    assert max(lrs) == lrs[5]


def _per_step_lrs(name: str, base_lr: float, epochs: int, steps: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = build_scheduler(name, opt, epochs, steps)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_onecycle_peaks_near_30_percent() -> None:
    lrs = _per_step_lrs("onecycle", 0.1, 10, 20)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(0.1, rel=1e-3)
    assert abs(peak / len(lrs) - 0.3) < 0.02
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert lrs[-1] < 0.1 / 1000


def test_cosine_decreases_to_floor() -> None:
    lrs = _per_step_lrs("cosine", 0.1, 5, 10)
    assert lrs[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] >= 0.1 * 0.01


@pytest.mark.parametrize("name", list(SCHEDULE_CHOICES))
def test_scheduler_state_dict_resumes(name: str) -> None:
    epochs, steps, stop = 6, 5, 13

    def fresh() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        return opt, build_scheduler(name, opt, epochs, steps)

    opt, sched = fresh()
    for _ in range(stop):
        opt.step()
        sched.step()
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt.step()
    sched.step()
    expected = opt.param_groups[0]["lr"]

    resumed_opt, resumed = fresh()
    resumed_opt.load_state_dict(opt_state)
    resumed.load_state_dict(sched_state)
    resumed_opt.step()
    resumed.step()
    assert resumed_opt.param_groups[0]["lr"] == expected


def test_constant_schedule() -> None:
    assert schedule_values("constant", 0.3, 3) == [0.3, 0.3, 0.3]


def test_unknown_schedule_raises() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(FacecnnError, match="onecycle"):
        build_scheduler("warmup", opt, 3, 10)
    with pytest.raises(FacecnnError, match="cosine"):
        schedule_values("linear", 0.1, 3)
