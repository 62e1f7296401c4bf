"""A rollback after divergence must start from weights that can still learn."""

from __future__ import annotations

from pathlib import Path

from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.config import parse_config
from dl_perception.training.trainer import Trainer

# LeNet at lr 0.3 on 630 images (10 steps an epoch): epoch 1 ends on weights whose loss is
# five times the initial one, and the first loss of epoch 2 blows up on those very weights.
# Rolling back to the start of epoch 2 replays that loss at every smaller rate.
BAD_EPOCH_START = [
    'model.name=lenet', 'data.train_subset=700', 'data.test_subset=500', 'data.workers=0',
    'data.val_fraction=0.1', 'data.batch_size=64', 'optimizer.name=momentum',
    'optimizer.lr=0.3', 'progress=false', 'seed=1', 'epochs=3',
]


def test_a_bad_epoch_start_rolls_back_to_the_last_good_weights(tmp_path: Path):
    config = parse_config(None, [*BAD_EPOCH_START, f'output_dir={tmp_path}', 'run_name=r'])
    summary = Trainer(config, tmp_path / 'r').fit()
    events = summary['divergence_events']
    assert len(events) == 1, events  # one rollback, to the start of training, was enough
    assert events[0]['lr'] == 0.3
    assert events[0]['rolled_back_to_epoch'] == 0
    assert summary['epochs_run'] == 3
    assert summary['test_accuracy'] > 0.3  # at lr 0.03 it learned (chance: 0.1)
    last = load_checkpoint(tmp_path / 'r' / 'last.pt')
    assert [row['epoch'] for row in last['state']['history']] == [1, 2, 3]
    assert load_checkpoint(tmp_path / 'r' / 'best.pt')['epoch'] == summary['best_epoch']
