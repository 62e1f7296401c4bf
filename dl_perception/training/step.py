"""
One epoch of optimizer steps: forward, loss and penalties, backward, update, constraints.

``train_one_epoch`` takes every piece it uses as an argument and returns what the epoch
produced (``EpochRecord``); the caller keeps the run's state. It also watches for divergence
(a non-finite loss, or a smoothed loss far above the first one) and records the learning rate
and per-layer gradient norms as it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
import math
import time

from dl_perception.training.config import RegularizationConfig
from dl_perception.training.distributed import DistributedContext
from dl_perception.training.regularization import apply_max_norm_
from dl_perception.training.regularization import decoupled_weight_decay_
from dl_perception.training.regularization import weight_penalty
from dl_perception.training.schedules import LearningRateSchedule
import torch
from torch import nn

LOSS_SMOOTHING = 0.1


class Diverged(Exception):
    """
    The loss blew up at ``step``; the trainer rolls back.

    ``start_loss`` is the epoch's first loss, measured on the weights the epoch started from
    (before any of its updates): it tells whether rolling back to that start can help.
    """

    def __init__(self, step: int, loss: float, start_loss: float | None = None) -> None:
        super().__init__(f'loss {loss} at step {step}')
        self.step, self.loss, self.start_loss = step, loss, start_loss


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weights of every trainable convolution and linear layer, input side first."""
    return [(name, module.weight) for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.requires_grad]


@dataclass(frozen=True)
class ForwardPass:
    """Normalize a uint8 batch on the device, run the network and score it."""

    network: nn.Module
    criterion: nn.Module
    normalizer: nn.Module
    device: torch.device
    channels_last: bool
    dtype: torch.dtype | None

    def __call__(self, images: torch.Tensor, targets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the logits and the data loss of one batch."""
        inputs = self.normalizer(images.to(self.device, non_blocking=True))
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = targets.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            logits = self.network(inputs)
        return logits, self.criterion(logits.float(), targets)


@dataclass(frozen=True)
class StepRules:
    """
    What every step does around the optimizer's update, read from the config once.

    ``weight_decay`` is the decoupled decay applied here: 0 for an optimizer that owns it.
    ``full_batch`` (gd) accumulates the whole epoch into one step.
    """

    regularization: RegularizationConfig
    weight_decay: float
    full_batch: bool
    explode_factor: float
    grad_norm_every: int


@dataclass
class EpochRecord:
    """What one epoch produced, for the caller to add to the run's state."""

    metrics: dict = field(default_factory=dict)
    reference_loss: float | None = None
    lr_steps: list[int] = field(default_factory=list)
    lr_values: list[float] = field(default_factory=list)
    grad_steps: list[int] = field(default_factory=list)
    grad_norms: list[list[float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    start_loss: float | None = None


class DivergenceWatch:
    """Smooths the loss and says on every rank at once when it blows up."""

    def __init__(self, explode_factor: float, reference_loss: float | None,
                 any_rank: Callable[[bool], bool]) -> None:
        self.explode_factor, self.reference_loss, self.any_rank = (
            explode_factor, reference_loss, any_rank)
        self.smoothed: float | None = None
        self.start_loss: float | None = None

    def check(self, loss: float, step: int) -> None:
        """Take the loss of ``step``; raise Diverged when any process sees it blow up."""
        if self.start_loss is None:
            self.start_loss = loss
        if self.reference_loss is None and math.isfinite(loss):
            self.reference_loss = loss
        previous = self.smoothed
        self.smoothed = loss if previous is None else (
            (1 - LOSS_SMOOTHING) * previous + LOSS_SMOOTHING * loss)
        limit = self.explode_factor * (self.reference_loss or math.inf)
        if self.any_rank(not math.isfinite(loss) or self.smoothed > limit):
            raise Diverged(step, loss, self.start_loss)


@dataclass(frozen=True)
class _Update:
    """Clip, decay, step, constrain; then advance the schedule and the records."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: LearningRateSchedule
    rules: StepRules
    layers: list[tuple[str, nn.Parameter]]
    trainable: list[nn.Parameter]

    def __call__(self, step: int, record: EpochRecord) -> None:
        regularization = self.rules.regularization
        self.scaler.unscale_(self.optimizer)
        if regularization.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable, regularization.grad_clip)
        if step % self.rules.grad_norm_every == 0 or self.rules.full_batch:
            record.grad_steps.append(step)
            record.grad_norms.append([
                float(weight.grad.norm()) if weight.grad is not None else 0.0
                for _, weight in self.layers])
        if self.rules.weight_decay:
            decoupled_weight_decay_(self.model, lr=self.schedule.lr,
                                    weight_decay=self.rules.weight_decay)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if regularization.max_norm:
            apply_max_norm_(self.model, regularization.max_norm)
        record.lr_steps.append(step)
        record.lr_values.append(self.schedule.lr)
        self.schedule.step_batch()


def train_one_epoch(model: nn.Module, forward: ForwardPass, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, schedule: LearningRateSchedule,
                    batches: Iterable, *, sample_count: int, rules: StepRules,
                    context: DistributedContext, first_step: int,
                    reference_loss: float | None) -> EpochRecord:
    """
    Train on every batch; returns the epoch's metrics, records and reference loss.

    :param model: the unwrapped model (penalties, decay and constraints act on it);
        ``forward`` runs it, possibly wrapped for distributed training.
    :param sample_count: images in the epoch, which weighs the full-batch loss.
    :param first_step: global index of the epoch's first optimizer step.
    :param reference_loss: the run's first finite loss so far (None before any).
    :raises Diverged: the loss blew up; model and optimizer are left mid-epoch.
    """
    regularization = rules.regularization
    # Without coefficients the penalty is a constant 0: skip walking the modules per step.
    penalized = bool(regularization.l1 or regularization.l2)
    trainable = [p for group in optimizer.param_groups for p in group['params']]
    update = _Update(model, optimizer, scaler, schedule, rules, weighted_layers(model),
                     trainable)
    watch = DivergenceWatch(rules.explode_factor, reference_loss, context.any_rank)
    record = EpochRecord()
    loss_sum, correct, seen, step = 0.0, 0, 0, first_step
    optimizer.zero_grad(set_to_none=True)
    started = time.perf_counter()
    for images, targets in batches:
        logits, data_loss = forward(images, targets)
        loss_value = float(data_loss.detach())
        watch.check(loss_value, step)
        record.losses.append(loss_value)
        if rules.full_batch:
            loss = data_loss * (len(targets) / sample_count)
        elif penalized:
            loss = data_loss + weight_penalty(model, l1=regularization.l1, l2=regularization.l2)
        else:
            loss = data_loss
        scaler.scale(loss).backward()
        if not rules.full_batch:
            update(step, record)
            step += 1
        loss_sum += loss_value * len(targets)
        correct += int((logits.argmax(dim=1) == targets.to(logits.device)).sum())
        seen += len(targets)
        if hasattr(batches, 'set_postfix') and seen % (20 * len(targets)) < len(targets):
            rate = seen / (time.perf_counter() - started)
            batches.set_postfix(loss=f'{loss_sum / seen:.4f}', img_s=f'{rate:.0f}')
    if rules.full_batch:
        if penalized:
            penalty = weight_penalty(model, l1=regularization.l1, l2=regularization.l2)
            scaler.scale(penalty).backward()
        update(step, record)
    seconds = time.perf_counter() - started
    record.reference_loss, record.start_loss = watch.reference_loss, watch.start_loss
    record.metrics = {
        'train_loss': loss_sum / max(seen, 1), 'train_accuracy': correct / max(seen, 1),
        'images_per_s': seen * context.world_size / seconds, 'epoch_seconds': seconds}
    return record
