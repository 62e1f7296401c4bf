"""
Build networks by name, and find or replace their classification layer.

One dict maps a name to a builder. A builder takes the validated ModelConfig that every family
shares, plus keyword-only options of its own; build_model reads those options from the
builder's signature, so a misspelt option fails here with the allowed names instead of deep
inside a constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import inspect

from dl_perception.models.activations import check_activation
from dl_perception.models.layers import check_int
from torch import nn

SMALL_INPUT_SIZE = 64
MIN_INPUT_SIZE = 16

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class ModelConfig:
    """
    What every family is built from.

    ``input_size`` is the side of the square input in pixels; below SMALL_INPUT_SIZE (64) a
    family takes its small-input design (e.g. 28x28 Fashion-MNIST). ``batch_norm`` and
    ``dropout`` left as None mean the family's classic choice.
    """

    num_classes: int
    in_channels: int = 3
    input_size: int = 224
    activation: str = 'relu'
    batch_norm: bool | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        check_int('num_classes', self.num_classes, 1)
        check_int('in_channels', self.in_channels, 1)
        check_int('input_size', self.input_size, MIN_INPUT_SIZE)
        check_activation(self.activation)
        if self.batch_norm is not None and not isinstance(self.batch_norm, bool):
            raise TypeError(f'batch_norm must be True, False or None, got {self.batch_norm!r}')
        if self.dropout is not None:
            if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
                raise TypeError(f'dropout must be a number or None, got {self.dropout!r}')
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f'dropout must be in [0, 1), got {self.dropout}')

    @property
    def small(self) -> bool:
        """Whether the input is small enough for the family's small-input design."""
        return self.input_size < SMALL_INPUT_SIZE


def register_model(name: str) -> Callable:
    """
    Return a decorator that registers a builder under ``name``.

    The builder is called as ``builder(config, **options)``; its keyword-only parameters are
    the family's options.

    :raises ValueError: if ``name`` is already registered.
    """
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f'a model named {name!r} is already registered')
        _BUILDERS[name] = builder
        return builder
    return decorator


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_BUILDERS)


def model_options(name: str) -> list[str]:
    """
    Return the family-specific option names that ``name`` accepts, sorted.

    :raises ValueError: if ``name`` is not registered.
    """
    if name not in _BUILDERS:
        raise ValueError(f'unknown model {name!r}; known models: {", ".join(list_models())}')
    parameters = inspect.signature(_BUILDERS[name]).parameters.values()
    return sorted(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_model(name: str, *, num_classes: int, in_channels: int = 3, input_size: int = 224,
                activation: str = 'relu', batch_norm: bool | None = None,
                dropout: float | None = None, **options) -> nn.Module:
    """
    Build the network registered as ``name`` with fresh weights.

    :param input_size: side of the square input; below 64 the family adapts to small inputs.
    :param activation: a name from ACTIVATIONS.
    :param batch_norm: None for the family's classic default.
    :param dropout: drop probability in [0, 1); None for the family's classic default.
    :param options: family-specific options, see model_options(name).
    :raises ValueError: for an unknown name or option, or an out-of-range value.
    """
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f'{name} has no option {", ".join(unknown)}; allowed options: '
                         f'{", ".join(allowed) if allowed else "none"}')
    config = ModelConfig(num_classes=num_classes, in_channels=in_channels,
                         input_size=input_size, activation=activation,
                         batch_norm=batch_norm, dropout=dropout)
    return _BUILDERS[name](config, **options)


def _classifier_name(model: nn.Module) -> str:
    # Every family registers its output layer as the last nn.Linear of the model.
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise TypeError(f'{type(model).__name__} has no nn.Linear classification layer')
    return names[-1]


def classifier_module(model: nn.Module) -> nn.Linear:
    """
    Return the final classification layer of a model built here.

    Freeze everything else to train only this layer.

    :raises TypeError: if the model has no nn.Linear layer.
    """
    return model.get_submodule(_classifier_name(model))


def replace_classifier(model: nn.Module, num_classes: int) -> None:
    """
    Put a new, freshly initialised final layer with ``num_classes`` outputs into ``model``.

    The new layer keeps the old one's input width, bias, device and dtype. GoogLeNet's
    auxiliary heads, if enabled, are left as they are.

    :raises ValueError: if ``num_classes`` < 1.
    :raises TypeError: if the model has no nn.Linear layer.
    """
    check_int('num_classes', num_classes, 1)
    name = _classifier_name(model)
    old = model.get_submodule(name)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, child_name = name.rpartition('.')
    setattr(model.get_submodule(parent_name), child_name, new)
