"""
Regularizers the trainer applies around the optimizer: penalties, decay, max-norm, early stop.

The penalties, decay and max-norm act on the weights of convolution and linear layers only:
biases and normalization layers set offsets and scales, and shrinking them toward zero buys no
regularization but can hurt the fit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# early-stopping metric -> (the validation column it watches, the EarlyStopping mode)
EARLY_STOPPING_METRICS: dict[str, tuple[str, str]] = {
    'accuracy': ('val_accuracy', 'max'),
    'loss': ('val_loss', 'min'),
}

# Layers whose ``weight`` has one output unit per index of its first dimension.
_WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Return the weights (not biases) of the convolution and linear layers of ``model``."""
    return [module.weight for module in model.modules() if isinstance(module, _WEIGHTED_LAYERS)]


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f'{name} must be {allowed}, got {value!r}')


def weight_penalty(model: nn.Module, *, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """
    Return ``l1 * sum(|w|) + l2 * sum(w**2)`` over the conv and linear weights, to add to the loss.

    The L2 term is the squared norm without a factor 1/2, so its gradient is ``2 * l2 * w``.

    :param model: the model whose weights are penalized.
    :param l1: coefficient of the L1 term, >= 0.
    :param l2: coefficient of the squared L2 term, >= 0.
    :raises ValueError: for a negative or non-finite coefficient.
    :return: a 0-dim tensor that carries gradients to the weights; a constant 0 when both
        coefficients are 0.
    """
    _require(math.isfinite(l1) and l1 >= 0, 'l1', l1, 'a finite number >= 0')
    _require(math.isfinite(l2) and l2 >= 0, 'l2', l2, 'a finite number >= 0')
    terms = []
    for weight in _weights(model):
        if l1:
            terms.append(l1 * weight.abs().sum())
        if l2:
            terms.append(l2 * weight.square().sum())
    # Summed where the weights live; the CPU zero mixes with any device's loss as a scalar.
    return torch.stack(terms).sum() if terms else torch.zeros(())


def decoupled_weight_decay_(model: nn.Module, *, lr: float, weight_decay: float) -> None:
    """
    Shrink the conv and linear weights in place: ``w -= lr * weight_decay * w``.

    This is AdamW's decay (as torch scales it, by lr) for the other optimizers; the trainer
    calls it at every optimizer step.

    :param model: the model whose weights decay.
    :param lr: the learning rate of the step, >= 0 (a schedule may end at 0).
    :param weight_decay: the decay coefficient, >= 0, with ``lr * weight_decay < 1``.
    :raises ValueError: for values out of range.
    """
    _require(math.isfinite(lr) and lr >= 0, 'lr', lr, 'a finite number >= 0')
    _require(weight_decay >= 0 and lr * weight_decay < 1, 'weight_decay', weight_decay,
             f'>= 0 with lr * weight_decay < 1 (lr is {lr})')
    with torch.no_grad():
        for weight in _weights(model):
            weight.mul_(1 - lr * weight_decay)


def apply_max_norm_(model: nn.Module, max_squared_norm: float) -> None:
    """
    Rescale, in place, each output unit's incoming weights whose squared L2 norm exceeds c.

    A unit's incoming weights are a row of a linear weight or an output channel's block of a
    convolution weight. Vectors already inside the ball are left untouched, as max-norm
    constrains rather than shrinks; the trainer calls this after every optimizer step.

    :param model: the model whose weights are constrained.
    :param max_squared_norm: the bound c on each vector's squared L2 norm, > 0.
    :raises ValueError: for a bound that is not a positive finite number.
    """
    _require(math.isfinite(max_squared_norm) and max_squared_norm > 0, 'max_squared_norm',
             max_squared_norm, 'a finite number > 0')
    with torch.no_grad():
        for weight in _weights(model):
            weight.renorm_(2, 0, math.sqrt(max_squared_norm))


class EarlyStopping:
    """
    Stop training once a validation metric has not improved for ``patience`` epochs.

    Keeps a CPU copy of the weights at the best epoch, so that training may run on past it
    and still end with the best model.
    """

    # mode -> sign that turns 'better' into 'larger'
    _SIGNS = {'max': 1.0, 'min': -1.0}

    def __init__(self, *, patience: int, min_delta: float = 0.0, mode: str = 'max') -> None:
        """
        Set the stopping rule.

        :param patience: updates in a row without improvement that stop training, >= 1.
        :param min_delta: amount by which a metric must beat the best to count, >= 0.
        :param mode: ``'max'`` for a metric such as accuracy, ``'min'`` for a loss.
        :raises ValueError: for values out of range or an unknown mode.
        """
        _require(isinstance(patience, int) and not isinstance(patience, bool) and patience >= 1,
                 'patience', patience, 'an int >= 1')
        _require(math.isfinite(min_delta) and min_delta >= 0, 'min_delta', min_delta,
                 'a finite number >= 0')
        _require(mode in self._SIGNS, 'mode', mode, f'one of {", ".join(self._SIGNS)}')
        self._patience = patience
        self._min_delta = min_delta
        self._mode = mode
        self._updates = 0
        self._bad_updates = 0
        self._best_metric: float | None = None
        self._best_epoch = 0
        self._best_weights: dict[str, torch.Tensor] | None = None

    @property
    def best_metric(self) -> float | None:
        """Return the best metric so far, None before the first update."""
        return self._best_metric

    @property
    def best_epoch(self) -> int:
        """Return the number of updates up to and including the best one, 0 before any."""
        return self._best_epoch

    @property
    def should_stop(self) -> bool:
        """Return whether ``patience`` updates in a row brought no improvement."""
        return self._bad_updates >= self._patience

    def update(self, metric: float, model: nn.Module) -> bool:
        """
        Record one epoch's metric, and the model's weights when it is the best so far.

        :param metric: the epoch's validation metric; NaN never counts as an improvement.
        :param model: the model after that epoch.
        :return: whether training should stop.
        """
        metric = float(metric)
        self._updates += 1
        sign = self._SIGNS[self._mode]
        if self._best_metric is None or sign * (metric - self._best_metric) > self._min_delta:
            self._best_metric = metric
            self._best_epoch = self._updates
            self._bad_updates = 0
            self._best_weights = {name: value.detach().to('cpu', copy=True)
                                  for name, value in model.state_dict().items()}
        else:
            self._bad_updates += 1
        return self.should_stop

    def restore_best(self, model: nn.Module) -> None:
        """
        Load the weights of the best epoch back into ``model``, on the model's device.

        :raises RuntimeError: before the first update, when there is nothing to restore.
        """
        if self._best_weights is None:
            raise RuntimeError('restore_best() needs at least one update() first')
        model.load_state_dict(self._best_weights)

    def state_dict(self) -> dict:
        """Return the progress and the best weights, loadable with ``weights_only=True``."""
        return {
            'mode': self._mode,
            'updates': self._updates,
            'bad_updates': self._bad_updates,
            'best_metric': self._best_metric,
            'best_epoch': self._best_epoch,
            'best_weights': self._best_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        """
        Continue from ``state_dict()``.

        :raises ValueError: when the state was saved in another mode.
        """
        _require(state['mode'] == self._mode, 'state mode', state['mode'],
                 f'{self._mode!r}, the mode of this EarlyStopping')
        self._updates = int(state['updates'])
        self._bad_updates = int(state['bad_updates'])
        self._best_metric = state['best_metric']
        self._best_epoch = int(state['best_epoch'])
        self._best_weights = state['best_weights']
