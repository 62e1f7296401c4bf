"""
What a run's records say about it: its best epoch, whether best.pt holds it, whether it learned.

The trainer asks at the end of every epoch whether it is the new best, on resume whether
best.pt still holds the best epoch, and at the end of the run whether the model is dead. The
answers read only the run's records (``RunState`` as a dict) and files, never a model.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.run_records import write_bytes_atomic
import numpy as np

logger = logging.getLogger(__name__)


def chance_accuracy(labels: np.ndarray) -> float:
    """
    Return the accuracy of always answering the most common class.

    :param labels: class indices, shape (N,), an integer dtype.
    """
    return float(np.bincount(labels).max()) / max(len(labels), 1)


def dead_model_reason(history: list[dict], reference_loss: float | None, chance: float,
                      val_count: int) -> str | None:
    """
    Say why a finished run's model is dead, or return None when it learned something.

    Dead: the final validation accuracy is within two standard errors of chance (the share
    of the most common validation class), or the training loss never fell below its first
    value.

    :param history: the per-epoch records of the run (``train_loss``, ``val_accuracy``).
    :param reference_loss: the first finite training loss of the run.
    :param chance: accuracy of always answering the most common validation class.
    :param val_count: number of validation images.
    """
    final = history[-1]['val_accuracy']
    margin = 2 * math.sqrt(chance * (1 - chance) / max(val_count, 1))
    if final <= chance + margin:
        return (f'the final validation accuracy {final:.4f} is at chance level (always '
                f'answering the most common class scores {chance:.4f}): the model learned '
                f'nothing; try a smaller optimizer.lr (dl-perception lr-find suggests one)')
    lowest = min(row['train_loss'] for row in history)
    if reference_loss is not None and lowest >= reference_loss:
        return (f'the training loss never fell below its start ({reference_loss:.4g}; lowest '
                f'epoch mean {lowest:.4g}): the model learned nothing')
    return None


def best_epoch_of(state: dict) -> int | None:
    """Return the epoch best.pt must hold (from history for runs older than best_epoch)."""
    if state.get('best_epoch') is not None:
        return state['best_epoch']
    best = state['best_val_accuracy']
    return next((row['epoch'] for row in state['history'] if row['val_accuracy'] == best),
                None)


def is_new_best(value: float, state: dict, metric: str, mode: str) -> bool:
    """
    Return whether an epoch's ``value`` of the watched metric beats the run's best epoch.

    Any improvement counts, and the first epoch always does (there is no best yet).

    :param state: the run's records (``RunState`` as a dict).
    :param metric: the watched column of the history (``val_accuracy`` or ``val_loss``).
    :param mode: ``max`` when higher is better, ``min`` when lower is.
    """
    best_epoch = best_epoch_of(state)
    best = next((row[metric] for row in state['history'] if row['epoch'] == best_epoch), None)
    return best is None or (value > best if mode == 'max' else value < best)


def check_best_checkpoint(run_dir: Path, last: dict) -> None:
    """
    Make sure ``best.pt`` holds the run's best epoch; repair it when that is the last epoch.

    A run folder left half-written (by a crash under an older version) may lack best.pt or
    hold a stale one. When the best epoch is the last one, last.pt holds the very same
    checkpoint and is copied; otherwise the best weights are lost and resuming is refused.

    :raises ValueError: best.pt does not hold the best epoch and cannot be rebuilt.
    """
    best_epoch = best_epoch_of(last['state'])
    if best_epoch is None:
        return
    path = run_dir / 'best.pt'
    held, problem = None, 'is missing'
    if path.is_file():
        try:
            held = load_checkpoint(path)['epoch']
            problem = f'holds epoch {held}'
        except ValueError as error:
            problem = f'is unusable ({error})'
    if held == best_epoch:
        return
    if best_epoch == last['epoch']:
        write_bytes_atomic(path, (run_dir / 'last.pt').read_bytes())
        logger.warning('%s %s but the best epoch is %d, the last one: rebuilt it from last.pt',
                       path, problem, best_epoch)
        return
    raise ValueError(f'{path} {problem}, but the best of the run is epoch {best_epoch} of '
                     f'{last["epoch"]}: the folder was left half-written and those weights are '
                     f'lost; start the run again')
