"""
VGG configurations A, A-LRN, B, C, D and E (Simonyan and Zisserman 2015), as data.

One table of configurations and one make_layers; each variant, with and without batch norm, is
a builder of its own (``vgg16``, ``vgg16_bn``, ...) as in torchvision, so a name found in a
config can be found here. Built on torchvision.models.VGG, and make_layers indexes its
nn.Sequential like torchvision's, so A/B/D/E (vgg11/13/16/19, and their _bn) load
torchvision's state dicts.
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
from torchvision.models import VGG

# An int is a 3x3 convolution with that many filters, (filters, kernel) another kernel size,
# 'M' a 2x2 stride-2 max pool, 'LRN' local response normalization.
LayerSpec = int | tuple[int, int] | str

VGG_CONFIGS: dict[str, list[LayerSpec]] = {
    'A': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'A-LRN': [64, 'LRN', 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'B': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'C': [64, 64, 'M', 128, 128, 'M', 256, 256, (256, 1), 'M',
          512, 512, (512, 1), 'M', 512, 512, (512, 1), 'M'],
    'D': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M',
          512, 512, 512, 'M', 512, 512, 512, 'M'],
    'E': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
          512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
}

_SMALL_HIDDEN = 512


def make_layers(config: list[LayerSpec], in_channels: int = 3, batch_norm: bool = False,
                activation: str = 'relu', max_pools: int = 5) -> nn.Sequential:
    """
    Turn a VGG configuration into one flat nn.Sequential of conv, [bn], act, pool layers.

    Convolutions keep their bias even before batch norm, as torchvision's do.

    :param max_pools: keep only the first this many max pools (small inputs have no room for
        all five); later 'M' entries are skipped.
    """
    layers = []
    pools = 0
    for item in config:
        if item == 'M':
            if pools < max_pools:
                layers.append(nn.MaxPool2d(2, 2))
            pools += 1
        elif item == 'LRN':
            layers.append(local_response_norm())
        else:
            out_channels, kernel = item if isinstance(item, tuple) else (item, 3)
            layers.extend(conv_block(in_channels, out_channels, kernel, batch_norm=batch_norm,
                                     activation=activation, bias=True))
            in_channels = out_channels
    return nn.Sequential(*layers)


def small_max_pools(input_size: int) -> int:
    """Return how many 2x2 pools (up to 5) leave a feature map of at least 2x2."""
    pools = 0
    while pools < 5 and input_size // 2 >= 2:
        input_size //= 2
        pools += 1
    return pools


def _small_head(model: VGG, num_classes: int, dropout: float, activation: str) -> None:
    # Global average pool and a 512-wide classifier in torchvision's layout.
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(512, _SMALL_HIDDEN), create_activation(activation), nn.Dropout(dropout),
        nn.Linear(_SMALL_HIDDEN, _SMALL_HIDDEN), create_activation(activation),
        nn.Dropout(dropout), nn.Linear(_SMALL_HIDDEN, num_classes))
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):  # VGG's own initialisation of linear layers
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.constant_(layer.bias, 0)


def build_vgg(configuration: str, batch_norm: bool, config: ModelConfig) -> VGG:
    """
    Build VGG with the given configuration letter ('A', 'A-LRN', 'B', 'C', 'D', 'E').

    Defaults: dropout 0.5 in the classifier; batch norm as the name says (``_bn`` or not).
    ``batch_norm=True`` on a plain name adds it; ``batch_norm=False`` on a ``_bn`` name is a
    contradiction and refused. Small inputs (< 64): only as many max pools as leave at least
    2x2 (three at 28x28: 28 -> 14 -> 7 -> 3; the later blocks run at 3x3), then a global
    average pool and a 512 -> 512 -> 512 classifier instead of 7x7x512 -> 4096 -> 4096.

    :raises ValueError: for ``batch_norm=False`` on a ``_bn`` variant.
    """
    if config.batch_norm is False and batch_norm:
        raise ValueError('batch_norm=False contradicts a _bn VGG variant; '
                         'build the name without _bn instead')
    batch_norm = batch_norm or bool(config.batch_norm)
    dropout = 0.5 if config.dropout is None else config.dropout
    max_pools = small_max_pools(config.input_size) if config.small else 5
    features = make_layers(VGG_CONFIGS[configuration], config.in_channels, batch_norm,
                           config.activation, max_pools)
    if config.small:
        # VGG always makes the 7x7x512 -> 4096 classifier; on the meta device it costs
        # nothing before it is replaced. VGG still initialises the real features.
        with torch.device('meta'):
            model = VGG(features, num_classes=config.num_classes, dropout=dropout)
        _small_head(model, config.num_classes, dropout, config.activation)
    else:
        model = VGG(features, num_classes=config.num_classes, dropout=dropout)
    replace_activations(model, config.activation)
    return model


@register_model('vgg11')
def vgg11(config: ModelConfig) -> VGG:
    """VGG-11, configuration A: 8 convolutions."""
    return build_vgg('A', False, config)


@register_model('vgg11_bn')
def vgg11_bn(config: ModelConfig) -> VGG:
    """VGG-11 (A) with batch norm."""
    return build_vgg('A', True, config)


@register_model('vgg11_lrn')
def vgg11_lrn(config: ModelConfig) -> VGG:
    """VGG-11 with local response normalization after its first convolution (A-LRN)."""
    return build_vgg('A-LRN', False, config)


@register_model('vgg11_lrn_bn')
def vgg11_lrn_bn(config: ModelConfig) -> VGG:
    """VGG-11 (A-LRN) with batch norm."""
    return build_vgg('A-LRN', True, config)


@register_model('vgg13')
def vgg13(config: ModelConfig) -> VGG:
    """VGG-13, configuration B: 10 convolutions."""
    return build_vgg('B', False, config)


@register_model('vgg13_bn')
def vgg13_bn(config: ModelConfig) -> VGG:
    """VGG-13 (B) with batch norm."""
    return build_vgg('B', True, config)


@register_model('vgg16_c')
def vgg16_c(config: ModelConfig) -> VGG:
    """VGG-16 with 1x1 convolutions in its last three blocks (configuration C)."""
    return build_vgg('C', False, config)


@register_model('vgg16_c_bn')
def vgg16_c_bn(config: ModelConfig) -> VGG:
    """VGG-16 (C) with batch norm."""
    return build_vgg('C', True, config)


@register_model('vgg16')
def vgg16(config: ModelConfig) -> VGG:
    """VGG-16, configuration D: 13 3x3 convolutions."""
    return build_vgg('D', False, config)


@register_model('vgg16_bn')
def vgg16_bn(config: ModelConfig) -> VGG:
    """VGG-16 (D) with batch norm."""
    return build_vgg('D', True, config)


@register_model('vgg19')
def vgg19(config: ModelConfig) -> VGG:
    """VGG-19, configuration E: 16 convolutions."""
    return build_vgg('E', False, config)


@register_model('vgg19_bn')
def vgg19_bn(config: ModelConfig) -> VGG:
    """VGG-19 (E) with batch norm."""
    return build_vgg('E', True, config)
