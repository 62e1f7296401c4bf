"""
Activation functions chosen by name.

A name -> factory table, so that every family accepts the same names and a new activation is
one line. Each call returns a fresh module, because PReLU carries its own parameter.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    'linear': nn.Identity,
    'sigmoid': nn.Sigmoid,
    'tanh': nn.Tanh,
    'relu': nn.ReLU,
    'softplus': nn.Softplus,
    'leaky_relu': nn.LeakyReLU,
    'prelu': nn.PReLU,
    'elu': nn.ELU,
    'swish': nn.SiLU,
}


def check_activation(name: str) -> None:
    """
    Refuse an activation name that is not in ACTIVATIONS.

    :raises ValueError: naming the bad value and the known names.
    """
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f'unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}')


def create_activation(name: str) -> nn.Module:
    """
    Return a new activation module for ``name``.

    :raises ValueError: if ``name`` is not one of ACTIVATIONS.
    """
    check_activation(name)
    return ACTIVATIONS[name]()


def replace_activations(model: nn.Module, name: str) -> None:
    """
    Swap every nn.ReLU inside ``model`` for a new ``name`` activation, in place.

    Used on torchvision-built networks: module names stay, so state-dict keys do too (PReLU
    adds its own weight). A module reused at two places (ResNet blocks) is replaced once and
    stays shared. ``relu`` leaves the model untouched.
    """
    check_activation(name)
    if name == 'relu':
        return
    targets = [(parent, child_name)
               for parent in model.modules()
               for child_name, child in parent.named_children()
               if isinstance(child, nn.ReLU)]
    for parent, child_name in targets:
        setattr(parent, child_name, create_activation(name))
