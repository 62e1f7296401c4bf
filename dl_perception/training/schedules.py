"""
Learning-rate schedules by name, each with an optional linear warm-up in front.

Every learning rate is computed from counters (optimizer steps and epochs taken) instead of
from the previous one, so that warm-up composes with every schedule and a schedule restored
from ``state_dict`` continues exactly. Only ``plateau`` keeps more state: its current level
and the bookkeeping of torch's ``ReduceLROnPlateau``, whose semantics it follows.

===========  ==========================================================  ====================
name         lr after warm-up, ``lr0`` the optimizer's lr at the start   moved by
===========  ==========================================================  ====================
constant     ``lr0``                                                     nothing
exponential  ``max(lr0 * decay**t, lr_min)``                             steps or epochs
                                                                         (``per``)
step         ``lr0 * gamma**(e // step_size)``                           epochs
cosine       ``lr_min + (lr0 - lr_min) * (1 + cos(pi * s / S)) / 2``     steps
plateau      ``max(lr * plateau_factor, lr_min)`` once more than         ``val_loss`` of
             ``plateau_patience`` epochs pass without a relative         epochs
             improvement of ``plateau_threshold``
===========  ==========================================================  ====================

``s`` counts the optimizer steps after warm-up and ``S`` is their total; ``e`` counts the
epochs begun after warm-up ended (plateau watches the same epochs). Warm-up takes the first
``W = round(warmup_epochs * steps_per_epoch)`` steps; its k-th step (from 1) uses
``lr0 * k / W``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math

import torch

# Cuts smaller than this are skipped, as torch's ReduceLROnPlateau does with its eps.
_PLATEAU_MIN_CUT = 1e-8


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f'{name} must be {allowed}, got {value!r}')


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class _Config:
    """The settings of one schedule, validated once."""

    name: str
    epochs: int
    steps_per_epoch: int
    decay: float
    lr_min: float
    per: str
    step_size: int
    gamma: float
    plateau_factor: float
    plateau_patience: int
    plateau_threshold: float
    warmup_epochs: float

    def __post_init__(self) -> None:
        _require(self.name in _RULES, 'name', self.name, f'one of {", ".join(SCHEDULE_NAMES)}')
        _require(_is_count(self.epochs, 1), 'epochs', self.epochs, 'an int >= 1')
        _require(_is_count(self.steps_per_epoch, 1), 'steps_per_epoch', self.steps_per_epoch,
                 'an int >= 1')
        _require(0 < self.decay <= 1, 'decay', self.decay, 'in (0, 1]')
        _require(self.lr_min >= 0, 'lr_min', self.lr_min, '>= 0')
        _require(self.per in ('step', 'epoch'), 'per', self.per, "'step' or 'epoch'")
        _require(_is_count(self.step_size, 1), 'step_size', self.step_size, 'an int >= 1')
        _require(0 < self.gamma <= 1, 'gamma', self.gamma, 'in (0, 1]')
        _require(0 < self.plateau_factor < 1, 'plateau_factor', self.plateau_factor, 'in (0, 1)')
        _require(_is_count(self.plateau_patience, 0), 'plateau_patience', self.plateau_patience,
                 'an int >= 0')
        _require(self.plateau_threshold >= 0, 'plateau_threshold', self.plateau_threshold, '>= 0')
        _require(0 <= self.warmup_epochs < self.epochs and self.warmup_steps < self.total_steps,
                 'warmup_epochs', self.warmup_epochs,
                 f'>= 0 and leave steps for the schedule after warm-up ({self.total_steps} '
                 f'steps in {self.epochs} epochs)')

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_epochs * self.steps_per_epoch)

    @property
    def warmup_whole_epochs(self) -> int:
        """Epochs that warm-up touches; ``e`` starts counting after them."""
        return -(-self.warmup_steps // self.steps_per_epoch)


def _exponential(c: _Config, lr0: float, steps: int, epochs: int) -> float:
    return max(lr0 * c.decay ** (steps if c.per == 'step' else epochs), c.lr_min)


def _step(c: _Config, lr0: float, steps: int, epochs: int) -> float:
    return lr0 * c.gamma ** (epochs // c.step_size)


def _cosine(c: _Config, lr0: float, steps: int, epochs: int) -> float:
    span = c.total_steps - c.warmup_steps
    return c.lr_min + (lr0 - c.lr_min) * (1 + math.cos(math.pi * min(steps, span) / span)) / 2


def _level(c: _Config, lr0: float, steps: int, epochs: int) -> float:
    return lr0


# name -> lr as a function of (config, level, steps after warm-up, epochs after warm-up).
# The level is the optimizer's initial lr, which only plateau lowers.
_RULES: dict[str, Callable[[_Config, float, int, int], float]] = {
    'constant': _level,
    'exponential': _exponential,
    'step': _step,
    'cosine': _cosine,
    'plateau': _level,
}

SCHEDULE_NAMES: tuple[str, ...] = tuple(_RULES)


class LearningRateSchedule:
    """
    Set the learning rate of every parameter group of an optimizer, step by step.

    The trainer calls ``step_batch()`` after every optimizer step and ``step_epoch(val_loss)``
    after every epoch; the schedule knows which of those moves it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, *, epochs: int,
                 steps_per_epoch: int, decay: float = 0.95, lr_min: float = 0.0,
                 per: str = 'epoch', step_size: int = 30, gamma: float = 0.1,
                 plateau_factor: float = 0.1, plateau_patience: int = 5,
                 plateau_threshold: float = 1e-4, warmup_epochs: float = 0.0) -> None:
        """
        Take the optimizer's current learning rates as ``lr0`` and set the first step's.

        :param optimizer: the optimizer whose learning rates this schedule owns.
        :param name: one of ``SCHEDULE_NAMES``.
        :param epochs: length of training, >= 1; cosine reaches ``lr_min`` at its end.
        :param steps_per_epoch: optimizer steps per epoch, >= 1.
        :param decay: factor per step or epoch of exponential, in (0, 1].
        :param lr_min: floor of exponential and plateau and end of cosine, in [0, lr0].
        :param per: what exponential counts, ``'step'`` or ``'epoch'``.
        :param step_size: epochs between the cuts of step, >= 1.
        :param gamma: factor of each cut of step, in (0, 1].
        :param plateau_factor: factor of each cut of plateau, in (0, 1).
        :param plateau_patience: epochs without improvement that plateau tolerates, >= 0.
        :param plateau_threshold: relative improvement of val_loss that plateau counts, >= 0.
        :param warmup_epochs: length of the linear warm-up, may be fractional, in [0, epochs).
        :raises ValueError: for an unknown name or a value out of range.
        """
        self._config = _Config(
            name=name, epochs=epochs, steps_per_epoch=steps_per_epoch, decay=decay,
            lr_min=lr_min, per=per, step_size=step_size, gamma=gamma,
            plateau_factor=plateau_factor, plateau_patience=plateau_patience,
            plateau_threshold=plateau_threshold, warmup_epochs=warmup_epochs)
        self._optimizer = optimizer
        self._base_lrs = [float(group['lr']) for group in optimizer.param_groups]
        _require(lr_min <= min(self._base_lrs), 'lr_min', lr_min,
                 f"at most the optimizer's lr ({min(self._base_lrs)})")
        self._levels = list(self._base_lrs)
        self._steps = 0
        self._epochs = 0
        self._best_loss = math.inf
        self._bad_epochs = 0
        self._scale = 1.0
        self._apply()

    @property
    def lr(self) -> float:
        """Return the learning rate of parameter group 0, used by the next optimizer step."""
        return float(self._optimizer.param_groups[0]['lr'])

    def step_batch(self) -> None:
        """Count one optimizer step and set the next step's learning rate."""
        self._steps += 1
        self._apply()

    def step_epoch(self, val_loss: float | None = None) -> None:
        """
        Count one epoch and set the next step's learning rate.

        :param val_loss: the epoch's validation loss; required by plateau, ignored otherwise.
        :raises ValueError: when plateau gets no val_loss.
        """
        config = self._config
        if config.name == 'plateau':
            _require(val_loss is not None, 'val_loss', val_loss, 'a number for plateau')
            if self._epochs >= config.warmup_whole_epochs:
                self._watch_plateau(float(val_loss))
        self._epochs += 1
        self._apply()

    def scale_learning_rate(self, factor: float) -> None:
        """
        Multiply every rate the schedule gives, now and later, floors included, by ``factor``.

        Divergence recovery divides the learning rate by 10 this way: the schedule keeps its
        shape at a lower level.
        :raises ValueError: unless 0 < factor.
        """
        _require(factor > 0, 'factor', factor, '> 0')
        self._scale *= factor
        self._apply()

    def state_dict(self) -> dict:
        """Return the counters and levels, as plain Python values."""
        return {
            'name': self._config.name,
            'steps': self._steps,
            'epochs': self._epochs,
            'base_lrs': list(self._base_lrs),
            'levels': list(self._levels),
            'best_loss': self._best_loss,
            'bad_epochs': self._bad_epochs,
            'scale': self._scale,
        }

    def load_state_dict(self, state: dict) -> None:
        """
        Continue from ``state_dict()`` and set the optimizer's learning rates accordingly.

        :param state: what ``state_dict()`` returned, for a schedule of the same name.
        :raises ValueError: when the state belongs to another schedule or optimizer layout.
        """
        _require(state['name'] == self._config.name, 'state name', state['name'],
                 f'{self._config.name!r}, the name of this schedule')
        groups = len(self._optimizer.param_groups)
        _require(len(state['base_lrs']) == groups, 'number of lrs in the state',
                 len(state['base_lrs']), f"{groups}, the optimizer's parameter groups")
        self._steps = int(state['steps'])
        self._epochs = int(state['epochs'])
        self._base_lrs = [float(lr) for lr in state['base_lrs']]
        self._levels = [float(lr) for lr in state['levels']]
        self._best_loss = float(state['best_loss'])
        self._bad_epochs = int(state['bad_epochs'])
        self._scale = float(state['scale'])
        self._apply()

    def _watch_plateau(self, val_loss: float) -> None:
        """Follow ReduceLROnPlateau(mode='min', threshold_mode='rel', cooldown=0)."""
        config = self._config
        if val_loss < self._best_loss * (1 - config.plateau_threshold):
            self._best_loss = val_loss
            self._bad_epochs = 0
        else:
            self._bad_epochs += 1
        if self._bad_epochs > config.plateau_patience:
            self._bad_epochs = 0
            for i, level in enumerate(self._levels):
                cut = max(level * config.plateau_factor, config.lr_min)
                if level - cut > _PLATEAU_MIN_CUT:
                    self._levels[i] = cut

    def _apply(self) -> None:
        config = self._config
        warmup, steps = config.warmup_steps, self._steps
        epochs = max(0, self._epochs - config.warmup_whole_epochs)
        rule = _RULES[config.name]
        for group, base, level in zip(self._optimizer.param_groups, self._base_lrs, self._levels):
            group['lr'] = self._scale * (base * (steps + 1) / warmup if steps < warmup else
                                         rule(config, level, steps - warmup, epochs))
