"""
What a run remembers between epochs, and the files it writes from that memory.

``RunState`` travels inside every checkpoint (plain values only), so a resumed run rewrites
``metrics.csv`` and the plots as if it had never stopped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from dataclasses import field
import io
import json
import os
from pathlib import Path

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


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a small text file in one step."""
    temporary = path.with_name(f'.{path.name}.tmp')
    temporary.write_text(text)
    os.replace(temporary, path)


def write_metrics_csv(history: list[dict], path: Path) -> None:
    """One row per finished epoch, in METRIC_COLUMNS order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, buffer.getvalue())


def write_json(data: dict, path: Path) -> None:
    """Pretty JSON, written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n')
