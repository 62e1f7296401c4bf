"""
Divergence recovery: roll back to the last epoch start proven good, at a tenth of the rate.

Dividing the learning rate by 10 and retrying from the start of the epoch helps only when the
weights the epoch started from are still good: the retried epoch's first loss is computed on
exactly those weights and that batch (the data order is fixed by seed and epoch), so if they
are already bad it blows up again at every smaller rate. An epoch start is *good* when the
first loss measured on it is finite and not above the run's first loss (training from there
has not made things worse than the initial weights). Each epoch start is kept; the latest
good one is kept too, and a divergence whose epoch began on bad weights rolls back to it,
re-running the epochs after it at the lower rate.

``DivergenceRecovery`` runs that for the trainer: it keeps the rollback points, retries a
diverged epoch, and rewrites the run folder when a rollback discards committed epochs.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from dataclasses import dataclass
import logging
import math
from pathlib import Path

from dl_perception.training.checkpoint import checkpoint_bytes
from dl_perception.training.distributed import DistributedContext
from dl_perception.training.run_records import commit_files
from dl_perception.training.run_records import metrics_csv_text
from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.step import Diverged
from dl_perception.training.step import EpochRecord

logger = logging.getLogger(__name__)

ROLLBACK_FILES = ('last.pt', 'best.pt', 'metrics.csv')


def start_is_good(start_loss: float | None, reference_loss: float | None) -> bool:
    """
    Return whether an epoch's first loss shows that the weights it started from are good.

    :param start_loss: the first loss of the epoch, before any of its updates.
    :param reference_loss: the run's first finite loss (None before any: the very start).
    """
    if start_loss is None or not math.isfinite(start_loss):
        return False
    return reference_loss is None or start_loss <= reference_loss


@dataclass
class RollbackPoint:
    """A trainer checkpoint (as a dict) and the bytes of best.pt at that moment, if any."""

    checkpoint: dict
    best_bytes: bytes | None

    @property
    def epoch(self) -> int:
        """Return the number of epochs finished at this point."""
        return self.checkpoint['epoch']


class RollbackPoints:
    """The current epoch's start and the last start proven good."""

    def __init__(self) -> None:
        self.current: RollbackPoint | None = None
        self.good: RollbackPoint | None = None
        self._best_bytes: bytes | None = None
        self._best_known = False

    def best_written(self, data: bytes | None) -> None:
        """Note what best.pt now holds (None: no best.pt), so no epoch has to read it back."""
        self._best_bytes, self._best_known = data, True

    def begin_epoch(self, checkpoint: dict, run_dir: Path) -> None:
        """Keep the start of the epoch about to run (a deep copy of the checkpoint)."""
        if not self._best_known:  # a resumed run: best.pt is read once
            best = run_dir / 'best.pt'
            self.best_written(best.read_bytes() if best.is_file() else None)
        self.current = RollbackPoint(checkpoint, self._best_bytes)

    def epoch_finished(self, start_good: bool) -> None:
        """Mark the finished epoch's start as the last good one when its first loss proved it."""
        if start_good:
            self.good = self.current

    def target(self, start_good: bool) -> RollbackPoint:
        """Return where to roll back to after a divergence of the current epoch."""
        return self.current if start_good or self.good is None else self.good


def rewrite_run_files(run_dir: Path, point: RollbackPoint) -> None:
    """
    Make the run folder hold ``point`` again after a rollback past committed epochs.

    At epoch 0 nothing good was committed: the epoch files are removed (resume then refuses,
    as for a run killed in its first epoch); otherwise last.pt, best.pt and metrics.csv are
    rewritten as one commit.
    """
    if point.epoch == 0:
        for name in ROLLBACK_FILES:
            (run_dir / name).unlink(missing_ok=True)
        return
    files = {'last.pt': checkpoint_bytes(point.checkpoint),
             'metrics.csv': metrics_csv_text(point.checkpoint['state']['history']).encode()}
    if point.best_bytes is not None:
        files['best.pt'] = point.best_bytes
    commit_files(run_dir, files)


class DivergenceError(RuntimeError):
    """Training kept diverging after every allowed rollback."""


class DivergenceRecovery:
    """
    Train a run's epochs, rolling back and dividing the learning rate by 10 after a divergence.

    It reaches the run only through what it is given: ``save()`` returns the run's checkpoint
    (it keeps a deep copy), ``restore(checkpoint)`` loads one into the run, and ``schedule`` is
    the run's learning-rate schedule. A try that diverged added nothing to the run's state, so
    a rollback reads that state from the checkpoint saved at the start of the try.
    """

    def __init__(self, run_dir: Path, context: DistributedContext, max_retries: int, *,
                 save: Callable[[], dict], restore: Callable[[dict], None],
                 schedule: LearningRateSchedule) -> None:
        self.run_dir, self.context, self.max_retries = run_dir, context, max_retries
        self.save, self.restore, self.schedule = save, restore, schedule
        self.points = RollbackPoints()

    def train_epoch(self, train: Callable[[int], EpochRecord]) -> EpochRecord:
        """
        Train the run's next epoch with ``train(epoch)``, trying again after each rollback.

        A rollback may go back epochs: the epoch that finishes is then an earlier one.

        :returns: the record of the try that finished.
        :raises DivergenceError: the run diverged more often than ``max_retries`` allows.
        """
        while True:
            self.points.begin_epoch(copy.deepcopy(self.save()), self.run_dir)
            try:
                record = train(self.points.current.epoch)
            except Diverged as event:
                self._roll_back(event)
                continue
            self.points.epoch_finished(
                self._start_was_good(record.start_loss, record.reference_loss))
            return record

    def _start_was_good(self, start_loss: float | None, reference_loss: float | None) -> bool:
        """Return whether every process found the epoch's starting weights good."""
        return not self.context.any_rank(not start_is_good(start_loss, reference_loss))

    def _roll_back(self, event: Diverged) -> None:
        """
        Roll back to the last good epoch start and divide the learning rate by 10.

        That is the start of this epoch unless its first loss showed the weights it started
        from were already bad; then the epochs since the last good start are discarded and run
        again.
        """
        state = self.points.current.checkpoint['state']
        initial_loss = state['reference_loss']
        point = self.points.target(self._start_was_good(event.start_loss, initial_loss))
        events = state['divergence_events'] + [
            {'step': event.step, 'loss': event.loss, 'lr': self.schedule.lr,
             'rolled_back_to_epoch': point.epoch}]
        if len(events) > self.max_retries:
            raise DivergenceError(
                f'training diverged {len(events)} times (loss {event.loss:.4g} at step '
                f'{event.step}, lr {self.schedule.lr:.3g}) and {self.max_retries} rollbacks '
                f'are allowed; start from a smaller optimizer.lr (dl-perception lr-find '
                f'suggests one)')
        discarded = self.points.current.epoch - point.epoch
        restored = copy.deepcopy(point.checkpoint)
        restored['state']['divergence_events'] = events
        self.restore(restored)
        if discarded and self.context.is_main:
            rewrite_run_files(self.run_dir, point)
            self.points.best_written(point.best_bytes if point.epoch else None)
        self.schedule.scale_learning_rate(0.1)
        where = (f'the start of epoch {point.epoch + 1} (discarding {discarded} epoch(s): the '
                 f'epoch started on weights whose loss {event.start_loss:.4g} was already above '
                 f'the initial {initial_loss:.4g})' if discarded
                 else 'the start of the epoch')
        logger.warning('loss diverged (%.4g at step %d): rolled back to %s and divided the '
                       'learning rate by 10 (now %.3g); rollback %d of %d', event.loss,
                       event.step, where, self.schedule.lr, len(events), self.max_retries)
