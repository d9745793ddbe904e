"""A strangers' gallery: small greyscale 1x28x28 classifiers the package does not define, written the way other
people write models. The CLI loads them as ``--arch tests/gallery/architectures.py:build_<name>``; no file saved
from them carries metadata, so the input shape is never stated.

* ``bn_buffers``: BatchNorm, and normalisation buffers (mean/std) inside the network; the classifier head is
  registered *before* the trunk, so registration order is not execution order.
* ``relu_pool``: no BatchNorm; ReLU before max-pool.
* ``parallel``: saved from ``nn.DataParallel`` (every key starts with ``module.``); GroupNorm.
* ``torchvision``: torchvision's ResNet (BasicBlock, one block per stage) with a 1-channel 3x3 stride-2 stem and
  the fourth stage dropped for 28x28 inputs.
* ``functional``: forward written with ``F.conv2d``/``F.linear`` on raw parameters, around a gate module with
  data-dependent Python control flow that ``torch.fx`` cannot trace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BNBuffers(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.head = nn.Linear(24 * 4 * 4, num_classes)  # registered first, runs last
        self.register_buffer("mean", torch.tensor([0.2860]).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([0.3530]).view(1, 1, 1, 1))
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 24, 5),
            nn.BatchNorm2d(24),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(24, 24, 5),
            nn.BatchNorm2d(24),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk((x - self.mean) / self.std))


class ReluPool(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class ParallelNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.GroupNorm(4, 16),
            nn.SiLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.GroupNorm(4, 32),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.fc = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


class Gate(nn.Module):
    """Data-dependent control flow: ``torch.fx.symbolic_trace`` raises on ``bool`` of a traced value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().amax() > 0:
            return F.relu(x)
        return x


class Functional(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.out_w = nn.Parameter(torch.randn(num_classes, 32 * 5 * 5) * 0.02)
        self.out_b = nn.Parameter(torch.zeros(num_classes))
        self.w1 = nn.Parameter(torch.randn(16, 1, 5, 5) * 0.2)
        self.b1 = nn.Parameter(torch.zeros(16))
        self.w2 = nn.Parameter(torch.randn(32, 16, 3, 3) * 0.08)
        self.b2 = nn.Parameter(torch.zeros(32))
        self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.gate(F.conv2d(x, self.w1, self.b1)), 2)
        x = F.max_pool2d(self.gate(F.conv2d(x, self.w2, self.b2)), 2)
        return F.linear(x.flatten(1), self.out_w, self.out_b)


def build_bn_buffers(num_classes: int = 10) -> nn.Module:
    return BNBuffers(num_classes)


def build_relu_pool(num_classes: int = 10) -> nn.Module:
    return ReluPool(num_classes)


def build_parallel(num_classes: int = 10) -> nn.Module:
    return ParallelNet(num_classes)


def build_torchvision(num_classes: int = 10) -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=2, padding=1, bias=False)  # greyscale, 28x28 -> 14x14
    net.layer4 = nn.Identity()  # type: ignore[assignment] # a 2x2 map needs no fourth stage (and CPU tests stay quick)
    net.fc = nn.Linear(256, num_classes)
    return net


def build_functional(num_classes: int = 10) -> nn.Module:
    return Functional(num_classes)
