"""MTCNN's networks in PyTorch: on a CUDA GPU, and on the CPU in a process that has PyTorch
loaded anyway (elsewhere onnxruntime runs them: models/mtcnn_nets.py). Same inputs and
outputs as there: numpy in, numpy out."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facecnn.models.mtcnn_nets import MEAN, SCALE, SPECS, NetSpec


class MTCNNNet(nn.Module):
    """(N, 3, H, W) pixels -> [box offsets, (landmarks,) face probability]. Parameter names
    are those of NetSpec.shapes()."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.crop = spec.crop
        layers: list[nn.Module] = []
        channels = 3
        for filters, kernel, pool in spec.convs:
            layers += [nn.Conv2d(channels, filters, kernel), nn.PReLU(filters)]
            if pool:
                layers.append(nn.MaxPool2d(pool, 2, ceil_mode=True))
            channels = filters
        self.features = nn.Sequential(*layers)
        self.dense: nn.Module | None = None
        if spec.dense:
            self.dense = nn.Sequential(nn.Linear(spec.flat(), spec.dense), nn.PReLU(spec.dense))
            self.heads = nn.ModuleList(nn.Linear(spec.dense, n) for n in spec.heads)
        else:
            self.heads = nn.ModuleList(nn.Conv2d(channels, n, 1) for n in spec.heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # channels last: oneDNN's convolutions and PyTorch's CPU max pooling are faster so
        x = self.features(((x - MEAN) / SCALE).contiguous(memory_format=torch.channels_last))
        if self.dense is not None:  # Keras flattens (N, W, H, C)
            x = self.dense(x.permute(0, 3, 2, 1).flatten(1))
        *regressions, face = (head(x) for head in self.heads)
        return [*regressions, face.softmax(1)[:, 1]]


class TorchNet:
    """A network on a PyTorch device, without TF32 (which would cost the agreement with the
    CPU's scores)."""

    def __init__(self, net: MTCNNNet, device: torch.device) -> None:
        self.net, self.device, self.crop = net, device, net.crop

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            x = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).to(self.device)
            return [out.float().cpu().numpy() for out in self.net(x)]


def torch_nets(weights: dict[str, dict[str, np.ndarray]], device: str) -> tuple[TorchNet, ...]:
    """P-Net, R-Net and O-Net on `device`."""
    from facecnn.runtime import select_device

    where = select_device(device)
    nets = []
    for name, spec in SPECS.items():
        net = MTCNNNet(spec)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in weights[name].items()})
        nets.append(TorchNet(net.eval().to(where), where))
    return tuple(nets)
