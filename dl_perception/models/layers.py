"""
Layer helpers shared by the model families.

The size arithmetic lives here once, so that a family can plan its stem, pools and classifier
for the input size it is given instead of hard-coding the 224x224 numbers.
"""

from __future__ import annotations

from collections import OrderedDict

from dl_perception.models.activations import create_activation
from torch import nn


def check_int(name: str, value: int, minimum: int) -> None:
    """
    Refuse a value that is not an int of at least ``minimum``.

    :raises TypeError: if ``value`` is not an int (bool included).
    :raises ValueError: if ``value`` < ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """
    Return the output width of a convolution or pooling window along one axis.

    w_o = floor((w_i - F' + 2p) / s) + 1 with the dilated kernel F' = F + (F - 1)(D - 1),
    the rule nn.Conv2d, nn.MaxPool2d and nn.AvgPool2d follow (the latter two without
    ``ceil_mode``).

    :raises ValueError: if an argument is out of range or the window does not fit the
        padded input.
    """
    check_int('size', size, 1)
    check_int('kernel', kernel, 1)
    check_int('stride', stride, 1)
    check_int('padding', padding, 0)
    check_int('dilation', dilation, 1)
    effective_kernel = kernel + (kernel - 1) * (dilation - 1)
    if effective_kernel > size + 2 * padding:
        raise ValueError(f'a window of {effective_kernel} (kernel {kernel}, dilation '
                         f'{dilation}) does not fit an input of {size} padded by {padding}')
    return (size - effective_kernel + 2 * padding) // stride + 1


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
               padding: int | None = None, dilation: int = 1, batch_norm: bool = True,
               activation: str | None = 'relu', bias: bool | None = None,
               groups: int = 1) -> nn.Sequential:
    """
    Return convolution -> optional batch norm -> optional activation.

    The children are named ``conv``, ``bn`` and ``act`` (the names torchvision's conv blocks
    use, so state dicts line up); iterating the block yields them in order, which lets a
    family splice them into one flat nn.Sequential.

    :param padding: None keeps the size at stride 1 for odd kernels:
        ``dilation * (kernel - 1) // 2``.
    :param activation: a name from ACTIVATIONS, or None for no activation (before a
        residual sum).
    :param bias: None gives the convolution a bias only when no batch norm follows it.
    :param groups: split the channels into this many groups that see only their own inputs
        (AlexNet's two GPU towers); both channel counts must divide by it.
    """
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    if bias is None:
        bias = not batch_norm
    layers = OrderedDict(conv=nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                                        padding=padding, dilation=dilation, bias=bias,
                                        groups=groups))
    if batch_norm:
        layers['bn'] = nn.BatchNorm2d(out_channels)
    if activation is not None:
        layers['act'] = create_activation(activation)
    return nn.Sequential(layers)


def local_response_norm() -> nn.LocalResponseNorm:
    """
    Return the local response normalization of Krizhevsky et al. (2012), used by VGG A-LRN.

    Paper constants n=5, k=2, alpha=1e-4, beta=0.75. PyTorch divides alpha by n, so it is
    given here as 5e-4 to keep the paper's per-sum alpha.
    """
    return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)


class MirrorAveraged(nn.Module):
    """
    A network whose output is the mean of its logits on each image and on its mirror image.

    Test-time flip: for data whose classes do not change under a left-right flip, the mean
    of the two views is a little more accurate than either (about +0.1-0.3 points of
    Fashion-MNIST top-1 here) at twice the inference cost. Exported as it is, so the robot
    runs exactly what was tested. ``network`` keeps the weights (its state dict is unchanged).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images):  # noqa: D102  (see the class)
        return (self.network(images) + self.network(images.flip(-1))) / 2
