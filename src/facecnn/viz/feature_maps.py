"""What each conv layer of a model responds to: one PNG grid of activation maps per layer."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from facecnn.errors import FacecnnError  # noqa: E402
from facecnn.viz.plots import save_figure  # noqa: E402


def named_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's Conv2d layers in registration order; an MLP has none to show."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FacecnnError(f"{type(model).__name__} has no Conv2d layers to visualise")
    return convs


@torch.no_grad()
def _activations(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, first sample's (C, H, W) output) of every conv, in the order they ran."""
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            # copied now: an in-place ReLU right after the conv would overwrite it
            captured.setdefault(name, output[0].detach().to("cpu", torch.float32, copy=True))
        return hook

    handles = [conv.register_forward_hook(capture(name)) for name, conv in named_convs(model)]
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return list(captured.items())


def feature_maps(model: nn.Module, x: torch.Tensor, out_dir: Path,
                 max_channels: int = 64) -> list[Path]:
    """Write `NN_<layer>.png` for each conv that ran on `x` (a normalised (1, C, H, W) input).

    Each map is scaled to its own range, so weak channels are as readable as strong ones.
    Layers with a 1x1 output (squeeze-excitation convs, heads after global pooling) are
    left out: one value per channel draws as a blank square. NN stays the conv's place among
    those that ran, so a gap in the numbers shows where one was left out.
    """
    layers = _activations(model, x)
    width = max(2, len(str(len(layers))))
    paths = []
    for index, (name, act) in enumerate(layers, 1):
        if act.shape[-2:].numel() == 1:
            continue
        shown = act[:max_channels]
        cols = math.ceil(math.sqrt(len(shown)))
        rows = math.ceil(len(shown) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.6),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for channel, (ax, amap) in enumerate(zip(axes.flat, shown)):
            ax.imshow(amap.numpy(), cmap="viridis")
            ax.set_title(str(channel), fontsize=7)
        more = f", first {len(shown)} shown" if len(shown) < len(act) else ""
        fig.suptitle(f"{name}  {tuple(act.shape)}{more}")
        fig.tight_layout()
        file = f"{index:0{width}d}_{name.replace('.', '_')}.png"
        paths.append(save_figure(fig, Path(out_dir) / file))
    return paths
