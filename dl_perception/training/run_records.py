"""
What a run remembers between epochs, and the files it writes from that memory.

``RunState`` travels inside every checkpoint (plain values only), so a resumed run rewrites
``metrics.csv`` and the plots as if it had never stopped.

An epoch's outputs (``last.pt``, ``best.pt`` when it improved, ``metrics.csv``) replace the
previous epoch's as one unit: ``commit_files`` writes each in full as ``.<name>.pending`` and
flushes it to disk, then atomically renames a journal naming them into place
(``.epoch-commit.json``; that rename is the commit), then renames the pending files over
their targets and removes the journal. ``recover_run_folder`` (run on resume) finishes the
renames of a committed epoch and discards the pending files of one that never committed, so a
kill -9 at any moment leaves either the old epoch or the new one, never a mix.

Test fault injection: with the environment variable ``DLP_TEST_CRASH_AT_WRITE=N`` set, the
process SIGKILLs itself at its Nth durable write step (halfway through a file, or right after
a rename). Tests use it to interrupt real runs at every write; unset, as in production, it
does nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from dataclasses import field
import io
import json
import os
from pathlib import Path
import signal

CRASH_AT_WRITE_ENV = 'DLP_TEST_CRASH_AT_WRITE'
JOURNAL = '.epoch-commit.json'
PENDING_SUFFIX = '.pending'
# Files of a run folder whose temporary siblings (.<name>.*) are leftovers after a crash.
EPOCH_FILES = ('last.pt', 'best.pt', 'metrics.csv')
RUN_FILES = (*EPOCH_FILES, 'summary.json', JOURNAL)
_writes_seen = 0

METRIC_COLUMNS = ('epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy',
                  'val_top5', 'lr', 'images_per_s', 'epoch_seconds')


@dataclass
class RunState:
    """The mutable progress of a run, checkpointed at the end of every epoch."""

    epoch: int = 0
    global_step: int = 0
    best_val_accuracy: float = -1.0
    reference_loss: float | None = None
    history: list[dict] = field(default_factory=list)
    lr_steps: list[int] = field(default_factory=list)
    lr_values: list[float] = field(default_factory=list)
    grad_steps: list[int] = field(default_factory=list)
    grad_norms: list[list[float]] = field(default_factory=list)
    divergence_events: list[dict] = field(default_factory=list)
    lr_tuning: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False


def fault_injection_point() -> None:
    """Test fault injection: SIGKILL this process at the Nth call (``DLP_TEST_CRASH_AT_WRITE``)."""
    global _writes_seen
    target = os.environ.get(CRASH_AT_WRITE_ENV)
    if not target:
        return
    _writes_seen += 1
    if _writes_seen == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: Path, data: bytes) -> None:
    """Write a new file in full and flush it to disk; its mode follows the umask (0644)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    with os.fdopen(descriptor, 'wb') as stream:
        stream.write(data[:len(data) // 2])
        stream.flush()
        fault_injection_point()
        stream.write(data[len(data) // 2:])
        stream.flush()
        os.fsync(stream.fileno())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace a file in one step: write a temporary sibling durably, then rename it."""
    temporary = path.with_name(f'.{path.name}.tmp')
    try:
        write_durably(temporary, data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    fault_injection_point()


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a small text file in one step."""
    write_bytes_atomic(path, text.encode())


def _pending(folder: Path, name: str) -> Path:
    return folder / f'.{name}{PENDING_SUFFIX}'


def commit_files(folder: Path, files: dict[str, bytes]) -> None:
    """
    Replace several files of ``folder`` as one unit (see the module docstring).

    :param files: file name (no folder) -> its complete new content.
    """
    for name, data in files.items():
        write_durably(_pending(folder, name), data)
    write_bytes_atomic(folder / JOURNAL, json.dumps({'files': sorted(files)}).encode())
    _apply_journal(folder, sorted(files))


def _apply_journal(folder: Path, names: list[str]) -> None:
    for name in names:
        pending = _pending(folder, name)
        if pending.exists():
            os.replace(pending, folder / name)
            fault_injection_point()
    _sync_folder(folder)
    (folder / JOURNAL).unlink()
    _sync_folder(folder)
    fault_injection_point()


def recover_run_folder(folder: Path) -> list[str]:
    """
    Finish or discard an epoch commit that a crash cut short, and remove temporary files.

    :returns: what was done, one sentence each (empty when the folder was clean).
    :raises ValueError: the commit journal is unreadable (the folder was damaged otherwise).
    """
    done = []
    journal = folder / JOURNAL
    if journal.is_file():
        try:
            names = json.loads(journal.read_text())['files']
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{journal} is unreadable ({error}); the run folder is damaged '
                             f'and cannot be resumed safely') from None
        if not isinstance(names, list) or not all(n in EPOCH_FILES for n in names):
            raise ValueError(f'{journal} names unexpected files {names!r}; the run folder is '
                             f'damaged and cannot be resumed safely')
        _apply_journal(folder, names)
        done.append(f'completed the interrupted commit of {", ".join(names)}')
    leftovers = sorted({path for name in RUN_FILES for path in folder.glob(f'.{name}.*')})
    for path in leftovers:
        path.unlink()
    if leftovers:
        done.append(f'removed {len(leftovers)} unfinished file(s) of an uncommitted write: '
                    f'{", ".join(p.name for p in leftovers)}')
    if done:
        _sync_folder(folder)
    return done


def discard_commit_leftovers(folder: Path) -> None:
    """Remove a journal and temporary files a killed earlier run left (a fresh run starts)."""
    (folder / JOURNAL).unlink(missing_ok=True)
    for path in {path for name in RUN_FILES for path in folder.glob(f'.{name}.*')}:
        path.unlink()


def metrics_csv_text(history: list[dict]) -> str:
    """One row per finished epoch, in METRIC_COLUMNS order, as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def write_metrics_csv(history: list[dict], path: Path) -> None:
    """One row per finished epoch, in METRIC_COLUMNS order."""
    write_text_atomic(path, metrics_csv_text(history))


def write_json(data: dict, path: Path) -> None:
    """Pretty JSON, written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n')
