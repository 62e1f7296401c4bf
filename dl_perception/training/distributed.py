"""
Scale-out under ``torchrun``: one process per device, rank 0 alone logs and checkpoints.

Without torchrun's environment everything here is a no-op for a single process.
"""

from __future__ import annotations

from dataclasses import dataclass
import os

import torch
from torch import distributed


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Return whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Return whether this is the process that logs, evaluates and checkpoints."""
        return self.rank == 0

    def any_rank(self, flag: bool) -> bool:
        """Return, on every rank, whether the flag is true on at least one rank."""
        if not self.enabled:
            return flag
        value = torch.tensor([int(flag)], device=self._device())
        distributed.all_reduce(value, op=distributed.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, value: object) -> object:
        """Rank 0's value, on every rank."""
        if not self.enabled:
            return value
        holder = [value]
        distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.enabled:
            distributed.barrier()

    def _device(self) -> torch.device:
        if distributed.get_backend() == 'nccl':
            return torch.device('cuda', self.local_rank)
        return torch.device('cpu')


def init_distributed(use_cuda: bool) -> DistributedContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), if any."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return DistributedContext()
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    distributed.init_process_group(backend='nccl' if use_cuda else 'gloo')
    return DistributedContext(distributed.get_rank(), world_size, local_rank)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group."""
    if context.enabled and distributed.is_initialized():
        distributed.destroy_process_group()
