"""Models: ResNet9 (Maini et al.'s fast CIFAR ResNet), a small CNN and an MLP, width-parametrised.

Every model's ``forward(x, idx=None)`` takes the examples' positions in the training set, which
example-tied dropout needs; other models ignore it.  Channel-dropout variants are inserted at fixed
*sites* through a factory ``channel_dropout(channels, site) -> nn.Module`` (see :mod:`memlib.dropout`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

DropoutFactory = Callable[[int, int], nn.Module]


class Identity(nn.Module):
    def forward(self, x, idx=None):
        return x


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Sequential:
    """Convolution (no bias), batch norm, ReLU."""
    padding = k // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = conv_bn(c, c)
        self.b = conv_bn(c, c)

    def forward(self, x):
        return x + self.b(self.a(x))


class ResNet9(nn.Module):
    """ResNet-9 as in Maini et al. (2023): ~2.27 M parameters at ``width=64`` on 3-channel input.

    Layer groups (for per-layer probes, in order): conv1, conv2, res1.a, res1.b, conv3, res2.a, res2.b,
    conv4, fc.  Channel-dropout sites sit after conv1, conv2, res1, conv3, res2 and conv4.
    """

    LAYER_GROUPS = ("conv1", "conv2", "res1.a", "res1.b", "conv3", "res2.a", "res2.b", "conv4", "fc")

    def __init__(self, width: int = 64, in_channels: int = 3, num_classes: int = 10,
                 channel_dropout: DropoutFactory | None = None, scale: float = 0.2):
        super().__init__()
        w = width
        mk = channel_dropout or (lambda c, site: Identity())
        self.conv1 = conv_bn(in_channels, w, k=3)
        self.drop1 = mk(w, 0)
        self.conv2 = conv_bn(w, 2 * w, k=5, stride=2, padding=2)
        self.drop2 = mk(2 * w, 1)
        self.res1 = Residual(2 * w)
        self.drop3 = mk(2 * w, 2)
        self.conv3 = nn.Sequential(conv_bn(2 * w, 4 * w, k=3), nn.MaxPool2d(2))
        self.drop4 = mk(4 * w, 3)
        self.res2 = Residual(4 * w)
        self.drop5 = mk(4 * w, 4)
        self.conv4 = conv_bn(4 * w, 2 * w, k=3, padding=0)
        self.drop6 = mk(2 * w, 5)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes, bias=False)
        self.scale = scale

    def forward(self, x, idx=None):
        x = self.drop1(self.conv1(x), idx)
        x = self.drop2(self.conv2(x), idx)
        x = self.drop3(self.res1(x), idx)
        x = self.drop4(self.conv3(x), idx)
        x = self.drop5(self.res2(x), idx)
        x = self.drop6(self.conv4(x), idx)
        x = self.pool(x).flatten(1)
        return self.fc(x) * self.scale


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head; channel-dropout sites after each conv block."""

    LAYER_GROUPS = ("conv1", "conv2", "fc")

    def __init__(self, width: int = 16, in_channels: int = 1, num_classes: int = 10,
                 channel_dropout: DropoutFactory | None = None):
        super().__init__()
        mk = channel_dropout or (lambda c, site: Identity())
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(2))
        self.drop1 = mk(width, 0)
        self.conv2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.AdaptiveAvgPool2d(4))
        self.drop2 = mk(2 * width, 1)
        self.fc = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x, idx=None):
        x = self.drop1(self.conv1(x), idx)
        x = self.drop2(self.conv2(x), idx)
        return self.fc(x.flatten(1))


class MLP(nn.Module):
    """One hidden layer of ``width`` units (the cheapest model; used for many small trainings)."""

    LAYER_GROUPS = ("fc1", "fc2")

    def __init__(self, width: int = 128, in_features: int = 784, num_classes: int = 10,
                 channel_dropout: DropoutFactory | None = None):
        super().__init__()
        mk = channel_dropout or (lambda c, site: Identity())
        self.fc1 = nn.Linear(in_features, width)
        self.drop1 = mk(width, 0)
        self.fc2 = nn.Linear(width, num_classes)

    def forward(self, x, idx=None):
        h = torch.relu(self.fc1(x.flatten(1)))
        h = self.drop1(h, idx)
        return self.fc2(h)


def build_model(name: str, width: int, image_shape: tuple[int, int, int], num_classes: int,
                channel_dropout: DropoutFactory | None = None) -> nn.Module:
    c, h, w = image_shape
    if name == "resnet9":
        return ResNet9(width, c, num_classes, channel_dropout)
    if name == "smallcnn":
        return SmallCNN(width, c, num_classes, channel_dropout)
    if name == "mlp":
        return MLP(width, c * h * w, num_classes, channel_dropout)
    raise ValueError(f"unknown model {name!r}; choose one of: resnet9, smallcnn, mlp")


def layer_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Parameters grouped by the model's declared layer groups (in forward order)."""
    groups: dict[str, list] = {g: [] for g in getattr(model, "LAYER_GROUPS", ())}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for g in groups:
            if name == g or name.startswith(g + "."):
                groups[g].append((name, p))
                break
        else:
            groups.setdefault(name.rsplit(".", 1)[0], []).append((name, p))
    return {g: ps for g, ps in groups.items() if ps}
