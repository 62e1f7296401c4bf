"""
AlexNet (Krizhevsky et al. 2012): torchvision's single-tower form, and the paper's.

``alexnet`` is built on torchvision.models.AlexNet: with the default arguments its state dict
is torchvision's (64/192/384/256/256 filters, no LRN). ``alexnet_original`` is the paper's
network on the same classifier: 96/256/384/384/256 filters, local response normalization
after the first two convolutions, and the two GPU towers as grouped convolutions.
"""

from __future__ import annotations

from dl_perception.models.activations import create_activation
from dl_perception.models.activations import replace_activations
from dl_perception.models.layers import conv_block
from dl_perception.models.layers import local_response_norm
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
import torch
from torch import nn
from torchvision.models import AlexNet

# (out_channels, kernel, stride, padding, groups) per convolution; 'M' is a 3x3 stride-2 max
# pool, 'L' local response normalization.
_TORCHVISION_FEATURES = [(64, 11, 4, 2, 1), 'M', (192, 5, 1, 2, 1), 'M',
                         (384, 3, 1, 1, 1), (256, 3, 1, 1, 1), (256, 3, 1, 1, 1), 'M']
_SMALL_STEM = (5, 1, 2)  # kernel, stride, padding of the first convolution below 64 pixels
_SMALL_MAP = 2  # side of the last feature map for a 28x28 input: 28 -> 13 -> 6 -> 2
_SMALL_HIDDEN = 1024
_TOWERS = (1, 2)


def _paper_features(towers: int) -> list:
    # Section 3.5 and figure 2: conv2, conv4 and conv5 see only their own tower's maps.
    return [(96, 11, 4, 2, 1), 'L', 'M', (256, 5, 1, 2, towers), 'L', 'M',
            (384, 3, 1, 1, 1), (384, 3, 1, 1, towers), (256, 3, 1, 1, towers), 'M']


def _features(table: list, in_channels: int, small: bool, batch_norm: bool,
              activation: str) -> nn.Sequential:
    # Flat, like torchvision's: conv, [bn], act, ... so the default keys match.
    layers = []
    for index, item in enumerate(table):
        if item == 'M':
            layers.append(nn.MaxPool2d(3, 2))
            continue
        if item == 'L':
            layers.append(local_response_norm())
            continue
        out_channels, kernel, stride, padding, groups = item
        if small and index == 0:
            kernel, stride, padding = _SMALL_STEM
        layers.extend(conv_block(in_channels, out_channels, kernel, stride, padding,
                                 batch_norm=batch_norm, activation=activation, bias=True,
                                 groups=groups))
        in_channels = out_channels
    return nn.Sequential(*layers)


def _small_classifier(num_classes: int, dropout: float, activation: str) -> nn.Sequential:
    # torchvision's layout (dropout, linear, act, dropout, linear, act, linear), narrower.
    width = 256 * _SMALL_MAP * _SMALL_MAP
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(width, _SMALL_HIDDEN), create_activation(activation),
        nn.Dropout(dropout), nn.Linear(_SMALL_HIDDEN, _SMALL_HIDDEN),
        create_activation(activation), nn.Linear(_SMALL_HIDDEN, num_classes))


def _build(config: ModelConfig, table: list) -> AlexNet:
    dropout = 0.5 if config.dropout is None else config.dropout
    features = _features(table, config.in_channels, config.small, bool(config.batch_norm),
                         config.activation)
    if config.small:
        # AlexNet's own layers are all replaced: make them on the meta device, for nothing.
        with torch.device('meta'):
            model = AlexNet(num_classes=config.num_classes, dropout=dropout)
        model.avgpool = nn.AdaptiveAvgPool2d(_SMALL_MAP)
        model.classifier = _small_classifier(config.num_classes, dropout, config.activation)
    else:
        model = AlexNet(num_classes=config.num_classes, dropout=dropout)
    model.features = features
    replace_activations(model, config.activation)
    return model


@register_model('alexnet')
def alexnet(config: ModelConfig) -> AlexNet:
    """
    Build AlexNet in torchvision's form.

    Defaults: no batch norm, dropout 0.5 in the classifier. ``batch_norm=True`` puts batch norm
    after every convolution. Small inputs (< 64): a 5x5 stride-1 first convolution instead of
    11x11 stride 4, the three max pools kept (28 -> 13 -> 6 -> 2), and a 2x2x256 -> 1024 ->
    1024 classifier instead of 6x6x256 -> 4096 -> 4096.
    """
    return _build(config, _TORCHVISION_FEATURES)


@register_model('alexnet_original')
def alexnet_original(config: ModelConfig, *, towers: int = 2) -> AlexNet:
    """
    Build AlexNet as the 2012 paper has it: 96/256/384/384/256 filters, with LRN.

    Local response normalization (n=5, k=2, alpha=1e-4, beta=0.75) follows the ReLU of the
    first two convolutions, before their overlapping max pools; the classifier, the defaults
    and the small-input design are ``alexnet``'s (the first layer keeps its 96 filters).
    Weights start as PyTorch's defaults, not the paper's N(0, 0.01) with biases of 1, which
    train slowly without the paper's 90 epochs.

    :param towers: 2 (the paper's): conv2, conv4 and conv5 are grouped convolutions that see
        only their own half of the maps, as the two GPUs did, 61.0 M parameters at 1000
        classes (the paper's "60 million"); 1: every layer sees every map, 62.4 M.
    :raises ValueError: for a ``towers`` other than 1 or 2.
    """
    if isinstance(towers, bool) or towers not in _TOWERS:
        raise ValueError(f'towers must be 1 or 2, got {towers!r}')
    return _build(config, _paper_features(towers))
