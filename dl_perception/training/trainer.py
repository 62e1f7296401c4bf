"""
The training loop: epochs of optimizer steps, validation, checkpoints and recovery.

``Trainer(config, run_dir).fit()`` trains and writes into ``run_dir``: ``last.pt`` (every
epoch), ``best.pt`` (the best epoch by ``regularization.early_stopping_metric``: validation
accuracy or loss) and ``metrics.csv``, committed together as one
unit per epoch (see ``run_records``), TensorBoard events, ``summary.json`` and PNG plots.
``Trainer.resume(run_dir)`` first repairs what a crash may have left, then continues a stopped
run exactly where its last checkpoint left it. A run that ends at chance accuracy, or whose
loss never fell, is reported in ``summary.json`` as ``dead_model`` (with the reason).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from pathlib import Path

from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.training import plots
from dl_perception.training.checkpoint import capture_rng_state
from dl_perception.training.checkpoint import checkpoint_bytes
from dl_perception.training.checkpoint import CHECKPOINT_FORMAT
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.checkpoint import reading_checkpoint
from dl_perception.training.checkpoint import restore_rng_state
from dl_perception.training.config import config_to_dict
from dl_perception.training.config import parse_config
from dl_perception.training.config import TrainConfig
from dl_perception.training.data import batch_loader
from dl_perception.training.data import load_data
from dl_perception.training.data import PreparedImages
from dl_perception.training.distributed import DistributedContext
from dl_perception.training.evaluation import BatchNormalizer
from dl_perception.training.evaluation import evaluate
from dl_perception.training.evaluation import Evaluation
from dl_perception.training.lr_tuning import tune_learning_rate
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import freeze_backbone
from dl_perception.training.model_setup import load_pretrained
from dl_perception.training.model_setup import model_spec_for
from dl_perception.training.model_setup import pretrained_min_size
from dl_perception.training.model_setup import read_state_dict
from dl_perception.training.model_setup import set_training_mode
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.optimizers import owns_weight_decay
from dl_perception.training.recovery import rewrite_run_files
from dl_perception.training.recovery import RollbackPoints
from dl_perception.training.recovery import start_is_good
from dl_perception.training.regularization import EARLY_STOPPING_METRICS
from dl_perception.training.regularization import EarlyStopping
from dl_perception.training.run_records import commit_files
from dl_perception.training.run_records import discard_commit_leftovers
from dl_perception.training.run_records import metrics_csv_text
from dl_perception.training.run_records import recover_run_folder
from dl_perception.training.run_records import RunState
from dl_perception.training.run_records import write_bytes_atomic
from dl_perception.training.run_records import write_json
from dl_perception.training.run_records import write_text_atomic
from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.step import Diverged
from dl_perception.training.step import EpochRecord
from dl_perception.training.step import ForwardPass
from dl_perception.training.step import StepRules
from dl_perception.training.step import train_one_epoch
from dl_perception.training.step import weighted_layers
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data import DistributedSampler
from torch.utils.data import RandomSampler
from torch.utils.data import SequentialSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

logger = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training kept diverging after every allowed rollback."""


def dead_model_reason(history: list[dict], reference_loss: float | None, chance: float,
                      val_count: int) -> str | None:
    """
    Say why a finished run's model is dead, or return None when it learned something.

    Dead: the final validation accuracy is within two standard errors of chance (the share
    of the most common validation class), or the training loss never fell below its first
    value.

    :param history: the per-epoch records of the run (``train_loss``, ``val_accuracy``).
    :param reference_loss: the first finite training loss of the run.
    :param chance: accuracy of always answering the most common validation class.
    :param val_count: number of validation images.
    """
    final = history[-1]['val_accuracy']
    margin = 2 * math.sqrt(chance * (1 - chance) / max(val_count, 1))
    if final <= chance + margin:
        return (f'the final validation accuracy {final:.4f} is at chance level (always '
                f'answering the most common class scores {chance:.4f}): the model learned '
                f'nothing; try a smaller optimizer.lr (dl-perception lr-find suggests one)')
    lowest = min(row['train_loss'] for row in history)
    if reference_loss is not None and lowest >= reference_loss:
        return (f'the training loss never fell below its start ({reference_loss:.4g}; lowest '
                f'epoch mean {lowest:.4g}): the model learned nothing')
    return None


def _best_epoch_of(state: dict) -> int | None:
    """Return the epoch best.pt must hold (from history for runs older than best_epoch)."""
    if state.get('best_epoch') is not None:
        return state['best_epoch']
    best = state['best_val_accuracy']
    return next((row['epoch'] for row in state['history'] if row['val_accuracy'] == best),
                None)


def check_best_checkpoint(run_dir: Path, last: dict) -> None:
    """
    Make sure ``best.pt`` holds the run's best epoch; repair it when that is the last epoch.

    A run folder left half-written (by a crash under an older version) may lack best.pt or
    hold a stale one. When the best epoch is the last one, last.pt holds the very same
    checkpoint and is copied; otherwise the best weights are lost and resuming is refused.

    :raises ValueError: best.pt does not hold the best epoch and cannot be rebuilt.
    """
    best_epoch = _best_epoch_of(last['state'])
    if best_epoch is None:
        return
    path = run_dir / 'best.pt'
    held, problem = None, 'is missing'
    if path.is_file():
        try:
            held = load_checkpoint(path)['epoch']
            problem = f'holds epoch {held}'
        except ValueError as error:
            problem = f'is unusable ({error})'
    if held == best_epoch:
        return
    if best_epoch == last['epoch']:
        write_bytes_atomic(path, (run_dir / 'last.pt').read_bytes())
        logger.warning('%s %s but the best epoch is %d, the last one: rebuilt it from last.pt',
                       path, problem, best_epoch)
        return
    raise ValueError(f'{path} {problem}, but the best of the run is epoch {best_epoch} of '
                     f'{last["epoch"]}: the folder was left half-written and those weights are '
                     f'lost; start the run again')


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


class Trainer:
    """One training run, from a config or from the last checkpoint of a stopped run."""

    def __init__(self, config: TrainConfig, run_dir: Path, checkpoint: dict | None = None,
                 context: DistributedContext = DistributedContext()) -> None:
        self.config, self.run_dir, self.context = config, Path(run_dir), context
        self.device = pick_device(config.device)
        torch.manual_seed(config.seed)
        pretrained, min_size = None, None
        if checkpoint is not None:  # the size the run started with (upsampled or not)
            min_size = PreprocessingSpec.from_json(checkpoint['preprocessing']).height
        elif config.model.pretrained:
            pretrained = read_state_dict(config.model.pretrained)
            min_size = pretrained_min_size(config.model, pretrained)
        self.data = load_data(config.data, config.seed, min_size)
        self.spec = (PreprocessingSpec.from_json(checkpoint['preprocessing'])
                     if checkpoint else self.data.spec)
        self.model_spec = model_spec_for(config.model, len(self.data.classes),
                                         self.spec.num_channels, self.spec.height)
        self.model = build_from_spec(self.model_spec)
        if pretrained is not None:
            skipped = load_pretrained(self.model, self.model_spec, config.model.pretrained,
                                      pretrained)
            logger.info('started from %s at %d px (new head: %s)', config.model.pretrained,
                        self.spec.height, skipped)
        frozen = config.model.freeze_backbone
        trainable = freeze_backbone(self.model) if frozen else list(self.model.parameters())
        self.channels_last = (config.channels_last if config.channels_last is not None
                              else self.device.type == 'cuda')
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.normalizer = BatchNormalizer(self.spec).to(self.device)
        network = (DistributedDataParallel(self.model) if context.enabled else self.model)
        self.full_batch = config.optimizer.name == 'gd'
        optim, regularization = config.optimizer, config.regularization
        # Weight decay goes to the optimizer that owns it, else to the decoupled step.
        decay, owned = regularization.weight_decay, owns_weight_decay(optim.name)
        self.optimizer = create_optimizer(
            optim.name, trainable, lr=optim.lr, momentum=optim.momentum,
            betas=tuple(optim.betas), eps=optim.eps, alpha=optim.alpha,
            weight_decay=decay if owned else 0.0, momentum_form=optim.momentum_form)
        self.rules = StepRules(
            regularization, weight_decay=0.0 if owned else decay,
            full_batch=self.full_batch, explode_factor=config.divergence.explode_factor,
            grad_norm_every=config.grad_norm_every)
        self.schedule = self._build_schedule()
        dtype = amp_dtype(config, self.device)
        self.forward = ForwardPass(
            network, nn.CrossEntropyLoss(label_smoothing=regularization.label_smoothing),
            self.normalizer, self.device, self.channels_last, dtype)
        self.scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
        patience = regularization.early_stopping_patience
        self.watched, self.watch_mode = EARLY_STOPPING_METRICS[
            regularization.early_stopping_metric]
        self.early_stopping = (EarlyStopping(
            patience=patience, min_delta=regularization.early_stopping_min_delta,
            mode=self.watch_mode) if patience else None)
        self.state = RunState()
        self.rollback_points = RollbackPoints()
        self.last_start_loss: float | None = None

    @classmethod
    def resume(cls, run_dir: Path, overrides: list[str] = (),
               context: DistributedContext = DistributedContext()) -> Trainer:
        """
        Continue the run in ``run_dir`` from its last.pt; only ``epochs`` may change.

        First finishes or discards an epoch commit a crash cut short, removes temporary
        files, checks best.pt and rewrites metrics.csv from the checkpoint.

        :raises FileNotFoundError: ``run_dir`` does not exist.
        :raises ValueError: no epoch finished, a checkpoint is damaged, best.pt cannot be
            trusted, or the overrides change more than ``epochs``.
        """
        run_dir = Path(run_dir)
        path = run_dir / 'last.pt'
        if not run_dir.is_dir():
            raise FileNotFoundError(f'run folder not found: {run_dir}')
        if context.is_main:
            for action in recover_run_folder(run_dir):
                logger.warning('%s: %s', run_dir, action)
        context.barrier()
        if not path.is_file():
            raise ValueError(f'{run_dir} has no finished epoch to resume (no last.pt): start '
                             f'the run again')
        checkpoint = load_checkpoint(path)
        with reading_checkpoint(path):
            stored = parse_config(checkpoint['config'])
        config = parse_config(checkpoint['config'], overrides)
        changed = [k for k, v in config_to_dict(config).items()
                   if v != config_to_dict(stored)[k] and k not in ('epochs', 'progress')]
        if changed:
            raise ValueError(f'a resumed run keeps its config; only epochs and progress may '
                             f'change, not {", ".join(changed)}')
        if context.is_main:
            check_best_checkpoint(run_dir, checkpoint)
            metrics = metrics_csv_text(checkpoint['state']['history'])
            csv_path = run_dir / 'metrics.csv'
            if not csv_path.is_file() or csv_path.read_text() != metrics:
                write_text_atomic(csv_path, metrics)
        trainer = cls(config, run_dir, checkpoint, context)
        with reading_checkpoint(path):
            trainer._restore(checkpoint)
        return trainer

    def _build_schedule(self) -> LearningRateSchedule:
        sched, world = self.config.schedule, self.context.world_size
        batches = math.ceil(len(self.data.train) / (self.config.data.batch_size * world))
        return LearningRateSchedule(
            self.optimizer, sched.name, epochs=self.config.epochs,
            steps_per_epoch=1 if self.full_batch else batches, decay=sched.decay,
            lr_min=sched.lr_min, per=sched.per, step_size=sched.step_size, gamma=sched.gamma,
            plateau_factor=sched.plateau_factor, plateau_patience=sched.plateau_patience,
            warmup_epochs=sched.warmup_epochs)

    def _checkpoint(self) -> dict:
        return {
            'format': CHECKPOINT_FORMAT, 'epoch': self.state.epoch,
            'model': self.model.state_dict(), 'model_spec': self.model_spec,
            'preprocessing': self.spec.to_json(), 'classes': list(self.data.classes),
            'dataset': {'name': self.data.name, 'root': self.config.data.root},
            'optimizer': self.optimizer.state_dict(), 'schedule': self.schedule.state_dict(),
            'scaler': self.scaler.state_dict(),
            'early_stopping': (self.early_stopping.state_dict()
                               if self.early_stopping else None),
            'rng': capture_rng_state(), 'config': config_to_dict(self.config),
            'state': copy.deepcopy(vars(self.state)),
        }

    def _restore(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint['model'])
        self.optimizer.load_state_dict(checkpoint['optimizer'])
        self.schedule.load_state_dict(checkpoint['schedule'])
        self.scaler.load_state_dict(checkpoint['scaler'])
        if self.early_stopping is not None:
            self.early_stopping.load_state_dict(checkpoint['early_stopping'])
        self.state = RunState(**copy.deepcopy(checkpoint['state']))
        restore_rng_state(checkpoint['rng'])

    def train_loader(self, epoch: int) -> DataLoader:
        """Return the training batches of one epoch, in an order fixed by (seed, epoch)."""
        seed = self.config.seed * 100_003 + epoch
        generator = torch.Generator().manual_seed(seed)
        if self.context.enabled:
            order = DistributedSampler(self.data.train, self.context.world_size,
                                       self.context.rank, shuffle=True, seed=seed)
        else:
            order = RandomSampler(self.data.train, generator=generator)
        return batch_loader(self.data.train, order, self.config.data.batch_size,
                            self.config.data.workers, generator,
                            pin_memory=self.device.type == 'cuda')

    def evaluate_split(self, dataset: PreparedImages) -> Evaluation:
        """Evaluate the (unwrapped) model on a split."""
        loader = batch_loader(dataset, SequentialSampler(dataset),
                              self.config.data.eval_batch_size, self.config.data.workers)
        return evaluate(self.model, loader, self.normalizer, len(self.data.classes),
                        self.device, self.channels_last)

    def fit(self) -> dict:
        """Train the remaining epochs, then test the best weights; returns the summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main and self.state.epoch == 0:
            discard_commit_leftovers(self.run_dir)  # of an earlier run killed in this folder
        writer = SummaryWriter(str(self.run_dir / 'tensorboard')) if self.is_main else None
        if self.config.lr_tuning.enabled and self.state.epoch == 0 and not self.state.lr_tuning:
            self._tune_learning_rate()
        while self.state.epoch < self.config.epochs and not self.state.stopped_early:
            self.context.barrier()
            train_stats = self._train_epoch_with_recovery()  # a rollback may go back epochs
            epoch = self.state.epoch
            stop = self._end_epoch(epoch, train_stats, writer)
            if self.context.broadcast(stop):
                logger.info('early stopping after epoch %d', epoch + 1)
                break
        if writer is not None:
            writer.close()
        return self._finish() if self.is_main else {}

    @property
    def is_main(self) -> bool:
        """Return whether this is the process that evaluates, logs and checkpoints."""
        return self.context.is_main

    def _tune_learning_rate(self) -> None:
        """Choose the starting rate by the lecture's rule (see ``lr_tuning``), then restart."""
        start = copy.deepcopy(self._checkpoint())
        window = self.config.lr_tuning.window

        def trial(lr: float) -> list[float]:
            self._restore(copy.deepcopy(start))
            self.schedule.scale_learning_rate(lr / self.schedule.lr)
            set_training_mode(self.model, self.config.model.freeze_backbone)
            batches = itertools.chain.from_iterable(
                self.train_loader(epoch) for epoch in itertools.count())
            try:
                losses = train_one_epoch(
                    self.model, self.forward, self.optimizer, self.scaler, self.schedule,
                    itertools.islice(batches, window), sample_count=len(self.data.train),
                    rules=self.rules, context=self.context, first_step=0,
                    reference_loss=None).losses
            except Diverged:
                losses = [math.inf]
            return self.context.broadcast(losses)  # every process follows rank 0's verdict

        lr, trials = tune_learning_rate(trial, self.schedule.lr, self.config.lr_tuning)
        self._restore(copy.deepcopy(start))
        self.schedule.scale_learning_rate(lr / self.schedule.lr)
        self.state.lr_tuning = trials
        logger.info('learning-rate tuning: %s -> %.3g', ', '.join(
            f'{t["lr"]:.3g} {t["verdict"]}' for t in trials), lr)

    def _train_epoch_with_recovery(self) -> dict:
        while True:
            self.rollback_points.begin_epoch(copy.deepcopy(self._checkpoint()), self.run_dir)
            try:
                metrics = self.train_epoch(self.state.epoch)
            except Diverged as event:
                self._recover(event)
                continue
            self.rollback_points.epoch_finished(self._start_was_good(self.last_start_loss))
            return metrics

    def _start_was_good(self, start_loss: float | None) -> bool:
        """Return whether every process found the epoch's starting weights good."""
        return not self.context.any_rank(
            not start_is_good(start_loss, self.state.reference_loss))

    def train_epoch(self, epoch: int) -> dict:
        """
        Train one epoch and add its records to the run's state; returns its metrics.

        ``last_start_loss`` then holds the epoch's first loss (on the weights it started from).
        """
        set_training_mode(self.model, self.config.model.freeze_backbone)
        loader = self.train_loader(epoch)
        show = self.is_main and self.config.progress
        batches = tqdm(loader, desc=f'epoch {epoch + 1}/{self.config.epochs}', unit='batch',
                       disable=not show, leave=False, dynamic_ncols=True)
        record = train_one_epoch(
            self.model, self.forward, self.optimizer, self.scaler, self.schedule, batches,
            sample_count=len(loader.sampler.sampler), rules=self.rules, context=self.context,
            first_step=self.state.global_step, reference_loss=self.state.reference_loss)
        self._add_records(record)
        self.last_start_loss = record.start_loss
        return record.metrics

    def _add_records(self, record: EpochRecord) -> None:
        state = self.state
        state.reference_loss = record.reference_loss
        state.global_step += len(record.lr_steps)  # one learning-rate record per step
        state.lr_steps += record.lr_steps
        state.lr_values += record.lr_values
        state.grad_steps += record.grad_steps
        state.grad_norms += record.grad_norms

    def _recover(self, event: Diverged) -> None:
        """
        Roll back to the last good epoch start and divide the learning rate by 10.

        That is the start of this epoch unless its first loss showed the weights it started
        from were already bad (see ``recovery``); then the epochs since the last good start
        are discarded and run again.
        """
        retries = self.config.divergence.max_retries
        point = self.rollback_points.target(self._start_was_good(event.start_loss))
        events = self.state.divergence_events + [
            {'step': event.step, 'loss': event.loss, 'lr': self.schedule.lr,
             'rolled_back_to_epoch': point.epoch}]
        if len(events) > retries:
            raise DivergenceError(
                f'training diverged {len(events)} times (loss {event.loss:.4g} at step '
                f'{event.step}, lr {self.schedule.lr:.3g}) and {retries} rollbacks are '
                f'allowed; start from a smaller optimizer.lr (dl-perception lr-find suggests '
                f'one)')
        discarded = self.rollback_points.current.epoch - point.epoch
        initial_loss = self.state.reference_loss
        self._restore(copy.deepcopy(point.checkpoint))
        if discarded and self.is_main:
            rewrite_run_files(self.run_dir, point)
            self.rollback_points.best_written(point.best_bytes if point.epoch else None)
        self.state.divergence_events = events
        self.schedule.scale_learning_rate(0.1)
        where = (f'the start of epoch {point.epoch + 1} (discarding {discarded} epoch(s): the '
                 f'epoch started on weights whose loss {event.start_loss:.4g} was already above '
                 f'the initial {initial_loss:.4g})' if discarded
                 else 'the start of the epoch')
        logger.warning('loss diverged (%.4g at step %d): rolled back to %s and divided the '
                       'learning rate by 10 (now %.3g); rollback %d of %d', event.loss,
                       event.step, where, self.schedule.lr, len(events), retries)

    def _end_epoch(self, epoch: int, train_stats: dict, writer: SummaryWriter | None) -> bool:
        """Validate, schedule, record and checkpoint; returns whether to stop early."""
        val = self.evaluate_split(self.data.val) if self.is_main else None
        self.schedule.step_epoch(self.context.broadcast(val.loss if val else None))
        self.state.epoch = epoch + 1
        if not self.is_main:
            return False
        record = {'epoch': epoch + 1, **train_stats, 'val_loss': val.loss,
                  'val_accuracy': val.top1, 'val_top5': val.top5, 'lr': self.schedule.lr}
        self.state.history.append(record)
        stop, improved = self._judge(epoch + 1, record)
        self.state.stopped_early = stop
        checkpoint = checkpoint_bytes(self._checkpoint())
        outputs = {'last.pt': checkpoint,
                   'metrics.csv': metrics_csv_text(self.state.history).encode()}
        if improved:
            outputs['best.pt'] = checkpoint
        commit_files(self.run_dir, outputs)
        if improved:
            self.rollback_points.best_written(checkpoint)
        for name, value in record.items():
            if name != 'epoch':
                writer.add_scalar(name, value, epoch + 1)
        logger.info('epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | '
                    'lr %.3g | %.0f img/s | %.1f s', epoch + 1, self.config.epochs,
                    record['train_loss'], record['train_accuracy'], val.loss, val.top1,
                    record['lr'], record['images_per_s'], record['epoch_seconds'])
        return stop

    def _judge(self, epoch: int, record: dict) -> tuple[bool, bool]:
        """
        Whether to stop, and whether these weights are the new best.

        "Best" is by the watched metric (validation accuracy or loss). With early stopping it
        is the stopper's judgement (min_delta included), so best.pt and the weights it
        restores are the same; without, any improvement counts, and the first epoch always.
        """
        value = record[self.watched]
        if self.early_stopping is None:
            best_epoch = _best_epoch_of(vars(self.state))
            best = next((row[self.watched] for row in self.state.history
                         if row['epoch'] == best_epoch), None)
            higher_is_better = self.watch_mode == 'max'
            improved = best is None or (value > best if higher_is_better else value < best)
            stop = False
        else:
            before = self.early_stopping.best_epoch
            stop = self.early_stopping.update(value, self.model)
            improved = self.early_stopping.best_epoch != before
        if improved:
            self.state.best_val_accuracy = record['val_accuracy']
            self.state.best_epoch = epoch
        return stop, improved

    def _finish(self) -> dict:
        """Load the best weights, test them, draw the plots and write summary.json."""
        if self.early_stopping is not None:
            self.early_stopping.restore_best(self.model)
        else:
            best = self.run_dir / 'best.pt'
            with reading_checkpoint(best):
                self.model.load_state_dict(load_checkpoint(best)['model'])
        split = 'test' if self.data.test is not None else 'val'
        result = self.evaluate_split(self.data.test if split == 'test' else self.data.val)
        self._plot(result, split)
        history = self.state.history
        summary = {
            'model': self.model_spec['name'], 'dataset': self.data.name,
            'epochs_run': len(history), 'best_val_accuracy': self.state.best_val_accuracy,
            'best_epoch': self.state.best_epoch,
            'best_by': self.config.regularization.early_stopping_metric,
            f'{split}_accuracy': result.top1, f'{split}_top5': result.top5,
            'per_class_accuracy': dict(zip(self.data.classes,
                                           result.per_class_accuracy.tolist())),
            'train_seconds': sum(row['epoch_seconds'] for row in history),
            'images_per_s_median': sorted(r['images_per_s'] for r in history)[len(history) // 2],
            'divergence_events': self.state.divergence_events,
            'lr_tuning': self.state.lr_tuning,
            'stopped_early': len(history) < self.config.epochs,
            'run_dir': str(self.run_dir),
            'dead_model': self._dead_model_reason(),
        }
        if summary['dead_model']:
            logger.warning('training finished, but the model is dead: %s',
                           summary['dead_model'])
        write_json(summary, self.run_dir / 'summary.json')
        return summary

    def _dead_model_reason(self) -> str | None:
        labels = np.asarray(self.data.val.labels)
        chance = float(np.bincount(labels).max()) / max(len(labels), 1)
        return dead_model_reason(self.state.history, self.state.reference_loss, chance,
                                 len(labels))

    def _plot(self, result: Evaluation, split: str) -> None:
        out = self.run_dir / 'plots'
        plots.plot_curves(self.state.history, out / 'curves.png')
        plots.plot_learning_rate(self.state.lr_steps, self.state.lr_values, out / 'lr.png')
        plots.plot_confusion(result.confusion, self.data.classes, out / 'confusion_matrix.png',
                             f'{self.model_spec["name"]} on {split} '
                             f'(top-1 {result.top1:.4f})')
        if self.state.grad_steps:
            layer_names = [name for name, _ in weighted_layers(self.model)]
            plots.plot_gradient_norms(self.state.grad_steps, layer_names,
                                      self.state.grad_norms, out / 'gradient_norms.png')
