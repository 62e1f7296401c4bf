"""The lecture experiments run at a tiny size: table, JSON and PNG with every arm."""

from __future__ import annotations

import json
from pathlib import Path
import sys

from paths import REPO_ROOT
import pytest
import torch

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.__main__ import main as run_benchmark  # noqa: E402, I100

pytestmark = pytest.mark.slow

TINY = {  # experiment -> (tiny options, the arms its table must hold, the column naming them)
    'vanishing_gradients': (['--steps', '3', '--images', '256'],
                            ['sigmoid', 'sigmoid+bn', 'sigmoid+residual', 'relu', 'relu+bn',
                             'relu+residual', 'relu+bn+residual'], 'arm'),
    'optimizers': (['--images', '200', '--epochs', '1'],
                   ['gd', 'sgd', 'minibatch_sgd', 'momentum', 'adagrad', 'rmsprop', 'adam'],
                   'arm'),
    'adam_vs_sgd': (['--models', 'vgg11', 'alexnet', '--images', '64', '--epochs', '1',
                     '--val-fraction', '0.002'], ['adam', 'sgd+cosine'] * 2, 'arm'),
    'lr_tuning': (['--images', '1000', '--epochs', '1'], ['on', 'off'] * 2, 'tuning'),
    'regularization': (['--images', '100', '--epochs', '2'],
                       ['none', 'l1', 'l2', 'max_norm', 'dropout', 'early_stopping'], 'arm'),
}


def run(name: str, output: Path) -> dict:
    options, _, _ = TINY[name]
    threads = torch.get_num_threads()
    try:
        assert run_benchmark([f'lecture.{name}', *options, '--output', str(output)]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads applies to the whole process
    for suffix in ('txt', 'json', 'png'):
        assert (output / f'{name}.{suffix}').stat().st_size > 0
    return json.loads((output / f'{name}.json').read_text())


@pytest.mark.parametrize('name', sorted(TINY))
def test_an_experiment_reports_every_arm(name, tmp_path):
    result = run(name, tmp_path)
    _, arms, column = TINY[name]
    assert [row[column] for row in result['rows']] == arms
    assert result['machine']['cores'] >= 1
    table = (tmp_path / f'{name}.txt').read_text()
    assert all(f'| {arm} |' in table for arm in arms)
    if name == 'vanishing_gradients':  # robust even at 3 steps: measured ~1e-14 against ~0.3
        first = {row['arm']: row['first_layer_grad'] for row in result['rows']}
        assert first['sigmoid'] < 1e-6 * first['relu+bn']
        assert first['sigmoid'] < 1e-3 * first['sigmoid+bn']
    if name == 'lr_tuning':  # the first verdict follows from the planted rate
        trials = [run['trials'] for run in result['runs'].values()]
        assert trials[0][0]['verdict'] == 'slow' and trials[2][0]['verdict'] == 'diverging'
        assert trials[1] == trials[3] == []
