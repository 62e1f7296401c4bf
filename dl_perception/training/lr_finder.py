"""
The learning-rate range test: raise the rate exponentially over a few hundred steps.

The loss first falls, then explodes; a good starting rate lies where it falls fastest.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import math

from dl_perception.training.trainer import Trainer
import numpy as np

SMOOTHING = 0.05
EXPLODE_FACTOR = 4.0


@dataclass
class RangeTest:
    """Learning rates tried, the smoothed loss at each, and the suggested rate."""

    rates: list[float]
    losses: list[float]
    suggestion: float


def suggest_rate(rates: list[float], losses: list[float]) -> float:
    """Return the rate where the smoothed loss falls fastest per decade of rate."""
    if len(rates) < 5:
        raise ValueError(f'the range test stopped after {len(rates)} steps; widen the range '
                         f'or lower lr_min')
    slopes = np.gradient(np.asarray(losses), np.log10(np.asarray(rates)))
    usable = slice(1, max(2, len(rates) - 2))
    return float(rates[int(np.argmin(slopes[usable])) + usable.start])


def run_range_test(trainer: Trainer, lr_min: float, lr_max: float, steps: int) -> RangeTest:
    """Train the trainer's fresh model for up to ``steps`` steps at rising rates."""
    if not 0 < lr_min < lr_max:
        raise ValueError(f'need 0 < lr_min < lr_max, got {lr_min} and {lr_max}')
    if steps < 5:
        raise ValueError(f'steps must be at least 5, got {steps}')
    trainer.model.train()
    batches = itertools.chain.from_iterable(trainer.train_loader(e) for e in itertools.count())
    rates, losses = [], []
    average, best = 0.0, math.inf
    for step, (images, targets) in zip(range(steps), batches):
        rate = lr_min * (lr_max / lr_min) ** (step / (steps - 1))
        for group in trainer.optimizer.param_groups:
            group['lr'] = rate
        _, loss = trainer.forward(images, targets)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        value = float(loss)
        average = SMOOTHING * value + (1 - SMOOTHING) * average
        smoothed = average / (1 - (1 - SMOOTHING) ** (step + 1))
        if not math.isfinite(smoothed) or smoothed > EXPLODE_FACTOR * best:
            break
        best = min(best, smoothed)
        rates.append(rate)
        losses.append(smoothed)
    return RangeTest(rates, losses, suggest_rate(rates, losses))
