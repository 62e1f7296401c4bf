"""
Where a run computes: the torch device the config asks for, and the precision it trains at.

The trainer reads both from ``TrainConfig`` once; CUDA is used when there is one (or refused
when asked for without one), and mixed precision only ever on CUDA.
"""

from __future__ import annotations

from dl_perception.training.config import TrainConfig
import torch


def pick_device(name: str) -> torch.device:
    """Resolve the configured device; asking for CUDA without one is an error."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device = cuda, but torch sees no CUDA device; use auto or cpu')
    return torch.device('cuda' if name != 'cpu' and torch.cuda.is_available() else 'cpu')


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA; None (full precision) on CPU or when off."""
    if device.type != 'cuda' or config.amp == 'off':
        return None
    if config.amp == 'auto':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {'bf16': torch.bfloat16, 'fp16': torch.float16}[config.amp]
