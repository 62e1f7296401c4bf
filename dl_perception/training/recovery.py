"""
Where a divergence rollback goes: the last epoch start that was proven good.

Dividing the learning rate by 10 and retrying from the start of the epoch helps only when the
weights the epoch started from are still good: the retried epoch's first loss is computed on
exactly those weights and that batch (the data order is fixed by seed and epoch), so if they
are already bad it blows up again at every smaller rate. An epoch start is *good* when the
first loss measured on it is finite and not above the run's first loss (training from there
has not made things worse than the initial weights). Each epoch start is kept; the latest
good one is kept too, and a divergence whose epoch began on bad weights rolls back to it,
re-running the epochs after it at the lower rate.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

from dl_perception.training.checkpoint import checkpoint_bytes
from dl_perception.training.run_records import commit_files
from dl_perception.training.run_records import metrics_csv_text

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
