"""
Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values only, so loading one never runs
pickled code. Keys: format, epoch, global_step, model, model_spec, preprocessing (JSON),
classes, dataset, optimizer, schedule, scaler, early_stopping, divergence, rng, config,
history, best_val_accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path
import pickle
import random
import tempfile
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 'dl_perception.checkpoint/1'


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        with os.fdopen(handle, 'wb') as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely; clear errors for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as error:
        raise ValueError(f'{path} is not a readable checkpoint (truncated or corrupt?): '
                         f'{error}') from None
    if not isinstance(state, dict) or state.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path} is not a dl_perception checkpoint (expected format '
                         f'{CHECKPOINT_FORMAT!r})')
    return state


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as plain values and tensors."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        'torch': torch.get_rng_state(),
        'numpy': [kind, keys.tolist(), position, has_gauss, cached],
        'python': random.getstate(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng_state`` recorded."""
    torch.set_rng_state(state['torch'])
    kind, keys, position, has_gauss, cached = state['numpy']
    np.random.set_state((kind, np.asarray(keys, np.uint32), position, has_gauss, cached))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
