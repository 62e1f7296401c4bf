"""
ImageNet-style ResNet-18/34/50/101/152 (He et al. 2016), on torchvision.models.ResNet.

With the default arguments each network's state dict is torchvision's. The small-input CIFAR
family (resnet20 ... resnet1202) is in resnet_cifar.
"""

from __future__ import annotations

from functools import partial

from dl_perception.models.activations import replace_activations
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock
from torchvision.models.resnet import Bottleneck

# name -> (residual block, blocks per stage)
RESNET_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    'resnet18': (BasicBlock, (2, 2, 2, 2)),
    'resnet34': (BasicBlock, (3, 4, 6, 3)),
    'resnet50': (Bottleneck, (3, 4, 6, 3)),
    'resnet101': (Bottleneck, (3, 4, 23, 3)),
    'resnet152': (Bottleneck, (3, 8, 36, 3)),
}


def _no_norm(channels: int) -> nn.Identity:
    # norm_layer for batch_norm=False: ResNet calls it with the channel count.
    return nn.Identity()


def _zero_last_residual_convs(model: ResNet) -> None:
    # Without batch norm each block would add its input's variance again, and 50 blocks
    # overflow at initialisation; starting every residual branch at zero (as Fixup does)
    # makes each block the identity instead.
    for block in model.modules():
        if isinstance(block, Bottleneck):
            nn.init.zeros_(block.conv3.weight)
        elif isinstance(block, BasicBlock):
            nn.init.zeros_(block.conv2.weight)


def _check_dilation(block: type[nn.Module], replace: object) -> list[bool]:
    if (not isinstance(replace, (list, tuple)) or len(replace) != 3
            or not all(isinstance(item, bool) for item in replace)):
        raise ValueError('replace_stride_with_dilation must be three booleans (for stages 2, '
                         f'3 and 4), got {replace!r}')
    if any(replace) and block is not Bottleneck:
        raise ValueError('replace_stride_with_dilation needs bottleneck blocks (resnet50, '
                         'resnet101, resnet152): the basic block of resnet18/34 has no dilated '
                         f'form, got {list(replace)}')
    return list(replace)


def build_resnet(block: type[nn.Module], layers: tuple[int, ...], config: ModelConfig, *,
                 replace_stride_with_dilation: tuple[bool, bool, bool] | list[bool] = (
                     False, False, False)) -> ResNet:
    """
    Build an ImageNet-style ResNet from its block type and blocks per stage.

    Defaults: batch norm, no dropout. ``batch_norm=False`` removes every batch norm (the
    convolutions stay bias-free) and starts each residual branch at zero; ``dropout=p`` drops
    the pooled features before the final layer (inside ``avgpool``, so the ``fc`` keys stay).
    Small inputs (< 64): a 3x3 stride-1 first convolution instead of 7x7 stride 2 and no max
    pool, so 28x28 reaches the last stage at 4x4.

    :param replace_stride_with_dilation: for stages 2, 3 and 4 (torchvision's option, used by
        segmentation backbones): keep the resolution instead of halving it, and dilate that
        stage's later 3x3 convolutions by the stride given up (2, then 4 after a second
        dilated stage). A 3x3 kernel with dilation D covers F' = F + (F - 1)(D - 1) pixels
        (5, 9), so each output still sees what the strided network's would, on a finer grid:
        ``[False, True, True]`` keeps 1/8 of the input side (28x28 at 224) instead of 1/32.
        Bottleneck ResNets only; the weights are the same shapes, so torchvision's fit.
    :raises ValueError: for a malformed value, or a dilation asked of resnet18/34.
    """
    dilate = _check_dilation(block, replace_stride_with_dilation)
    batch_norm = True if config.batch_norm is None else config.batch_norm
    norm_layer = nn.BatchNorm2d if batch_norm else _no_norm
    model = ResNet(block, list(layers), num_classes=config.num_classes, norm_layer=norm_layer,
                   replace_stride_with_dilation=dilate)
    if config.small:
        model.conv1 = nn.Conv2d(config.in_channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif config.in_channels != 3:
        model.conv1 = nn.Conv2d(config.in_channels, 64, 7, stride=2, padding=3, bias=False)
    # ResNet's own initialisation, also for a replaced stem
    nn.init.kaiming_normal_(model.conv1.weight, mode='fan_out', nonlinearity='relu')
    if not batch_norm:
        _zero_last_residual_convs(model)
    if config.dropout:
        model.avgpool = nn.Sequential(model.avgpool, nn.Dropout(config.dropout))
    replace_activations(model, config.activation)
    return model


for _name, (_block, _layers) in RESNET_LAYOUTS.items():
    register_model(_name)(partial(build_resnet, _block, _layers))
