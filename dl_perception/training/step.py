"""
One epoch of optimizer steps: forward, loss and penalties, backward, update, constraints.

Also watches for divergence (a non-finite loss, or a smoothed loss far above the first one)
and records the learning rate and per-layer gradient norms as it goes.
"""

from __future__ import annotations

from collections.abc import Iterable
import math
import time
from typing import TYPE_CHECKING

from dl_perception.training.regularization import apply_max_norm_
from dl_perception.training.regularization import decoupled_weight_decay_
from dl_perception.training.regularization import weight_penalty
import torch
from torch import nn

if TYPE_CHECKING:
    from dl_perception.training.trainer import Trainer

LOSS_SMOOTHING = 0.1


class Diverged(Exception):
    """The loss blew up at ``step``; the trainer rolls back."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f'loss {loss} at step {step}')
        self.step, self.loss = step, loss


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weights of every convolution and linear layer, input side first."""
    return [(name, module.weight) for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.requires_grad]


class StepRunner:
    """Runs the batches of an epoch for a Trainer (which owns every piece it uses)."""

    def __init__(self, trainer: Trainer, network: nn.Module, trainable: list[nn.Parameter],
                 dtype: torch.dtype | None) -> None:
        self.trainer, self.network, self.trainable, self.dtype = trainer, network, trainable, dtype
        config = trainer.config
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=config.regularization.label_smoothing)
        self.layers = weighted_layers(trainer.model)
        self.layer_names = [name for name, _ in self.layers]
        self.smoothed_loss: float | None = None
        regularization = config.regularization
        # Without coefficients the penalty is a constant 0: skip walking the modules per step.
        self.penalized = bool(regularization.l1 or regularization.l2)

    def run_epoch(self, batches: Iterable, sample_count: int) -> dict:
        """Train on every batch; returns loss, accuracy and throughput of the epoch."""
        trainer = self.trainer
        full_batch = trainer.full_batch
        loss_sum, correct, seen = 0.0, 0, 0
        self.smoothed_loss = None
        trainer.optimizer.zero_grad(set_to_none=True)
        started = time.perf_counter()
        for images, targets in batches:
            logits, data_loss = self.forward(images, targets)
            loss_value = self._watch(data_loss)
            if full_batch:
                loss = data_loss * (len(targets) / sample_count)
            elif self.penalized:
                loss = data_loss + self._penalty()
            else:
                loss = data_loss
            trainer.scaler.scale(loss).backward()
            if not full_batch:
                self._update()
            loss_sum += loss_value * len(targets)
            correct += int((logits.argmax(dim=1) == targets.to(logits.device)).sum())
            seen += len(targets)
            if hasattr(batches, 'set_postfix') and seen % (20 * len(targets)) < len(targets):
                rate = seen / (time.perf_counter() - started)
                batches.set_postfix(loss=f'{loss_sum / seen:.4f}', img_s=f'{rate:.0f}')
        if full_batch:
            if self.penalized:
                trainer.scaler.scale(self._penalty()).backward()
            self._update()
        seconds = time.perf_counter() - started
        world = trainer.context.world_size
        return {'train_loss': loss_sum / max(seen, 1), 'train_accuracy': correct / max(seen, 1),
                'images_per_s': seen * world / seconds, 'epoch_seconds': seconds}

    def forward(self, images: torch.Tensor, targets: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalize a uint8 batch and run the network; returns logits and the data loss."""
        trainer = self.trainer
        inputs = trainer.normalizer(images.to(trainer.device, non_blocking=True))
        if trainer.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = targets.to(trainer.device, non_blocking=True)
        with torch.autocast(trainer.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            logits = self.network(inputs)
        return logits, self.criterion(logits.float(), targets)

    def _penalty(self) -> torch.Tensor:
        regularization = self.trainer.config.regularization
        return weight_penalty(self.trainer.model, l1=regularization.l1, l2=regularization.l2)

    def _watch(self, loss: torch.Tensor) -> float:
        """Return the loss as a float; raise Diverged when any process sees it blow up."""
        state, value = self.trainer.state, float(loss.detach())
        if state.reference_loss is None and math.isfinite(value):
            state.reference_loss = value
        previous = self.smoothed_loss
        self.smoothed_loss = value if previous is None else (
            (1 - LOSS_SMOOTHING) * previous + LOSS_SMOOTHING * value)
        limit = self.trainer.config.divergence.explode_factor * (state.reference_loss or math.inf)
        blown = not math.isfinite(value) or self.smoothed_loss > limit
        if self.trainer.context.any_rank(blown):
            raise Diverged(state.global_step, value)
        return value

    def _update(self) -> None:
        """Clip, decay, step, constrain; then advance the schedule and the records."""
        trainer = self.trainer
        config, state = trainer.config, trainer.state
        trainer.scaler.unscale_(trainer.optimizer)
        if config.regularization.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable, config.regularization.grad_clip)
        if state.global_step % config.grad_norm_every == 0 or trainer.full_batch:
            state.grad_steps.append(state.global_step)
            state.grad_norms.append([
                float(weight.grad.norm()) if weight.grad is not None else 0.0
                for _, weight in self.layers])
        decay = config.regularization.weight_decay
        if decay and config.optimizer.name != 'adamw':
            decoupled_weight_decay_(trainer.model, lr=trainer.schedule.lr, weight_decay=decay)
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        trainer.optimizer.zero_grad(set_to_none=True)
        if config.regularization.max_norm:
            apply_max_norm_(trainer.model, config.regularization.max_norm)
        state.lr_steps.append(state.global_step)
        state.lr_values.append(trainer.schedule.lr)
        state.global_step += 1
        trainer.schedule.step_batch()
