"""
AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form, without LRN.

Built on torchvision.models.AlexNet: with the default arguments its state dict is
torchvision's.
"""

from __future__ import annotations

from dl_perception.models.activations import create_activation
from dl_perception.models.activations import replace_activations
from dl_perception.models.layers import conv_block
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
import torch
from torch import nn
from torchvision.models import AlexNet

# (out_channels, kernel, stride, padding) per convolution; 'M' is a 3x3 stride-2 max pool.
_FEATURES = [(64, 11, 4, 2), 'M', (192, 5, 1, 2), 'M',
             (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), 'M']
_SMALL_STEM = (64, 5, 1, 2)
_SMALL_MAP = 2  # side of the last feature map for a 28x28 input: 28 -> 13 -> 6 -> 2
_SMALL_HIDDEN = 1024


def _features(in_channels: int, small: bool, batch_norm: bool,
              activation: str) -> nn.Sequential:
    # Flat, like torchvision's: conv, [bn], act, ... so the default keys match.
    layers = []
    for index, item in enumerate(_FEATURES):
        if item == 'M':
            layers.append(nn.MaxPool2d(3, 2))
            continue
        out_channels, kernel, stride, padding = _SMALL_STEM if small and index == 0 else item
        layers.extend(conv_block(in_channels, out_channels, kernel, stride, padding,
                                 batch_norm=batch_norm, activation=activation, bias=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


def _small_classifier(num_classes: int, dropout: float, activation: str) -> nn.Sequential:
    # torchvision's layout (dropout, linear, act, dropout, linear, act, linear), narrower.
    width = 256 * _SMALL_MAP * _SMALL_MAP
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(width, _SMALL_HIDDEN), create_activation(activation),
        nn.Dropout(dropout), nn.Linear(_SMALL_HIDDEN, _SMALL_HIDDEN),
        create_activation(activation), nn.Linear(_SMALL_HIDDEN, num_classes))


@register_model('alexnet')
def alexnet(config: ModelConfig) -> AlexNet:
    """
    Build AlexNet.

    Defaults: no batch norm, dropout 0.5 in the classifier. ``batch_norm=True`` puts batch norm
    after every convolution. Small inputs (< 64): a 5x5 stride-1 first convolution instead of
    11x11 stride 4, the three max pools kept (28 -> 13 -> 6 -> 2), and a 2x2x256 -> 1024 ->
    1024 classifier instead of 6x6x256 -> 4096 -> 4096.
    """
    dropout = 0.5 if config.dropout is None else config.dropout
    features = _features(config.in_channels, config.small, bool(config.batch_norm),
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
