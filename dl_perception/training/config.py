"""
The training configuration: frozen dataclasses, validated before any work starts.

YAML files and ``--set key=value`` overrides are turned into these classes by ``parse_config``;
every field carries its help text, which ``dl-perception train --help`` prints. A bad key or
value (a non-finite number included) fails here, naming the key and what is allowed. Allowed
names and shared bounds are read from the tables that build the objects, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
import math
import typing
from typing import Any

from dl_perception.models.activations import ACTIVATIONS
from dl_perception.models.registry import SMALL_INPUT_SIZE
from dl_perception.preprocessing.spec import RESIZE_POLICIES
from dl_perception.training.optimizers import MOMENTUM_BOUNDS
from dl_perception.training.optimizers import MOMENTUM_FORMS
from dl_perception.training.optimizers import OPTIMIZER_NAMES
from dl_perception.training.regularization import EARLY_STOPPING_METRICS
from dl_perception.training.schedules import SCHEDULE_NAMES
import yaml

DATASETS = ('fashion-mnist', 'folder')
MIN_TUNING_WINDOW = 4  # two halves of two losses each


def option(default: Any, help_text: str, choices: tuple | None = None) -> Any:
    """Declare a config field with its help text and, for enumerations, its allowed values."""
    metadata = {'help': help_text, 'choices': choices}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _check_range(section: str, name: str, value: float | None, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> None:
    if value is None:
        return
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        bounds = [f'{">" if low_open else ">="} {low}' if low is not None else '',
                  f'{"<" if high_open else "<="} {high}' if high is not None else '']
        key = f'{section}.{name}' if section else name
        raise ValueError(f'{key} = {value} is out of range: expected '
                         f'{" and ".join(b for b in bounds if b)}')


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build."""

    name: str = option('lenet', 'architecture name (see dl_perception.models.list_models())')
    activation: str = option('relu', 'hidden-layer activation', tuple(ACTIVATIONS))
    batch_norm: bool | None = option(None, 'batch normalization; null = the family default')
    dropout: float | None = option(None, 'dropout probability; null = the family default')
    options: dict = option({}, 'family-specific builder options, e.g. {inception: naive}')
    pretrained: str | None = option(
        None, 'torchvision-format state dict to start from (local file, never downloaded); the '
              'head is replaced, an RGB stem is summed for grey input, and with '
              f'data.input_size null small images are upsampled to {SMALL_INPUT_SIZE} px for '
              'ImageNet weights')
    freeze_backbone: bool = option(False, 'train the classifier head only')
    test_time_flip: bool = option(False, 'test and export the mean of the logits of each image '
                                         'and its mirror image (2x inference cost; only for '
                                         'classes a left-right flip keeps)')

    def __post_init__(self) -> None:
        _check_range('model', 'dropout', self.dropout, 0.0, 1.0)
        if self.freeze_backbone and not self.pretrained:
            raise ValueError('model.freeze_backbone needs model.pretrained: a frozen random '
                             'backbone learns nothing')


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, applied to uint8 images before normalization."""

    crop_padding: int = option(0, 'random crop after zero-padding each side by this many pixels')
    horizontal_flip: bool = option(False, 'random left-right flips')
    vertical_flip: bool = option(False, 'random up-down flips')
    random_erasing: float = option(0.0, 'probability of erasing a random rectangle')

    def __post_init__(self) -> None:
        _check_range('data.augment', 'crop_padding', self.crop_padding, 0)
        _check_range('data.augment', 'random_erasing', self.random_erasing, 0.0, 1.0)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are batched."""

    dataset: str = option('fashion-mnist', 'dataset kind', DATASETS)
    root: str = option('/usr/share/datasets/fashion-mnist',
                       'fashion-mnist: folder of the IDX .gz files; folder: a folder with '
                       'train/ (val/, test/) or one sub-folder per class')
    input_size: int | None = option(None, 'network input side in pixels; null = native size')
    channels: str | None = option(None, 'network input channels; null = native', ('grey', 'rgb'))
    resize: str = option('stretch', 'resize policy at evaluation time', RESIZE_POLICIES)
    crop_fraction: float = option(1.0, 'center_crop: fraction of the scaled image kept')
    mean: list | None = option(None, 'per-channel mean (0..1); null = computed from train')
    std: list | None = option(None, 'per-channel std (0..1); null = computed from train')
    val_fraction: float = option(0.1, 'fraction of train held out for validation when the '
                                      'dataset has no val split (seeded)')
    train_subset: int | None = option(None, 'use only this many training images (seeded)')
    test_subset: int | None = option(None, 'use only this many test images (first N)')
    batch_size: int = option(128, 'training batch size (1 = plain SGD)')
    eval_batch_size: int = option(512, 'evaluation batch size')
    workers: int = option(2, 'DataLoader worker processes (0 = load in the training process, '
                             'as is always done for in-memory images that need no '
                             'resizing: their augmentation is batched)')
    augment: AugmentConfig = option(AugmentConfig(), 'augmentation')

    def __post_init__(self) -> None:
        _check_range('data', 'input_size', self.input_size, 16)
        _check_range('data', 'crop_fraction', self.crop_fraction, 0.0, 1.0, low_open=True)
        _check_range('data', 'val_fraction', self.val_fraction, 0.0, 1.0, low_open=True)
        _check_range('data', 'train_subset', self.train_subset, 1)
        _check_range('data', 'test_subset', self.test_subset, 1)
        _check_range('data', 'batch_size', self.batch_size, 1)
        _check_range('data', 'eval_batch_size', self.eval_batch_size, 1)
        _check_range('data', 'workers', self.workers, 0)


@dataclass(frozen=True)
class OptimizerConfig:
    """The update rule."""

    name: str = option('momentum', 'optimizer; gd = full batch, one step per epoch',
                       OPTIMIZER_NAMES)
    lr: float = option(0.05, 'initial learning rate')
    momentum: float = option(0.9, 'momentum / nesterov: momentum coefficient')
    momentum_form: str = option(
        'pytorch', "momentum / nesterov: pytorch = torch's b = mu*b + g, p -= lr*b; lecture = "
                   'dw = mu*dw - lr*g, p += dw (differ when the schedule changes lr)',
        MOMENTUM_FORMS)
    betas: list = option([0.9, 0.999], 'adam / adamw: moment decay rates')
    eps: float = option(1e-8, 'adagrad / rmsprop / adam / adamw: numerical epsilon')
    alpha: float = option(0.99, 'rmsprop: decay rate of the squared-gradient average')

    def __post_init__(self) -> None:
        _check_range('optimizer', 'lr', self.lr, 0.0, low_open=True)
        _check_range('optimizer', 'momentum', self.momentum, *MOMENTUM_BOUNDS, high_open=True)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f'optimizer.betas = {self.betas}: expected two values in [0, 1)')


@dataclass(frozen=True)
class ScheduleConfig:
    """How the learning rate changes."""

    name: str = option('constant', 'schedule', SCHEDULE_NAMES)
    decay: float = option(0.95, 'exponential: lr_t = max(lr_0 * decay^t, lr_min)')
    per: str = option('epoch', 'exponential: t counts', ('step', 'epoch'))
    lr_min: float = option(0.0, 'floor of exponential / cosine / plateau')
    step_size: int = option(30, 'step: epochs between decays')
    gamma: float = option(0.1, 'step: decay factor')
    plateau_factor: float = option(0.1, 'plateau: factor when validation loss stalls')
    plateau_patience: int = option(5, 'plateau: epochs without improvement before decaying')
    warmup_epochs: float = option(0.0, 'linear warm-up length in epochs (may be fractional)')

    def __post_init__(self) -> None:
        _check_range('schedule', 'decay', self.decay, 0.0, 1.0, low_open=True)
        _check_range('schedule', 'lr_min', self.lr_min, 0.0)
        _check_range('schedule', 'step_size', self.step_size, 1)
        _check_range('schedule', 'gamma', self.gamma, 0.0, 1.0, low_open=True)
        _check_range('schedule', 'plateau_factor', self.plateau_factor, 0.0, 1.0, low_open=True)
        _check_range('schedule', 'plateau_patience', self.plateau_patience, 0)
        _check_range('schedule', 'warmup_epochs', self.warmup_epochs, 0.0)


@dataclass(frozen=True)
class RegularizationConfig:
    """Penalties and constraints against over-fitting, and early stopping."""

    l1: float = option(0.0, 'L1 penalty coefficient (sum |w| added to the loss)')
    l2: float = option(0.0, 'squared-L2 penalty coefficient (sum w^2 added to the loss)')
    weight_decay: float = option(0.0, 'decoupled weight decay (w -= lr * decay * w each step)')
    max_norm: float | None = option(None, "max-norm constraint c: each unit's incoming weight "
                                          'vector has squared norm <= c after every step')
    grad_clip: float | None = option(None, 'clip the global gradient norm to this value')
    label_smoothing: float = option(0.0, 'label smoothing of the cross-entropy target')
    early_stopping_patience: int | None = option(None, 'stop after this many epochs without '
                                                       'improvement of the watched validation '
                                                       'metric; null = off')
    early_stopping_min_delta: float = option(0.0, 'smallest improvement that counts, in the '
                                                  "watched metric's units")
    early_stopping_metric: str = option(
        'accuracy', 'validation metric that early stopping watches and best.pt is chosen by: '
                    'accuracy (highest) or loss (lowest, the "validation error")',
        tuple(EARLY_STOPPING_METRICS))

    def __post_init__(self) -> None:
        for name in ('l1', 'l2', 'weight_decay', 'early_stopping_min_delta'):
            _check_range('regularization', name, getattr(self, name), 0.0)
        _check_range('regularization', 'max_norm', self.max_norm, 0.0, low_open=True)
        _check_range('regularization', 'grad_clip', self.grad_clip, 0.0, low_open=True)
        _check_range('regularization', 'label_smoothing', self.label_smoothing, 0.0, 1.0)
        _check_range('regularization', 'early_stopping_patience',
                     self.early_stopping_patience, 1)


@dataclass(frozen=True)
class DivergenceConfig:
    """Recovery when the loss blows up: roll back, divide the learning rate by 10, retry."""

    max_retries: int = option(3, 'rollbacks allowed before training stops with an error')
    explode_factor: float = option(5.0, 'diverged when the smoothed loss exceeds this many '
                                        'times the first loss (or is not finite)')

    def __post_init__(self) -> None:
        _check_range('divergence', 'max_retries', self.max_retries, 0)
        _check_range('divergence', 'explode_factor', self.explode_factor, 1.0, low_open=True)


@dataclass(frozen=True)
class LrTuningConfig:
    """The lecture's learning-rate rule, tried before the first epoch (see lr_tuning)."""

    enabled: bool = option(False, 'before training, tune optimizer.lr in trials of `window` '
                                  'steps from the initial weights: too high (rising, not '
                                  'finite, or oscillating) -> divide by lower_factor; too low '
                                  '(decreasing but slowly) -> multiply by raise_factor; stop '
                                  'when the loss decreases consistently')
    window: int = option(60, 'optimizer steps per trial')
    min_decrease: float = option(0.05, 'a trial decreases when the mean loss of its second '
                                       "half is this fraction below the first half's (and "
                                       'rises when it is this fraction above)')
    oscillation: float = option(0.1, 'a trial that neither decreases nor rises oscillates '
                                     '(too high) when std/mean of its losses is at least '
                                     'this, else it is slow (too low)')
    raise_factor: float = option(3.0, 'too low: multiply the rate by this (the lecture: 2-5)')
    lower_factor: float = option(10.0, 'too high: divide the rate by this (the lecture: 10)')
    max_trials: int = option(8, 'trials before giving up (then the largest rate found too '
                                'low is kept)')

    def __post_init__(self) -> None:
        _check_range('lr_tuning', 'window', self.window, MIN_TUNING_WINDOW)
        _check_range('lr_tuning', 'min_decrease', self.min_decrease, 0.0, 1.0,
                     low_open=True, high_open=True)
        _check_range('lr_tuning', 'oscillation', self.oscillation, 0.0, low_open=True)
        _check_range('lr_tuning', 'raise_factor', self.raise_factor, 1.0, low_open=True)
        _check_range('lr_tuning', 'lower_factor', self.lower_factor, 1.0, low_open=True)
        _check_range('lr_tuning', 'max_trials', self.max_trials, 1)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs."""

    model: ModelConfig = option(ModelConfig(), 'network')
    data: DataConfig = option(DataConfig(), 'data')
    optimizer: OptimizerConfig = option(OptimizerConfig(), 'update rule')
    schedule: ScheduleConfig = option(ScheduleConfig(), 'learning-rate schedule')
    regularization: RegularizationConfig = option(RegularizationConfig(), 'regularization')
    divergence: DivergenceConfig = option(DivergenceConfig(), 'divergence recovery')
    lr_tuning: LrTuningConfig = option(LrTuningConfig(), 'learning-rate tuning by the '
                                                         "lecture's rule")
    epochs: int = option(10, 'passes over the training set')
    seed: int = option(0, 'seed of every random choice (data order, init, augmentation)')
    device: str = option('auto', 'auto = cuda when available', ('auto', 'cpu', 'cuda'))
    amp: str = option('auto', 'mixed precision; auto = bf16 (else fp16) on CUDA, off on the '
                              'CPU, where bf16 must be asked for', ('auto', 'off', 'bf16', 'fp16'))
    channels_last: bool | None = option(None, 'channels-last memory format; null = on CUDA')
    output_dir: str = option('runs', 'folder that receives the run folder')
    run_name: str | None = option(None, 'run folder name; null = <model>-<date>-<time>')
    progress: bool = option(True, 'show a progress bar')
    grad_norm_every: int = option(50, 'record per-layer gradient norms every N steps')

    def __post_init__(self) -> None:
        _check_range('', 'epochs', self.epochs, 1)
        _check_range('', 'grad_norm_every', self.grad_norm_every, 1)
        if self.lr_tuning.enabled and self.schedule.warmup_epochs:
            raise ValueError('lr_tuning.enabled judges the first steps at optimizer.lr, but '
                             'schedule.warmup_epochs changes the rate during them: use one '
                             'of the two')
        if self.lr_tuning.enabled and self.optimizer.name == 'gd':
            raise ValueError('lr_tuning.enabled needs optimizer steps within an epoch; gd '
                             'takes one step per epoch')


def _describe_type(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return getattr(args[0] if args else hint, '__name__', str(hint))


def _float_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _convert(path: str, hint: Any, value: Any) -> Any:
    """Coerce one YAML value to a field's type; ValueError names the key on a mismatch."""
    optional = type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        raise ValueError(f'{path} must not be null')
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if isinstance(base, type) and hasattr(base, '__dataclass_fields__'):
        if not isinstance(value, dict):
            raise ValueError(f'{path} must be a mapping, got {value!r}')
        return _build(base, value, path + '.')
    if base is float and isinstance(value, str):
        value = _float_or_text(value)  # YAML 1.1 reads 1e-5 (no dot) as text
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f'{path} = {value} is not a finite number')
        return float(value)
    if base in (list, dict) and isinstance(value, tuple):
        value = list(value)
    if base is list and isinstance(value, list) and any(
            isinstance(item, float) and not math.isfinite(item) for item in value):
        raise ValueError(f'{path} = {value} holds a number that is not finite')
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ValueError(f'{path} must be {_describe_type(hint)}, got {value!r}')
    return value


def _switch_word(value: Any, choices: tuple | None) -> Any:
    """Give back ``off`` / ``on``, which YAML 1.1 reads unquoted as booleans, to a text choice."""
    if isinstance(value, bool) and choices:
        word = 'on' if value else 'off'
        if word in choices:
            return word
    return value


def _build(cls: type, values: dict, prefix: str = '') -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        section = prefix.rstrip('.') or 'the top level'
        raise ValueError(f'unknown config key {prefix}{unknown[0]}; allowed keys in '
                         f'{section}: {", ".join(sorted(known))}')
    kwargs = {}
    for name, value in values.items():
        path = prefix + name
        choices = known[name].metadata.get('choices')
        kwargs[name] = _convert(path, hints[name], _switch_word(value, choices))
        if choices and kwargs[name] is not None and kwargs[name] not in choices:
            raise ValueError(f'{path} = {kwargs[name]!r} is not allowed; choose one of: '
                             f'{", ".join(map(str, choices))}')
    return cls(**kwargs)


def _set_dotted(tree: dict, assignment: str) -> None:
    key, sep, text = assignment.partition('=')
    if not sep or not key:
        raise ValueError(f'--set expects key=value (e.g. optimizer.lr=0.01), got {assignment!r}')
    *parents, leaf = key.strip().split('.')
    node = tree
    for parent in parents:
        node = node.setdefault(parent, {})
        if not isinstance(node, dict):
            raise ValueError(f'--set {key}: {parent} is not a section')
    node[leaf] = yaml.safe_load(text)


def parse_config(document: dict | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Build a validated TrainConfig from a YAML mapping plus ``key=value`` overrides."""
    tree = dict(document or {})
    for assignment in overrides:
        _set_dotted(tree, assignment)
    return _build(TrainConfig, tree)


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config file (or none) and apply overrides; errors name the file."""
    if path is None:
        return parse_config(None, overrides)
    try:
        with open(path) as stream:
            document = yaml.safe_load(stream)
    except FileNotFoundError:
        raise FileNotFoundError(f'config file not found: {path}') from None
    except yaml.YAMLError as error:
        raise ValueError(f'{path} is not valid YAML: {error}') from None
    if document is not None and not isinstance(document, dict):
        raise ValueError(f'{path} must hold a mapping of config keys at the top level')
    try:
        return parse_config(document, overrides)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None


def config_to_dict(config: TrainConfig) -> dict:
    """Plain nested dict (YAML/JSON-safe, checkpoint-safe) of a config."""
    return asdict(config)


def describe_options(cls: type = TrainConfig, prefix: str = '') -> list[str]:
    """One line pair per config key: dotted name = default {allowed values}, then its help."""
    defaults = cls()
    lines = []
    for item in fields(cls):
        value = getattr(defaults, item.name)
        if hasattr(value, '__dataclass_fields__'):
            lines.extend(describe_options(type(value), f'{prefix}{item.name}.'))
            continue
        choices = item.metadata.get('choices')
        allowed = f' {{{", ".join(map(str, choices))}}}' if choices else ''
        lines.append(f'  {prefix}{item.name} = {value!r}{allowed}\n      {item.metadata["help"]}')
    return lines
