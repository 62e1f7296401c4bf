"""
Checkpoints: sealed with a checksum, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values only, so loading one never runs
pickled code. Keys: format, epoch, model, model_spec, preprocessing (JSON), classes, dataset,
optimizer, schedule, scaler, early_stopping, rng, config, state (the ``RunState``), and
checksum: the SHA-256 of everything else, so that one flipped byte is refused on load.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import hashlib
import io
import logging
from pathlib import Path
import pickle
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'dl_perception.checkpoint/2'
UNSEALED_FORMATS = ('dl_perception.checkpoint/1',)  # written before checksums existed
CHECKSUM_KEY = 'checksum'
REQUIRED_KEYS = {
    'epoch': int, 'model': dict, 'model_spec': dict, 'preprocessing': str, 'classes': list,
    'dataset': dict, 'optimizer': dict, 'schedule': dict, 'scaler': dict, 'rng': dict,
    'config': dict, 'state': dict,
}
_LOAD_ERRORS = (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError)


def _feed(digest: Any, value: Any) -> None:
    """Hash a value of a checkpoint by content and type; lists and tuples alike."""
    if torch.is_tensor(value):
        tensor = value.detach().cpu().contiguous()
        digest.update(f'T{tensor.dtype}{tuple(tensor.shape)};'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f'D{len(value)};'.encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f'L{len(value)};'.encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        data = value.encode('utf-8', 'surrogatepass')
        digest.update(f'S{len(data)};'.encode() + data)
    elif isinstance(value, float):
        digest.update(f'F{value.hex()};'.encode())
    else:  # None, bool, int (and anything else by its repr)
        digest.update(f'{type(value).__name__}:{value!r};'.encode())


def state_checksum(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents, its checksum key excepted."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return f'sha256:{digest.hexdigest()}'


def seal_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """Return the checkpoint with its checksum set (what ``checkpoint_bytes`` writes)."""
    return {**state, CHECKSUM_KEY: state_checksum(state)}


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """Serialize a checkpoint, sealed with its checksum, for writing to a file."""
    buffer = io.BytesIO()
    torch.save(seal_checkpoint(state), buffer)
    return buffer.getvalue()


def _unreadable(path: Any, detail: str) -> ValueError:
    return ValueError(f'{path} is not a readable checkpoint (truncated or corrupt?): {detail}')


@contextmanager
def reading_checkpoint(path: Any) -> Iterator[None]:
    """
    Turn the errors of applying a checkpoint's contents into one clear ValueError.

    Wrong tensor shapes, missing or mistyped entries fail while weights, optimizer or RNG
    state are loaded; this names the file the way a truncated one is named.

    :raises ValueError: whatever went wrong inside, naming ``path``.
    """
    try:
        yield
    except (RuntimeError, KeyError, TypeError, IndexError, ValueError) as error:
        detail = ' '.join(line.strip() for line in str(error).splitlines()) or '(no detail)'
        raise _unreadable(path, f'{type(error).__name__}: {detail[:600]}') from None


def _check_structure(state: dict[str, Any], path: Any) -> None:
    for key, kind in REQUIRED_KEYS.items():
        if key not in state:
            raise _unreadable(path, f'the {key!r} entry is missing')
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _unreadable(path, f'{key!r} is {type(value).__name__}, expected '
                                    f'{kind.__name__}')
    epoch, progress = state['epoch'], state['state']
    if epoch < 0 or progress.get('epoch') != epoch:
        raise _unreadable(path, f'epoch = {epoch!r} (its run state says '
                                f'{progress.get("epoch")!r}); expected a count >= 0')
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state['model'].items()):
        raise _unreadable(path, 'the model entry is not a mapping of names to tensors')
    rng = state['rng']
    if not (torch.is_tensor(rng.get('torch')) and isinstance(rng.get('numpy'), list)
            and isinstance(rng.get('python'), (list, tuple))):
        raise _unreadable(path, 'the rng entry lacks its torch, numpy or python state')


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """
    Load a checkpoint safely and verify its checksum and structure.

    :raises FileNotFoundError: no file at ``path``.
    :raises ValueError: the file is truncated, damaged (checksum mismatch), malformed, or not
        a dl_perception checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except _LOAD_ERRORS as error:
        raise _unreadable(path, str(error)) from None
    known = (CHECKPOINT_FORMAT, *UNSEALED_FORMATS)
    if not isinstance(state, dict) or state.get('format') not in known:
        raise ValueError(f'{path} is not a dl_perception checkpoint (expected format '
                         f'{CHECKPOINT_FORMAT!r})')
    if state['format'] == CHECKPOINT_FORMAT:
        stored, computed = state.pop(CHECKSUM_KEY, None), state_checksum(state)
        if stored != computed:
            raise ValueError(f'{path} is damaged: its checksum does not match its contents '
                             f'(stored {stored}, computed {computed}); use an intact copy')
    else:
        logger.warning('%s has no checksum (format %s, written by an older version); its '
                       'integrity cannot be verified', path, state['format'])
    _check_structure(state, path)
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
