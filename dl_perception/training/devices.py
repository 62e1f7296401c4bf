"""
Where a run computes: the torch device the config asks for, and the precision it trains at.

The trainer reads both from ``TrainConfig`` once; CUDA is used when there is one (or refused
when asked for without one). Mixed precision is on by default on CUDA only; on a CPU it is
bf16 when asked for (``amp: bf16``), and refused where the CPU has no bf16 instructions
(AVX-512 BF16 or AMX), on which bf16 would run slower than float32.
"""

from __future__ import annotations

from dl_perception.training.config import TrainConfig
import torch


def pick_device(name: str) -> torch.device:
    """Resolve the configured device; asking for CUDA without one is an error."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device = cuda, but torch sees no CUDA device; use auto or cpu')
    return torch.device('cuda' if name != 'cpu' and torch.cuda.is_available() else 'cpu')


def cpu_has_bf16() -> bool:
    """Return whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """
    Return the autocast dtype of a run; None is full precision.

    :raises ValueError: ``amp`` asks the CPU for fp16, or for bf16 it has no instructions for.
    """
    if config.amp == 'off' or (device.type != 'cuda' and config.amp == 'auto'):
        return None
    if device.type == 'cuda':
        if config.amp == 'auto':
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {'bf16': torch.bfloat16, 'fp16': torch.float16}[config.amp]
    if config.amp == 'fp16':
        raise ValueError('amp = fp16 runs on CUDA only; on the CPU use bf16 or off')
    if not cpu_has_bf16():
        raise ValueError('amp = bf16 on this CPU: it has no bf16 instructions (AVX-512 BF16 '
                         'or AMX), so bf16 would be slower than float32; use amp: off')
    return torch.bfloat16
