"""
Vanishing gradients: one deep plain network, sigmoid vs ReLU, plain vs batch norm vs residual.

    python -m benchmarks lecture.vanishing_gradients [--depth 20] [--width 16] [--steps 100]
        [--images 2000] [--lr 0.05] [--output lecture-results]

The network is a stem (3x3 convolution, stride 2: 28 -> 14 pixels) followed by ``--depth``
3x3 convolutions of ``--width`` channels at 14x14, global average pooling and a linear
layer. Each arm keeps that network and changes one thing: the activation (the library's
``create_activation``), a batch norm after each convolution, or a residual connection around
each convolution (``x + act(conv(x))``). Convolutions start from each activation's
textbook initialization (He for ReLU, Glorot for sigmoid); a residual branch without batch
norm is scaled by 1/sqrt(depth) at initialization (as Fixup does), else the sum's variance
doubles per block and the loss explodes. Every arm starts from the same seed and trains with
plain SGD (momentum 0.9) on the same batches of Fashion-MNIST. After each step the gradient
norm of every convolution and linear weight (input side first, the library's
``weighted_layers``) is recorded; the table gives their medians over the run at the first and
last layer, and the mean loss of the last 10 steps.
"""

from __future__ import annotations

import statistics

from benchmarks.lecture.common import experiment_parser
from benchmarks.lecture.common import fashion_tensors
from benchmarks.lecture.common import parse_options
from benchmarks.lecture.common import write_outputs
from dl_perception.models.activations import create_activation
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.step import weighted_layers
from matplotlib.figure import Figure
import torch
from torch import nn

ARMS = {  # name -> (activation, batch norm, residual)
    'sigmoid': ('sigmoid', False, False), 'sigmoid+bn': ('sigmoid', True, False),
    'sigmoid+residual': ('sigmoid', False, True), 'relu': ('relu', False, False),
    'relu+bn': ('relu', True, False), 'relu+residual': ('relu', False, True),
    'relu+bn+residual': ('relu', True, True),
}


class Block(nn.Module):
    """A 3x3 convolution, optional batch norm, the activation; optionally residual."""

    def __init__(self, width: int, activation: str, batch_norm: bool, residual: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.act, self.residual = create_activation(activation), residual
        init_weights(self.conv, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output, the input added when residual."""
        out = self.act(self.norm(self.conv(x)))
        return x + out if self.residual else out


def init_weights(conv: nn.Conv2d, activation: str, scale: float = 1.0) -> None:
    """He initialization for ReLU, Glorot for the others (each one's textbook choice)."""
    if activation == 'relu':
        nn.init.kaiming_normal_(conv.weight, nonlinearity='relu')
    else:
        nn.init.xavier_normal_(conv.weight)
    conv.weight.data.mul_(scale)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def deep_network(depth: int, width: int, activation: str, batch_norm: bool,
                 residual: bool) -> nn.Sequential:
    """Build the experiment's network for 1x28x28 input and 10 classes."""
    stem = nn.Conv2d(1, width, 3, stride=2, padding=1)
    init_weights(stem, activation)
    blocks = [Block(width, activation, batch_norm, residual) for _ in range(depth)]
    if residual and not batch_norm:  # keep the sum's variance bounded (Fixup's 1/sqrt(L))
        for block in blocks:
            block.conv.weight.data.mul_(depth ** -0.5)
    return nn.Sequential(stem, create_activation(activation), *blocks,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def train_arm(arm: str, images: torch.Tensor, labels: torch.Tensor, args) -> dict:
    """Train one arm; returns its per-step losses and per-layer median gradient norms."""
    torch.manual_seed(args.seed)
    model = deep_network(args.depth, args.width, *ARMS[arm])
    layers = weighted_layers(model)
    optimizer = create_optimizer('momentum', model.parameters(), lr=args.lr, momentum=0.9)
    order = torch.Generator().manual_seed(args.seed)
    losses, norms = [], []
    for _ in range(args.steps):
        batch = torch.randint(len(labels), (args.batch_size,), generator=order)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        norms.append([float(weight.grad.norm()) for _, weight in layers])
        optimizer.step()
        losses.append(loss.item())
    per_layer = [statistics.median(step[i] for step in norms) for i in range(len(layers))]
    return {'losses': losses, 'grad_norms': per_layer, 'layers': [n for n, _ in layers]}


def main(argv: list[str]) -> int:
    """Run every arm, print the table, write the JSON and the PNG."""
    parser = experiment_parser('vanishing_gradients', __doc__.split('\n\n')[0])
    parser.add_argument('--depth', type=int, default=20, help='3x3 convolutions after the stem')
    parser.add_argument('--width', type=int, default=16, help='channels of every convolution')
    parser.add_argument('--steps', type=int, default=100, help='SGD steps per arm')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--images', type=int, default=2000, help='training images drawn from')
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--arms', nargs='+', default=list(ARMS), choices=list(ARMS))
    args = parse_options(parser, argv)
    images, labels = fashion_tensors(args.images, args.seed)
    results, rows = {}, []
    for arm in args.arms:
        result = results[arm] = train_arm(arm, images, labels, args)
        first, last = result['grad_norms'][0], result['grad_norms'][-1]
        rows.append({'arm': arm, 'first_layer_grad': first, 'last_layer_grad': last,
                     'first_over_last': first / last if last else float('nan'),
                     'final_loss': sum(result['losses'][-10:]) / len(result['losses'][-10:])})
    figure = Figure(figsize=(10, 4))
    norms_axis, loss_axis = figure.subplots(1, 2)
    for arm, result in results.items():
        norms_axis.semilogy(range(len(result['grad_norms'])), result['grad_norms'], label=arm)
        loss_axis.plot(result['losses'], label=arm)
    norms_axis.set(xlabel='layer (input side = 0)', ylabel='median gradient norm',
                   title=f'gradient norm through depth ({args.depth + 2} layers)')
    loss_axis.set(xlabel='step', ylabel='training loss', title='loss')
    norms_axis.legend(fontsize=7)
    write_outputs(args, ['arm', 'first_layer_grad', 'last_layer_grad', 'first_over_last',
                         'final_loss'], rows, {'arms': results}, figure)
    return 0
