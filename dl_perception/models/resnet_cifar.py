"""
The small-input ResNets of He et al. 2016, section 4.2: resnet20, 32, 44, 56, 110 and 1202.

6n+2 weighted layers: a 3x3 convolution, three stages of n basic blocks with 16, 32 and 64
filters (the later two start with stride 2), global average pooling and one linear layer.
Everything is fixed at construction, so the forward pass has no data-dependent Python
control flow and exports to ONNX.
"""

from __future__ import annotations

from functools import partial

from dl_perception.models.activations import create_activation
from dl_perception.models.layers import conv_block
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
import torch
from torch import nn
from torch.nn import functional as F

DEPTHS = (20, 32, 44, 56, 110, 1202)
SHORTCUTS = ('A', 'B')
_WIDTHS = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """
    Shortcut option A: no parameters; subsample by the stride, zero-pad the new channels.

    Keeps the deep variants' parameter counts those of the paper.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, C_in, H, W) to (N, C_out, ceil(H / stride), ceil(W / stride))."""
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions plus a shortcut, the activation after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str,
                 batch_norm: bool, activation: str) -> None:
        super().__init__()
        self.conv1 = conv_block(in_channels, out_channels, 3, stride, batch_norm=batch_norm,
                                activation=activation)
        self.conv2 = conv_block(out_channels, out_channels, 3, batch_norm=batch_norm,
                                activation=None)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == 'A':
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:  # option B: a 1x1 projection
            self.shortcut = conv_block(in_channels, out_channels, 1, stride,
                                       batch_norm=batch_norm, activation=None)
        self.act = create_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return act(F(x) + shortcut(x))."""
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """
    A 6n+2-layer ResNet for small images.

    Inputs of 64 pixels and more get a 7x7 stride-2 convolution and a 3x3 stride-2 max pool
    as stem instead of the 3x3 convolution, so 224x224 reaches the first stage at 56x56.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3,
                 small_input: bool = True, activation: str = 'relu', batch_norm: bool = True,
                 dropout: float = 0.0, shortcut: str = 'A') -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f'depth must be 6n+2 with n >= 1, got {depth}')
        if shortcut not in SHORTCUTS:
            raise ValueError(f'unknown shortcut {shortcut!r}; choose one of {SHORTCUTS}')
        if small_input:
            self.stem = conv_block(in_channels, _WIDTHS[0], 3, batch_norm=batch_norm,
                                   activation=activation)
        else:
            self.stem = nn.Sequential(
                *conv_block(in_channels, _WIDTHS[0], 7, 2, batch_norm=batch_norm,
                            activation=activation),
                nn.MaxPool2d(3, 2, padding=1))
        blocks = []
        width = _WIDTHS[0]
        for stage, out_width in enumerate(_WIDTHS):
            for index in range((depth - 2) // 6):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(ResidualBlock(width, out_width, stride, shortcut, batch_norm,
                                            activation))
                width = out_width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        self._initialise(batch_norm)

    def _initialise(self, batch_norm: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        if not batch_norm:
            # Without batch norm 600 blocks would overflow at initialisation; start every
            # residual branch at zero (as Fixup does) so each block begins as its shortcut.
            for block in self.stages:
                nn.init.zeros_(block.conv2.conv.weight)
                nn.init.zeros_(block.conv2.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) float32 to logits (N, num_classes)."""
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def build_resnet_cifar(depth: int, config: ModelConfig, *, shortcut: str = 'A') -> CifarResNet:
    """
    Build the ``depth``-layer small-input ResNet.

    Defaults: batch norm, no dropout. ``batch_norm=False`` removes it (convolutions get a
    bias; residual branches start at zero); ``dropout=p`` drops the pooled features before
    the final layer.

    :param shortcut: 'A' (parameter-free, the paper's CIFAR choice) or 'B' (1x1 projection
        where the shape changes).
    :raises ValueError: for an unknown ``shortcut``.
    """
    batch_norm = True if config.batch_norm is None else config.batch_norm
    return CifarResNet(depth, config.num_classes, config.in_channels, config.small,
                       config.activation, batch_norm, config.dropout or 0.0, shortcut)


for _depth in DEPTHS:
    register_model(f'resnet{_depth}')(partial(build_resnet_cifar, _depth))
