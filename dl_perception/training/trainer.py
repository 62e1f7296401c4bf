"""
The training loop: epochs of optimizer steps, validation, checkpoints and recovery.

``Trainer(config, run_dir).fit()`` trains and writes into ``run_dir``: ``last.pt`` (every
epoch), ``best.pt`` (the best epoch by ``regularization.early_stopping_metric``: validation
accuracy or loss) and ``metrics.csv``, committed together as one
unit per epoch (see ``run_records``), TensorBoard events, ``summary.json`` and PNG plots.
``Trainer.resume(run_dir)`` first repairs what a crash may have left, then continues a stopped
run exactly where its last checkpoint left it. A run that ends at chance accuracy, or whose
loss never fell, is reported in ``summary.json`` as ``dead_model`` (with the reason; see
``run_verdicts``). A diverging loss rolls the run back (see ``recovery``).
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
from dl_perception.training.devices import amp_dtype
from dl_perception.training.devices import pick_device
from dl_perception.training.distributed import DistributedContext
from dl_perception.training.evaluation import BatchNormalizer
from dl_perception.training.evaluation import evaluate
from dl_perception.training.evaluation import Evaluation
from dl_perception.training.lr_tuning import tune_run_learning_rate
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import freeze_backbone
from dl_perception.training.model_setup import inference_network
from dl_perception.training.model_setup import load_pretrained
from dl_perception.training.model_setup import model_spec_for
from dl_perception.training.model_setup import pretrained_min_size
from dl_perception.training.model_setup import read_state_dict
from dl_perception.training.model_setup import set_training_mode
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.optimizers import owns_weight_decay
from dl_perception.training.recovery import DivergenceRecovery
from dl_perception.training.regularization import EARLY_STOPPING_METRICS
from dl_perception.training.regularization import EarlyStopping
from dl_perception.training.run_records import commit_files
from dl_perception.training.run_records import discard_commit_leftovers
from dl_perception.training.run_records import metrics_csv_text
from dl_perception.training.run_records import recover_run_folder
from dl_perception.training.run_records import RunState
from dl_perception.training.run_records import write_json
from dl_perception.training.run_records import write_text_atomic
from dl_perception.training.run_verdicts import chance_accuracy
from dl_perception.training.run_verdicts import check_best_checkpoint
from dl_perception.training.run_verdicts import dead_model_reason
from dl_perception.training.run_verdicts import is_new_best
from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.step import EpochRecord
from dl_perception.training.step import ForwardPass
from dl_perception.training.step import StepRules
from dl_perception.training.step import train_one_epoch
from dl_perception.training.step import weighted_layers
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
        self.recovery = DivergenceRecovery(
            self.run_dir, context, config.divergence.max_retries, save=self._checkpoint,
            restore=self._restore, schedule=self.schedule)

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

    def evaluate_split(self, dataset: PreparedImages, final: bool = True) -> Evaluation:
        """
        Evaluate the (unwrapped) model on a split.

        Per-epoch validation (``final=False``) runs the trained network at the training's
        precision: it only ranks epochs, and bf16 on a CPU halves its time. The final
        evaluation runs what is exported (``inference_network``, test-time flip included) in
        float32, the exported model's precision.
        """
        loader = batch_loader(dataset, SequentialSampler(dataset),
                              self.config.data.eval_batch_size, self.config.data.workers)
        model = inference_network(self.model, self.model_spec) if final else self.model
        return evaluate(model, loader, self.normalizer, len(self.data.classes),
                        self.device, self.channels_last,
                        dtype=None if final else self.forward.dtype)

    def fit(self) -> dict:
        """Train the remaining epochs, then test the best weights; returns the summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main and self.state.epoch == 0:
            discard_commit_leftovers(self.run_dir)  # of an earlier run killed in this folder
        writer = SummaryWriter(str(self.run_dir / 'tensorboard')) if self.is_main else None
        if self.config.lr_tuning.enabled and self.state.epoch == 0 and not self.state.lr_tuning:
            trials = tune_run_learning_rate(self._checkpoint, self._restore, self.schedule,
                                            self._trial_losses, self.context,
                                            self.config.lr_tuning)
            self.state.lr_tuning = trials  # the state restored after the trials
        while self.state.epoch < self.config.epochs and not self.state.stopped_early:
            self.context.barrier()
            train_stats = self.recovery.train_epoch(self._train_epoch).metrics
            epoch = self.state.epoch  # a rollback may have gone back epochs
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

    def _trial_losses(self) -> list[float]:
        """Train one learning-rate trial's steps (see ``lr_tuning``); returns their losses."""
        set_training_mode(self.model, self.config.model.freeze_backbone)
        batches = itertools.chain.from_iterable(
            self.train_loader(epoch) for epoch in itertools.count())
        return train_one_epoch(
            self.model, self.forward, self.optimizer, self.scaler, self.schedule,
            itertools.islice(batches, self.config.lr_tuning.window),
            sample_count=len(self.data.train), rules=self.rules, context=self.context,
            first_step=0, reference_loss=None).losses

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch and add its records to the run's state; returns its metrics."""
        return self._train_epoch(epoch).metrics

    def _train_epoch(self, epoch: int) -> EpochRecord:
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
        return record

    def _add_records(self, record: EpochRecord) -> None:
        state = self.state
        state.reference_loss = record.reference_loss
        state.global_step += len(record.lr_steps)  # one learning-rate record per step
        state.lr_steps += record.lr_steps
        state.lr_values += record.lr_values
        state.grad_steps += record.grad_steps
        state.grad_norms += record.grad_norms

    def _end_epoch(self, epoch: int, train_stats: dict, writer: SummaryWriter | None) -> bool:
        """Validate, schedule, record and checkpoint; returns whether to stop early."""
        val = self.evaluate_split(self.data.val, final=False) if self.is_main else None
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
            self.recovery.points.best_written(checkpoint)
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
            improved = is_new_best(value, vars(self.state), self.watched, self.watch_mode)
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
        history, labels = self.state.history, self.data.val.labels
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
            'dead_model': dead_model_reason(history, self.state.reference_loss,
                                            chance_accuracy(labels), len(labels)),
        }
        if summary['dead_model']:
            logger.warning('training finished, but the model is dead: %s',
                           summary['dead_model'])
        write_json(summary, self.run_dir / 'summary.json')
        return summary

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
