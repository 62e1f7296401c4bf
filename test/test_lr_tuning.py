"""The lecture's learning-rate rule: verdicts on loss sequences, the search, real runs."""

from __future__ import annotations

import math
from pathlib import Path

from dl_perception.training.config import LrTuningConfig
from dl_perception.training.config import parse_config
from dl_perception.training.lr_tuning import judge_losses
from dl_perception.training.lr_tuning import next_rate
from dl_perception.training.lr_tuning import tune_learning_rate
from dl_perception.training.trainer import Trainer
import numpy as np
import pytest

RULE = LrTuningConfig(enabled=True, window=40, min_decrease=0.05, oscillation=0.1,
                      raise_factor=3.0, lower_factor=10.0, max_trials=8)


def verdict(losses) -> str:
    return judge_losses(losses, min_decrease=RULE.min_decrease,
                        oscillation=RULE.oscillation).verdict


def noisy(levels, noise: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.asarray(levels) * (1 + noise * rng.standard_normal(len(levels))))


def test_a_consistent_decrease_keeps_the_rate():
    assert verdict(noisy(np.linspace(2.3, 0.9, 40), 0.05)) == 'decreasing'


def test_a_slow_smooth_decrease_is_too_low():
    assert verdict(noisy(np.linspace(2.30, 2.25, 40), 0.01)) == 'slow'


def test_a_loss_that_jumps_about_without_decreasing_is_oscillating():
    assert verdict([2.3 + 0.8 * (-1) ** i for i in range(40)]) == 'oscillating'


@pytest.mark.parametrize('seed', range(20))
def test_noise_alone_is_never_a_trend(seed):
    """Half means of a noisy flat loss differ by chance; that is oscillation, not a trend."""
    assert verdict(noisy(np.full(40, 2.3), 0.3, seed)) == 'oscillating'


@pytest.mark.parametrize('losses', [
    list(np.linspace(2.3, 4.0, 40)), [2.3] * 10 + [math.nan], [2.3, 2.2, math.inf, 2.0],
    [math.inf]])
def test_a_rising_or_non_finite_loss_is_diverging(losses):
    assert verdict(losses) == 'diverging'


def test_a_window_too_short_to_judge_is_an_error():
    with pytest.raises(ValueError, match='at least 4 losses, got 3'):
        verdict([2.3, 2.2, 2.1])


def test_the_next_rate_never_reaches_a_rate_already_judged_wrong():
    assert next_rate(0.01, 'raise', too_high=None, too_low=None, raise_factor=3,
                     lower_factor=10) == pytest.approx(0.03)
    assert next_rate(0.1, 'lower', too_high=0.1, too_low=None, raise_factor=3,
                     lower_factor=10) == pytest.approx(0.01)
    assert next_rate(0.01, 'raise', too_high=0.02, too_low=0.01, raise_factor=3,
                     lower_factor=10) == pytest.approx(math.sqrt(0.01 * 0.02))
    assert next_rate(0.1, 'lower', too_high=0.1, too_low=0.03, raise_factor=3,
                     lower_factor=10) == pytest.approx(math.sqrt(0.1 * 0.03))
    assert next_rate(0.1, 'keep', too_high=None, too_low=None, raise_factor=3,
                     lower_factor=10) == 0.1


def landscape(lr: float) -> list[float]:
    """Loss sequences of a made-up network whose good rates are 0.01-0.1."""
    if lr > 0.1:
        return list(np.linspace(2.3, 9.0, 40))
    if lr < 0.01:
        return list(np.linspace(2.3, 2.3 * (1 - lr), 40))
    return list(np.linspace(2.3, 1.0, 40))


@pytest.mark.parametrize('start, expected', [
    (1e-4, [1e-4, 3e-4, 9e-4, 2.7e-3, 8.1e-3, 2.43e-2]), (30.0, [30.0, 3.0, 0.3, 0.03])])
def test_the_search_follows_the_lecture_from_both_sides(start, expected):
    lr, trials = tune_learning_rate(landscape, start, RULE)
    assert [t['lr'] for t in trials] == pytest.approx(expected)
    assert lr == pytest.approx(expected[-1])
    assert [t['verdict'] for t in trials][-1] == 'decreasing'


def test_the_search_gives_up_on_the_largest_slow_rate():
    rule = LrTuningConfig(enabled=True, max_trials=3)
    lr, trials = tune_learning_rate(lambda lr: list(np.linspace(2.3, 2.29, 40)), 1e-3, rule)
    assert [t['verdict'] for t in trials] == ['slow'] * 3
    assert lr == pytest.approx(9e-3)


@pytest.mark.parametrize('override, message', [
    ('lr_tuning.window=3', 'lr_tuning.window = 3 is out of range'),
    ('lr_tuning.min_decrease=1.0', 'lr_tuning.min_decrease = 1.0 is out of range'),
    ('lr_tuning.raise_factor=1', 'lr_tuning.raise_factor = 1.0 is out of range'),
    ('lr_tuning.lower_factor=0.5', 'lr_tuning.lower_factor = 0.5 is out of range'),
    ('lr_tuning.oscillation=0', 'lr_tuning.oscillation = 0.0 is out of range'),
    ('lr_tuning.max_trials=0', 'lr_tuning.max_trials = 0 is out of range'),
    ('lr_tuning.windows=3', 'unknown config key lr_tuning.windows'),
])
def test_bad_tuning_keys_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        parse_config(None, [override])


@pytest.mark.parametrize('override', ['schedule.warmup_epochs=1', 'optimizer.name=gd'])
def test_tuning_refuses_what_would_change_the_rate_it_judges(override):
    with pytest.raises(ValueError, match='lr_tuning.enabled'):
        parse_config(None, ['lr_tuning.enabled=true', override])


# LeNet on 4,000 Fashion-MNIST images, 60-step trials (about one epoch each).
PLANTED = ['model.name=lenet', 'data.train_subset=4000', 'data.test_subset=500',
           'data.workers=0', 'data.batch_size=64', 'optimizer.name=momentum',
           'progress=false', 'seed=0', 'epochs=1', 'lr_tuning.enabled=true']


def planted_run(tmp_path: Path, lr: float) -> dict:
    config = parse_config(None, [*PLANTED, f'optimizer.lr={lr}', f'output_dir={tmp_path}',
                                 'run_name=planted'])
    return Trainer(config, tmp_path / 'planted').fit()


def test_a_planted_too_low_rate_is_raised_until_the_loss_decreases(tmp_path):
    summary = planted_run(tmp_path, 1e-4)
    trials = summary['lr_tuning']
    assert [t['verdict'] for t in trials[:-1]] == ['slow'] * (len(trials) - 1)
    assert trials[-1]['verdict'] == 'decreasing'
    assert trials[-1]['lr'] >= 30 * 1e-4
    assert summary['dead_model'] is None  # at 1e-4 one epoch learns nothing
    assert summary['test_accuracy'] > 0.4


def test_a_planted_too_high_rate_is_divided_until_the_loss_decreases(tmp_path):
    summary = planted_run(tmp_path, 3.0)
    verdicts = [t['verdict'] for t in summary['lr_tuning']]
    # 0.3 bounces about without decreasing: the divergence watch does not stop it
    assert verdicts == ['diverging', 'oscillating', 'decreasing']
    assert summary['lr_tuning'][-1]['lr'] == pytest.approx(0.03)
    assert summary['divergence_events'] == []
    assert summary['test_accuracy'] > 0.4
