"""
Optimizers by name, built from ``torch.optim``.

The update rules as torch implements them (``g`` the gradient, ``t`` the step count from 1),
and where they part from the textbook:

============  =================================================  ================================
name          torch update                                       textbook difference
============  =================================================  ================================
gd, sgd       ``p -= lr * g``                                    none; ``gd`` is full-batch only
                                                                 because the trainer steps once
                                                                 per epoch
momentum      ``b = mu * b + g``; ``p -= lr * b``                textbook ``v = mu * v - lr * g``;
                                                                 ``p += v``: the same while lr is
                                                                 constant (``v = -lr * b``)
nesterov      ``b = mu * b + g``; ``p -= lr * (g + mu * b)``     textbook takes ``g`` at the
                                                                 look-ahead ``p + mu * v``; torch
                                                                 stores that look-ahead point as
                                                                 ``p`` instead (same iterates,
                                                                 shifted by ``mu * v``)
adagrad       ``r += g**2``; ``p -= lr * g / (sqrt(r) + eps)``   some texts put eps inside:
                                                                 ``sqrt(r + eps)``
rmsprop       ``r = alpha * r + (1 - alpha) * g**2``;            some texts put eps inside:
              ``p -= lr * g / (sqrt(r) + eps)``                  ``sqrt(r + eps)``
adam          ``m``, ``v`` moving averages of ``g``, ``g**2``;   as Kingma and Ba's Algorithm 1:
              ``p -= lr * m_hat / (sqrt(v_hat) + eps)``          eps after the bias correction
adamw         ``p *= 1 - lr * weight_decay``, then adam          Loshchilov and Hutter decay by
                                                                 ``eta_t * lambda * p`` with
                                                                 ``eta_t`` the schedule factor;
                                                                 torch scales by lr instead
============  =================================================  ================================

Only ``adamw`` takes ``weight_decay``: for the others the trainer applies decoupled decay itself
(``regularization.decoupled_weight_decay_``), so that every optimizer decays the same way.

``momentum_form`` chooses how momentum and nesterov hold their velocity. ``pytorch`` (the
default) is torch's SGD above: the buffer ``b`` sums raw gradients and the *current* learning
rate scales all of it, ``p -= lr_t * b``. ``lecture`` is ``LectureMomentum``: the velocity is
the step itself, ``dw_t = mu * dw_{t-1} - lr_t * g``; ``p += dw_t``, so each gradient keeps the
learning rate of the step that computed it. The two give the same iterates while the learning
rate is constant; under warm-up (rising lr) torch's form replays old gradients at the new,
larger rate, and under cosine or step decay at the new, smaller one.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
import math

import torch

# momentum must lie in [low, high): shared with the training config's validation.
MOMENTUM_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True)
class _Settings:
    """The hyperparameters of ``create_optimizer``, validated once for every optimizer."""

    lr: float
    momentum: float
    betas: tuple[float, float]
    eps: float
    alpha: float
    weight_decay: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f'lr must be a finite number > 0, got {self.lr!r}')
        low, high = MOMENTUM_BOUNDS
        if not low <= self.momentum < high:
            raise ValueError(f'momentum must be in [{low:g}, {high:g}), got {self.momentum!r}')
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f'betas must be two numbers in [0, 1), got {self.betas!r}')
        if not self.eps > 0:
            raise ValueError(f'eps must be > 0, got {self.eps!r}')
        if not 0 <= self.alpha < 1:
            raise ValueError(f'alpha must be in [0, 1), got {self.alpha!r}')
        if not self.weight_decay >= 0:
            raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay!r}')


class LectureMomentum(torch.optim.Optimizer):
    """
    Momentum in the lecture's form: ``dw_t = mu * dw_{t-1} - lr_t * g``; ``p += dw_t``.

    The velocity ``dw`` is a step in parameter units, so a schedule that changes ``lr``
    rescales only new gradients (torch's SGD rescales the whole buffer). With ``nesterov``
    the gradient is taken at the look-ahead point, which is what ``p`` stores, as in torch:
    ``p += mu * dw_t - lr_t * g`` (derived from ``p_look = p + mu * dw``).
    """

    def __init__(self, params: Iterable, *, lr: float, momentum: float,
                 nesterov: bool = False) -> None:
        """
        Set the hyperparameters; ``lr`` is read from each group again at every step.

        :param lr: learning rate, > 0 (a schedule may change it between steps).
        :param momentum: ``mu``, in [0, 1).
        :param nesterov: take the gradient at the look-ahead point.
        """
        super().__init__(params, {'lr': lr, 'momentum': momentum, 'nesterov': nesterov})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one step with the gradients in ``p.grad``; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu = group['lr'], group['momentum']
            for param in group['params']:
                if param.grad is None:
                    continue
                state = self.state[param]
                if 'velocity' not in state:  # dw_0 = 0
                    state['velocity'] = torch.zeros_like(param)
                velocity = state['velocity']
                velocity.mul_(mu).add_(param.grad, alpha=-lr)
                if group['nesterov']:
                    param.add_(velocity, alpha=mu).add_(param.grad, alpha=-lr)
                else:
                    param.add_(velocity)
        return loss


_Factory = Callable[[Iterable, _Settings], torch.optim.Optimizer]

_FACTORIES: dict[str, _Factory] = {
    'gd': lambda params, s: torch.optim.SGD(params, lr=s.lr),
    'sgd': lambda params, s: torch.optim.SGD(params, lr=s.lr),
    'momentum': lambda params, s: torch.optim.SGD(params, lr=s.lr, momentum=s.momentum),
    'nesterov': lambda params, s: torch.optim.SGD(
        params, lr=s.lr, momentum=s.momentum, nesterov=True),
    'adagrad': lambda params, s: torch.optim.Adagrad(params, lr=s.lr, eps=s.eps),
    'rmsprop': lambda params, s: torch.optim.RMSprop(params, lr=s.lr, alpha=s.alpha, eps=s.eps),
    'adam': lambda params, s: torch.optim.Adam(params, lr=s.lr, betas=s.betas, eps=s.eps),
    'adamw': lambda params, s: torch.optim.AdamW(
        params, lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=s.weight_decay),
}

OPTIMIZER_NAMES: tuple[str, ...] = tuple(_FACTORIES)

# The optimizers that momentum_form changes, with the lecture form's factory.
_LECTURE_FACTORIES: dict[str, _Factory] = {
    'momentum': lambda params, s: LectureMomentum(params, lr=s.lr, momentum=s.momentum),
    'nesterov': lambda params, s: LectureMomentum(
        params, lr=s.lr, momentum=s.momentum, nesterov=True),
}
MOMENTUM_FORMS = ('pytorch', 'lecture')

# Optimizers that take weight_decay themselves; the others get it from the trainer.
_OWN_WEIGHT_DECAY = frozenset({'adamw'})


def owns_weight_decay(name: str) -> bool:
    """Return whether optimizer ``name`` applies weight decay itself (else the trainer does)."""
    return name in _OWN_WEIGHT_DECAY


def create_optimizer(name: str, params: Iterable, *, lr: float, momentum: float = 0.9,
                     betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                     alpha: float = 0.99, weight_decay: float = 0.0,
                     momentum_form: str = 'pytorch') -> torch.optim.Optimizer:
    """
    Build the optimizer called ``name`` over ``params``.

    Hyperparameters an optimizer does not use are validated but ignored, so that one
    configuration serves every name.

    :param name: one of ``OPTIMIZER_NAMES``.
    :param params: parameters or parameter groups, as ``torch.optim`` takes them.
    :param lr: learning rate, > 0.
    :param momentum: ``mu`` of momentum and nesterov, in [0, 1).
    :param betas: decay rates of adam's and adamw's moment estimates, each in [0, 1).
    :param eps: term added to the denominator of adagrad, rmsprop, adam and adamw, > 0.
    :param alpha: decay rate of rmsprop's squared-gradient average, in [0, 1).
    :param weight_decay: decoupled decay of adamw, >= 0; must be 0 for the other optimizers.
    :param momentum_form: how momentum and nesterov keep their velocity, one of
        ``MOMENTUM_FORMS`` (see the module docstring); the other optimizers ignore it.
    :raises ValueError: for an unknown name or momentum form, a value out of range, or weight
        decay asked of an optimizer other than adamw.
    :return: the optimizer.
    """
    if name not in _FACTORIES:
        raise ValueError(f'unknown optimizer {name!r}; choose one of {", ".join(OPTIMIZER_NAMES)}')
    if momentum_form not in MOMENTUM_FORMS:
        raise ValueError(f'unknown momentum_form {momentum_form!r}; choose one of '
                         f'{", ".join(MOMENTUM_FORMS)}')
    settings = _Settings(lr=lr, momentum=momentum, betas=tuple(betas), eps=eps, alpha=alpha,
                         weight_decay=weight_decay)
    if weight_decay != 0 and not owns_weight_decay(name):
        raise ValueError(
            f'optimizer {name!r} takes no weight_decay (got {weight_decay!r}); only '
            f'{", ".join(sorted(_OWN_WEIGHT_DECAY))} does: use the decoupled weight decay or the '
            'l2 penalty options of the trainer instead')
    if momentum_form == 'lecture' and name in _LECTURE_FACTORIES:
        return _LECTURE_FACTORIES[name](params, settings)
    return _FACTORIES[name](params, settings)
