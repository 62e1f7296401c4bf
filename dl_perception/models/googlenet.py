"""
GoogLeNet (Szegedy et al. 2015) with Inception modules, in torchvision's batch-norm form.

Built on torchvision.models.GoogLeNet through its ``blocks`` argument: our conv block has the
attribute names of torchvision's (``conv``, ``bn``), so the state dict keys are torchvision's,
while the activation becomes a module that can be chosen (torchvision applies ReLU
functionally). The default Inception module is the paper's, with a 5x5 convolution in its
5x5 branch; torchvision's has a 3x3 there, so its weights load with ``inception='torchvision'``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from dl_perception.models.activations import create_activation
from dl_perception.models.layers import conv_block
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import GoogLeNet
from torchvision.models.googlenet import Inception
from torchvision.models.googlenet import InceptionAux


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
          padding: int = 0, *, batch_norm: bool, activation: str) -> nn.Sequential:
    # Called by torchvision's GoogLeNet with its BasicConv2d arguments.
    block = conv_block(in_channels, out_channels, kernel_size, stride, padding,
                       batch_norm=batch_norm, activation=activation)
    if batch_norm:
        block.bn.eps = 0.001  # torchvision's GoogLeNet value
    return block


class NaiveInception(nn.Module):
    """
    Inception module without dimension reduction (the paper's figure 2a).

    1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by side on the full input. Unlike
    the paper's naive module, the pool branch keeps its 1x1 projection, so that each module
    has the output width of the reduced one and the rest of GoogLeNet stays unchanged. The
    reduction widths are accepted, for GoogLeNet's constructor, and unused.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int,
                 make_conv: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.branch1 = make_conv(in_channels, ch1x1, kernel_size=1)
        self.branch2 = make_conv(in_channels, ch3x3, kernel_size=3, padding=1)
        self.branch3 = make_conv(in_channels, ch5x5, kernel_size=5, padding=2)
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            make_conv(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the four branches along the channels."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)],
                         1)


class PaperInception(Inception):
    """
    Inception module with dimension reduction as the paper has it (figure 2b, table 1).

    torchvision's module, with the convolution after the 5x5 branch's 1x1 reduction made 5x5
    (torchvision's is 3x3); the keys stay torchvision's, only that kernel's shape differs.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int,
                 conv_block: Callable[..., nn.Module]) -> None:
        super().__init__(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                         conv_block)
        self.branch3 = nn.Sequential(conv_block(in_channels, ch5x5red, kernel_size=1),
                                     conv_block(ch5x5red, ch5x5, kernel_size=5, padding=2))


class AuxHead(InceptionAux):
    """torchvision's auxiliary classifier with the chosen activation as a module."""

    def __init__(self, in_channels: int, num_classes: int,
                 conv_block: Callable[..., nn.Module], dropout: float = 0.7, *,
                 activation: str) -> None:
        super().__init__(in_channels, num_classes, conv_block, dropout)
        self.act = create_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map an intermediate feature map (N, C, H, W) to logits (N, num_classes)."""
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = self.dropout(self.act(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


# inception option -> the module and the name of its conv-block argument. 'torchvision' (3x3
# where the paper has 5x5) is kept because torchvision's ImageNet weights fit only it.
_INCEPTION_MODULES: dict[str, tuple[type[nn.Module], str]] = {
    'reduced': (PaperInception, 'conv_block'),
    'naive': (NaiveInception, 'make_conv'),
    'torchvision': (Inception, 'conv_block'),
}
_INCEPTION_KINDS = tuple(_INCEPTION_MODULES)


def _inception_block(kind: str, make_conv: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    module, argument = _INCEPTION_MODULES[kind]
    return partial(module, **{argument: make_conv})


@register_model('googlenet')
def googlenet(config: ModelConfig, *, inception: str = 'reduced',
              aux_logits: bool = False) -> GoogLeNet:
    """
    Build GoogLeNet.

    Defaults: batch norm after every convolution (torchvision's form; False gives biased
    convolutions without it), dropout 0.4 before the classifier (the paper's; torchvision's is
    0.2), no auxiliary classifiers. Small inputs (< 64): a 3x3 stride-1 first convolution
    instead of 7x7 stride 2 and no max pools before the first Inception module, so a 28x28
    input reaches the Inception modules at 28x28, as 224x224 does.

    :param inception: 'reduced' (the paper's: 1x1 reductions before the 3x3 and 5x5
        convolutions; 7.0 M parameters at 1000 classes), 'naive' (see NaiveInception: many
        more parameters and operations) or 'torchvision' (torchvision's reduced module, 3x3
        in the 5x5 branch, 6.6 M parameters: the one torchvision's weights fit).
    :param aux_logits: add the two auxiliary classifiers; in training mode the model then
        returns torchvision's GoogLeNetOutputs (logits, aux_logits2, aux_logits1).
    :raises ValueError: for an unknown ``inception``.
    """
    if inception not in _INCEPTION_KINDS:
        raise ValueError(f'unknown inception {inception!r}; choose one of {_INCEPTION_KINDS}')
    if not isinstance(aux_logits, bool):
        raise TypeError(f'aux_logits must be True or False, got {aux_logits!r}')
    batch_norm = True if config.batch_norm is None else config.batch_norm
    dropout = 0.4 if config.dropout is None else config.dropout
    make_conv = partial(_conv, batch_norm=batch_norm, activation=config.activation)
    blocks = [make_conv, _inception_block(inception, make_conv),
              partial(AuxHead, conv_block=make_conv, activation=config.activation)]
    model = GoogLeNet(num_classes=config.num_classes, aux_logits=aux_logits,
                      init_weights=True, blocks=blocks, dropout=dropout)
    if config.small:
        model.conv1 = make_conv(config.in_channels, 64, kernel_size=3, padding=1)
        model.maxpool1 = nn.Identity()
        model.maxpool2 = nn.Identity()
    elif config.in_channels != 3:
        model.conv1 = make_conv(config.in_channels, 64, kernel_size=7, stride=2, padding=3)
    # GoogLeNet's own initialisation, also for a replaced stem
    nn.init.trunc_normal_(model.conv1.conv.weight, mean=0.0, std=0.01, a=-2, b=2)
    return model
