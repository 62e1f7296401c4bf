"""
PNG figures of a run: learning curves, learning rate, confusion matrix, gradient norms.

Matplotlib runs headless (Agg); every function writes one file and closes its figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402,I100


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_curves(history: Sequence[dict], path: Path) -> None:
    """Loss and accuracy per epoch, training and validation side by side."""
    epochs = [row['epoch'] for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ('train', 'val'):
        loss_axis.plot(epochs, [row[f'{split}_loss'] for row in history], marker='o',
                       label=split)
        accuracy_axis.plot(epochs, [row[f'{split}_accuracy'] for row in history], marker='o',
                           label=split)
    loss_axis.set(xlabel='epoch', ylabel='cross-entropy loss', title='loss')
    accuracy_axis.set(xlabel='epoch', ylabel='top-1 accuracy', title='accuracy')
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    _save(figure, path)


def plot_learning_rate(steps: Sequence[int], rates: Sequence[float], path: Path) -> None:
    """Learning rate against optimizer step (log scale)."""
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(steps, rates)
    axis.set(xlabel='optimizer step', ylabel='learning rate', yscale='log',
             title='learning-rate schedule')
    axis.grid(alpha=0.3)
    _save(figure, path)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path,
                   title: str) -> None:
    """Confusion matrix, rows = true class, columns = predicted, cells = row fraction."""
    totals = confusion.sum(axis=1, keepdims=True)
    fractions = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    size = max(5.0, 0.55 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(fractions, cmap='Blues', vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha='right')
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel='predicted', ylabel='true', title=title)
    if len(classes) <= 20:
        for (row, column), count in np.ndenumerate(confusion):
            color = 'white' if fractions[row, column] > 0.5 else 'black'
            axis.text(column, row, str(count), ha='center', va='center', fontsize=7, color=color)
    figure.colorbar(image, ax=axis, fraction=0.046)
    _save(figure, path)


def plot_gradient_norms(steps: Sequence[int], layers: Sequence[str],
                        norms: Sequence[Sequence[float]], path: Path) -> None:
    """
    Draw the vanishing-gradient view: each layer's gradient norm over training and by depth.

    ``norms[i][j]`` is the gradient norm of ``layers[j]`` at ``steps[i]``; layers are ordered
    from input to output. Left: one line per layer over training (darker = deeper). Right: the
    median norm of each layer against its depth.
    """
    values = np.maximum(np.asarray(norms, np.float64), 1e-30)
    figure, (time_axis, depth_axis) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.cm.viridis(np.linspace(0, 1, len(layers)))
    for column, (name, colour) in enumerate(zip(layers, colours)):
        time_axis.plot(steps, values[:, column], color=colour, linewidth=1,
                       label=name if column in (0, len(layers) - 1) else None)
    time_axis.set(xlabel='optimizer step', ylabel='gradient L2 norm', yscale='log',
                  title='per-layer gradient norm (dark: input side)')
    time_axis.legend(fontsize=7)
    depth_axis.plot(range(len(layers)), np.median(values, axis=0), marker='o')
    depth_axis.set(xlabel='layer (input -> output)', ylabel='median gradient norm',
                   yscale='log', title='gradient norm by depth')
    for axis in (time_axis, depth_axis):
        axis.grid(alpha=0.3, which='both')
    _save(figure, path)


def plot_lr_range_test(rates: Sequence[float], losses: Sequence[float], suggestion: float,
                       path: Path) -> None:
    """Smoothed loss against learning rate, with the suggested rate marked."""
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(rates, losses)
    axis.axvline(suggestion, color='red', linestyle='--', label=f'suggested {suggestion:.2g}')
    axis.set(xlabel='learning rate', ylabel='smoothed training loss', xscale='log',
             title='learning-rate range test')
    axis.grid(alpha=0.3, which='both')
    axis.legend()
    _save(figure, path)
