"""
LeNet-5 style network (LeCun et al. 1998), with modern max pooling and a chosen activation.

The smallest seed architecture: a baseline that trains in seconds on 28x28 images.
"""

from __future__ import annotations

from dl_perception.models.activations import create_activation
from dl_perception.models.layers import conv_block
from dl_perception.models.layers import conv_output_size
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
import torch
from torch import nn

_MAP_SIZE = 5  # side of the last feature map in the 32x32 original


class LeNet(nn.Module):
    """
    Two 5x5 convolutions with 2x2 max pools, then fully connected layers 120 -> 84 -> classes.

    Inputs under 32 pixels get 2 pixels of padding on the first convolution (how 28x28 MNIST
    was fed to the 32x32 original); inputs over 32 get an adaptive average pool to 5x5 before
    the fully connected layers, so their width does not grow with the image.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 32,
                 activation: str = 'relu', batch_norm: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        padding = 2 if input_size < 32 else 0
        size = conv_output_size(input_size, 5, padding=padding)
        size = conv_output_size(size, 2, stride=2)
        size = conv_output_size(size, 5)
        size = conv_output_size(size, 2, stride=2)
        self.features = nn.Sequential(
            conv_block(in_channels, 6, 5, padding=padding, batch_norm=batch_norm,
                       activation=activation),
            nn.MaxPool2d(2, 2),
            conv_block(6, 16, 5, padding=0, batch_norm=batch_norm, activation=activation),
            nn.MaxPool2d(2, 2),
        )
        if size > _MAP_SIZE:
            self.pool = nn.AdaptiveAvgPool2d(_MAP_SIZE)
            size = _MAP_SIZE
        else:
            self.pool = nn.Identity()
        hidden = []
        for in_features, out_features in ((16 * size * size, 120), (120, 84)):
            hidden += [nn.Linear(in_features, out_features), create_activation(activation)]
            if dropout > 0:
                hidden.append(nn.Dropout(dropout))
        self.classifier = nn.Sequential(*hidden, nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) float32 to logits (N, num_classes)."""
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model('lenet')
def lenet(config: ModelConfig) -> LeNet:
    """
    Build LeNet-5.

    Defaults: no batch norm, no dropout. ``batch_norm=True`` adds it after both convolutions;
    ``dropout=p`` adds dropout after the 120- and 84-wide layers. Any input size from 16 up.
    """
    return LeNet(config.num_classes, config.in_channels, config.input_size,
                 config.activation,
                 batch_norm=bool(config.batch_norm),
                 dropout=config.dropout or 0.0)
