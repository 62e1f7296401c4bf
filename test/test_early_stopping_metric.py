"""Early stopping and best.pt watch validation accuracy or loss, as the config chooses."""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.config import parse_config
from dl_perception.training.config import RegularizationConfig
from dl_perception.training.regularization import EARLY_STOPPING_METRICS
from dl_perception.training.trainer import Trainer
import pytest
import torch

TINY_RUN = [
    'model.name=lenet', 'data.train_subset=600', 'data.test_subset=64', 'data.workers=0',
    'data.val_fraction=0.01', 'data.batch_size=64', 'progress=false', 'seed=1',
]
# Three epochs on which the two metrics disagree: loss is best at 2, accuracy at 3.
RECORDS = [{'epoch': 1, 'val_loss': 1.0, 'val_accuracy': 0.50},
           {'epoch': 2, 'val_loss': 0.8, 'val_accuracy': 0.40},
           {'epoch': 3, 'val_loss': 0.9, 'val_accuracy': 0.60}]


def config(tmp_path: Path, *extra: str):
    return parse_config(None, [*TINY_RUN, f'output_dir={tmp_path}', *extra])


def judge_all(trainer: Trainer) -> list[tuple[bool, bool]]:
    """Feed RECORDS to the trainer's judgement as the end of each epoch does."""
    verdicts = []
    for record in RECORDS:
        trainer.state.history.append(record)
        verdicts.append(trainer._judge(record['epoch'], record))
    return verdicts


def test_config_choices_are_the_metric_table():
    item = next(f for f in fields(RegularizationConfig) if f.name == 'early_stopping_metric')
    assert item.metadata['choices'] == tuple(EARLY_STOPPING_METRICS) == ('accuracy', 'loss')
    assert RegularizationConfig().early_stopping_metric == 'accuracy'
    with pytest.raises(ValueError, match="regularization.early_stopping_metric = 'error' is "
                                         'not allowed; choose one of: accuracy, loss'):
        parse_config(None, ['regularization.early_stopping_metric=error'])


@pytest.mark.parametrize('metric, patience, verdicts, best_epoch, best_accuracy', [
    ('loss', None, [(False, True), (False, True), (False, False)], 2, 0.40),
    ('accuracy', None, [(False, True), (False, False), (False, True)], 3, 0.60),
    ('loss', 1, [(False, True), (False, True), (True, False)], 2, 0.40),
    ('accuracy', 1, [(False, True), (True, False), (False, True)], 3, 0.60),
])
def test_best_epoch_and_stop_follow_the_watched_metric(tmp_path, metric, patience, verdicts,
                                                       best_epoch, best_accuracy):
    extra = [f'regularization.early_stopping_metric={metric}']
    if patience:
        extra.append(f'regularization.early_stopping_patience={patience}')
    trainer = Trainer(config(tmp_path, *extra), tmp_path / 'judge')
    assert judge_all(trainer) == verdicts
    assert trainer.state.best_epoch == best_epoch
    assert trainer.state.best_val_accuracy == best_accuracy


def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / 'metrics.csv') as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def test_a_real_run_keeps_the_lowest_validation_loss_and_stops_on_it(tmp_path):
    run = config(tmp_path, 'epochs=4', 'optimizer.lr=0.1', 'run_name=loss',
                 'regularization.early_stopping_metric=loss',
                 'regularization.early_stopping_patience=1')
    trainer = Trainer(run, tmp_path / 'loss')
    summary = trainer.fit()
    rows = read_metrics(tmp_path / 'loss')
    losses = [row['val_loss'] for row in rows]
    best = losses.index(min(losses)) + 1
    assert load_checkpoint(tmp_path / 'loss' / 'best.pt')['epoch'] == best
    assert summary['best_epoch'] == best and summary['best_by'] == 'loss'
    assert summary['best_val_accuracy'] == rows[best - 1]['val_accuracy']
    # it stops exactly `patience` epochs after the best, or runs to the end
    assert len(rows) == (best + 1 if summary['stopped_early'] else 4)
    final = trainer.model.state_dict()
    best_weights = load_checkpoint(tmp_path / 'loss' / 'best.pt')['model']
    assert all(torch.equal(final[k], best_weights[k]) for k in final)
