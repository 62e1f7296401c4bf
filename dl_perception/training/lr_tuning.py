"""
The lecture's rule for the learning rate, applied in trials before the first epoch.

"Too high: divide by 10 until the loss decreases consistently; too low: multiply by 2-5."
A *trial* trains ``window`` steps from the starting weights at one rate; ``judge_losses``
compares the mean data loss of the window's second half with its first half's:

- ``diverging``: a loss is not finite (or the divergence watch stopped the trial), or the
  mean rose by at least ``min_decrease`` (a fraction of the first half's mean): divide the
  rate by ``lower_factor``;
- ``decreasing``: the mean fell by at least ``min_decrease``: keep the rate, tuning ends;
- a rise or fall counts only when it is also beyond the noise: more than ``NOISE_SIGMAS`` (3)
  standard errors of the difference of the two means ("consistently", not by a lucky batch);
- otherwise the loss neither fell nor rose enough, and the spread of the window's losses
  (standard deviation / mean) tells why: ``oscillating`` when it is at least ``oscillation``
  (the loss jumps about without going down: too high, divide by ``lower_factor``), ``slow``
  when it is smaller (a smooth crawl: too low, multiply by ``raise_factor``).

Every trial restarts from the same weights, optimizer state and data order. The search never
raises a rate to or above one already judged too high, nor lowers it to or below one judged
too low: it takes the geometric mean of the two instead, so it closes in rather than cycles.
After ``max_trials`` without ``decreasing`` it keeps the largest rate judged ``slow`` (that
one at least did not blow up), else the smallest rate tried.

``tune_run_learning_rate`` applies the rule to a run before its first epoch: every trial
restores the run's starting checkpoint, and the run restarts from it at the chosen rate.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import copy
from dataclasses import asdict
from dataclasses import dataclass
import logging
import math

from dl_perception.training.config import LrTuningConfig
from dl_perception.training.config import MIN_TUNING_WINDOW
from dl_perception.training.distributed import DistributedContext
from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.step import Diverged
import numpy as np

logger = logging.getLogger(__name__)

LOWER, RAISE, KEEP = 'lower', 'raise', 'keep'
# verdict -> what the rule does to the rate
NOISE_SIGMAS = 3.0  # a trend must exceed this many standard errors of the half means
VERDICTS = {'diverging': LOWER, 'oscillating': LOWER, 'slow': RAISE, 'decreasing': KEEP}


@dataclass(frozen=True)
class Judgement:
    """The verdict on one window of losses and the figures it rests on."""

    verdict: str
    first_mean: float
    second_mean: float
    spread: float

    @property
    def action(self) -> str:
        """Return what the rule does to the rate: lower, raise or keep."""
        return VERDICTS[self.verdict]


def judge_losses(losses: Sequence[float], *, min_decrease: float,
                 oscillation: float) -> Judgement:
    """
    Judge the losses of one trial (see the module docstring for the rule).

    :param losses: the data loss of every step of the trial, in order; a trial the
        divergence watch stopped passes a non-finite value.
    :param min_decrease: relative change of the half means that counts as a decrease (or,
        negative, as a rise).
    :param oscillation: relative spread (std / mean) from which a loss that does not
        decrease is oscillating rather than slow.
    :raises ValueError: fewer than ``MIN_TUNING_WINDOW`` finite losses.
    """
    values = np.asarray(losses, dtype=float)
    if not np.all(np.isfinite(values)):
        return Judgement('diverging', math.nan, math.nan, math.nan)
    if len(values) < MIN_TUNING_WINDOW:
        raise ValueError(f'judging a trial needs at least {MIN_TUNING_WINDOW} losses, got '
                         f'{len(values)}')
    half = len(values) // 2
    first, second = float(values[:half].mean()), float(values[half:].mean())
    spread = float(values.std() / max(abs(values.mean()), 1e-12))
    change = (first - second) / max(abs(first), 1e-12)
    rest = len(values) - half
    noise = NOISE_SIGMAS * math.sqrt(values[:half].var() / half + values[half:].var() / rest)
    beyond_noise = abs(first - second) > noise
    if change <= -min_decrease and beyond_noise:
        verdict = 'diverging'
    elif change >= min_decrease and beyond_noise:
        verdict = 'decreasing'
    else:
        verdict = 'oscillating' if spread >= oscillation else 'slow'
    return Judgement(verdict, first, second, spread)


def next_rate(lr: float, action: str, *, too_high: float | None, too_low: float | None,
              raise_factor: float, lower_factor: float) -> float:
    """
    Return the rate of the next trial; never at or past a rate already judged wrong.

    :param too_high: the smallest rate judged too high so far (None: none).
    :param too_low: the largest rate judged too low so far (None: none).
    """
    if action == RAISE:
        candidate = lr * raise_factor
        if too_high is not None and candidate >= too_high:
            candidate = math.sqrt(lr * too_high)
        return candidate
    if action == LOWER:
        candidate = lr / lower_factor
        if too_low is not None and candidate <= too_low:
            candidate = math.sqrt(lr * too_low)
        return candidate
    return lr


def tune_learning_rate(trial: Callable[[float], Sequence[float]], lr: float,
                       rule: LrTuningConfig) -> tuple[float, list[dict]]:
    """
    Search for a rate at which the loss decreases consistently, by the lecture's rule.

    :param trial: runs one trial at a rate from the same start; returns its losses.
    :param lr: the configured starting rate.
    :param rule: the constants of the rule (``enabled`` is not read here).
    :returns: the chosen rate and one record per trial (rate, verdict, half means, spread).
    """
    trials, too_high, too_low = [], None, None
    for _ in range(rule.max_trials):
        judgement = judge_losses(trial(lr), min_decrease=rule.min_decrease,
                                 oscillation=rule.oscillation)
        trials.append({'lr': lr, **asdict(judgement)})
        if judgement.action == KEEP:
            return lr, trials
        if judgement.action == LOWER:
            too_high = lr if too_high is None else min(too_high, lr)
        else:
            too_low = lr if too_low is None else max(too_low, lr)
        lr = next_rate(lr, judgement.action, too_high=too_high, too_low=too_low,
                       raise_factor=rule.raise_factor, lower_factor=rule.lower_factor)
    fallback = too_low if too_low is not None else min(t['lr'] for t in trials)
    return fallback, trials


def tune_run_learning_rate(save: Callable[[], dict], restore: Callable[[dict], None],
                           schedule: LearningRateSchedule, train: Callable[[], list[float]],
                           context: DistributedContext, rule: LrTuningConfig) -> list[dict]:
    """
    Choose a run's starting rate in trials from its current checkpoint, then restart it there.

    :param save: returns the run's checkpoint (a dict); every trial starts from a copy.
    :param restore: loads a checkpoint into the run.
    :param schedule: the run's learning-rate schedule; each trial scales it to its rate.
    :param train: trains one trial's ``rule.window`` steps at the schedule's rate and returns
        their losses; it may raise ``Diverged``.
    :param context: the training processes; every one follows rank 0's verdict.
    :param rule: the constants of the rule.
    :returns: one record per trial, for the run's state.
    """
    start = copy.deepcopy(save())

    def trial(lr: float) -> list[float]:
        restore(copy.deepcopy(start))
        schedule.scale_learning_rate(lr / schedule.lr)
        try:
            losses = train()
        except Diverged:
            losses = [math.inf]
        return context.broadcast(losses)

    lr, trials = tune_learning_rate(trial, schedule.lr, rule)
    restore(copy.deepcopy(start))
    schedule.scale_learning_rate(lr / schedule.lr)
    logger.info('learning-rate tuning: %s -> %.3g', ', '.join(
        f'{t["lr"]:.3g} {t["verdict"]}' for t in trials), lr)
    return trials
