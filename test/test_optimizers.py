"""
Each optimizer against its textbook update, written independently here with numpy.

The problem is logistic regression with three parameters (two weights and a bias) on four
fixed points; the gradient is derived by hand, never taken from torch.
"""

from __future__ import annotations

from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.optimizers import OPTIMIZER_NAMES
import numpy as np
import pytest
import torch
import torch.nn.functional as F

X = np.array([[1.0, 2.0, 1.0], [-1.5, 0.5, 1.0], [0.3, -2.0, 1.0], [2.0, 1.0, 1.0]])
Y = np.array([1.0, 0.0, 1.0, 0.0])
W0 = np.array([0.1, -0.2, 0.05])
STEPS = 5
LR = 0.1
# eps this large makes its placement matter far beyond the tolerance of the comparisons.
BIG_EPS = 0.1


def gradient(w: np.ndarray) -> np.ndarray:
    """Gradient of the mean binary cross-entropy of ``sigmoid(X @ w)`` against ``Y``."""
    return X.T @ (1.0 / (1.0 + np.exp(-X @ w)) - Y) / len(Y)


def torch_trajectory(name: str, **options) -> list[np.ndarray]:
    """Parameters after each of STEPS steps of the named optimizer, float64."""
    w = torch.tensor(W0, requires_grad=True)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    optimizer = create_optimizer(name, [w], **options)
    trajectory = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(x @ w, y).backward()
        optimizer.step()
        trajectory.append(w.detach().numpy().copy())
    return trajectory


def assert_same(torch_steps: list[np.ndarray], textbook_steps: list[np.ndarray]) -> None:
    """Check that every step's parameters agree to 1e-6 relative."""
    assert len(torch_steps) == len(textbook_steps) == STEPS
    for step, (ours, theirs) in enumerate(zip(torch_steps, textbook_steps), start=1):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12, err_msg=f'step {step}')


def assert_differs(torch_steps: list[np.ndarray], other_steps: list[np.ndarray]) -> None:
    """Check that the final parameters differ far beyond the tolerance of ``assert_same``."""
    assert np.max(np.abs(torch_steps[-1] - other_steps[-1])) > 1e-4


def textbook_gd() -> list[np.ndarray]:
    w, steps = W0.copy(), []
    for _ in range(STEPS):
        w = w - LR * gradient(w)
        steps.append(w)
    return steps


def textbook_momentum(mu: float) -> list[np.ndarray]:
    """Sutskever et al. (2013): ``v = mu * v - lr * g(w)``; ``w += v``."""
    w, v, steps = W0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        v = mu * v - LR * gradient(w)
        w = w + v
        steps.append(w)
    return steps


def textbook_nesterov(mu: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sutskever et al. (2013): ``v = mu * v - lr * g(w + mu * v)``; ``w += v``; each (w, v)."""
    w, v, steps = W0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        v = mu * v - LR * gradient(w + mu * v)
        w = w + v
        steps.append((w, v))
    return steps


def textbook_adagrad(eps: float, eps_inside: bool) -> list[np.ndarray]:
    """Duchi et al. (2011): ``r += g**2``; ``w -= lr * g / sqrt(r)`` with eps in or outside."""
    w, r, steps = W0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = gradient(w)
        r = r + g * g
        w = w - LR * g / (np.sqrt(r + eps) if eps_inside else np.sqrt(r) + eps)
        steps.append(w)
    return steps


def textbook_rmsprop(alpha: float, eps: float, eps_inside: bool) -> list[np.ndarray]:
    """Hinton's RMSProp: ``r = alpha * r + (1 - alpha) * g**2``; ``w -= lr * g / sqrt(r)``."""
    w, r, steps = W0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = gradient(w)
        r = alpha * r + (1 - alpha) * g * g
        w = w - LR * g / (np.sqrt(r + eps) if eps_inside else np.sqrt(r) + eps)
        steps.append(w)
    return steps


def textbook_adam(betas: tuple[float, float], eps: float, *, l2: float = 0.0,
                  decoupled: float = 0.0, eps_before_correction: bool = False
                  ) -> list[np.ndarray]:
    """
    Kingma and Ba (2015) Algorithm 1, with the variants the tests compare against.

    ``l2`` adds ``l2 * w`` to the gradient (Adam with L2); ``decoupled`` is Loshchilov and
    Hutter's (2019) Algorithm 2 decay ``w -= eta * lambda * w`` with schedule factor eta = 1;
    ``eps_before_correction`` is Kingma and Ba's 'more efficient' ordering of section 2.
    """
    beta1, beta2 = betas
    w, m, v, steps = W0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = gradient(w) + l2 * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if eps_before_correction:
            step = LR * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
        else:
            step = LR * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        w = w - step - decoupled * w
        steps.append(w)
    return steps


def test_names_are_the_ones_the_trainer_uses():
    assert OPTIMIZER_NAMES == (
        'gd', 'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw')


@pytest.mark.parametrize('name', ['gd', 'sgd'])
def test_gradient_descent_matches_textbook(name):
    """Plain gradient descent ``w -= lr * g``: torch and textbook agree exactly in form."""
    assert_same(torch_trajectory(name, lr=LR), textbook_gd())


def test_gd_and_sgd_take_the_same_single_step():
    """Full-batch versus mini-batch is the trainer's business: one step is ``w - lr * g``."""
    gd, sgd = torch_trajectory('gd', lr=LR)[0], torch_trajectory('sgd', lr=LR)[0]
    np.testing.assert_array_equal(gd, sgd)
    np.testing.assert_allclose(gd, W0 - LR * gradient(W0), rtol=1e-12)


def test_momentum_matches_textbook():
    """
    Torch keeps ``b = mu * b + g`` and steps ``w -= lr * b``; the textbook velocity is ``-lr * b``.

    Both give the same iterates while lr is constant, as here, so the comparison is direct.
    """
    assert_same(torch_trajectory('momentum', lr=LR, momentum=0.9), textbook_momentum(0.9))
    assert_differs(torch_trajectory('momentum', lr=LR, momentum=0.9), textbook_gd())


def test_nesterov_matches_textbook():
    """
    Torch's Nesterov stores the look-ahead point: its ``w`` is the textbook's ``w + mu * v``.

    The textbook takes the gradient at ``w + mu * v``; torch (the Bengio et al. 2013
    reformulation) takes it at its own parameters and steps ``w -= lr * (g + mu * b)``. The test
    runs the textbook form and compares torch's parameters with ``w + mu * v`` at every step.
    """
    mu = 0.9
    textbook = textbook_nesterov(mu)
    ours = torch_trajectory('nesterov', lr=LR, momentum=mu)
    assert_same(ours, [w + mu * v for w, v in textbook])
    assert_differs(ours, textbook_momentum(mu))


def test_adagrad_matches_textbook():
    """
    Torch divides by ``sqrt(r) + eps``; Ruder's survey and others write ``sqrt(r + eps)``.

    The test uses eps = 0.1, so that the placement changes the result far beyond the
    tolerance, compares with the eps-outside form and checks that the inside form is off.
    """
    ours = torch_trajectory('adagrad', lr=LR, eps=BIG_EPS)
    assert_same(ours, textbook_adagrad(BIG_EPS, eps_inside=False))
    assert_differs(ours, textbook_adagrad(BIG_EPS, eps_inside=True))


def test_rmsprop_matches_textbook():
    """
    Torch divides by ``sqrt(r) + eps``; Goodfellow et al. (Algorithm 8.5) write ``sqrt(eps + r)``.

    As for adagrad: eps = 0.1, compared with the outside form, and the inside form is off.
    """
    alpha = 0.9
    ours = torch_trajectory('rmsprop', lr=LR, alpha=alpha, eps=BIG_EPS)
    assert_same(ours, textbook_rmsprop(alpha, BIG_EPS, eps_inside=False))
    assert_differs(ours, textbook_rmsprop(alpha, BIG_EPS, eps_inside=True))


@pytest.mark.parametrize('eps', [1e-8, BIG_EPS])
def test_adam_matches_textbook(eps):
    """
    Torch follows Algorithm 1: eps is added to ``sqrt(v_hat)``, after the bias correction.

    Section 2's efficient form adds eps to ``sqrt(v)`` before the correction; with eps = 0.1
    the test checks that this form is off, so the comparison does tell the two apart.
    """
    betas = (0.8, 0.95)
    ours = torch_trajectory('adam', lr=LR, betas=betas, eps=eps)
    assert_same(ours, textbook_adam(betas, eps))
    if eps == BIG_EPS:
        assert_differs(ours, textbook_adam(betas, eps, eps_before_correction=True))


def test_adamw_decoupled_decay_matches_textbook():
    """
    Loshchilov and Hutter decay by ``eta * lambda * w``; torch by ``lr * weight_decay * w``.

    With the schedule factor eta = 1 the paper's lambda is torch's ``lr * weight_decay``; the
    test compares with that, and checks that Adam with an L2 term in the gradient is different.
    """
    betas, weight_decay = (0.9, 0.999), 0.5
    ours = torch_trajectory('adamw', lr=LR, betas=betas, weight_decay=weight_decay)
    assert_same(ours, textbook_adam(betas, 1e-8, decoupled=LR * weight_decay))
    assert_differs(ours, textbook_adam(betas, 1e-8, l2=weight_decay))
    assert_differs(ours, textbook_adam(betas, 1e-8))


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match='lbfgs') as error:
        create_optimizer('lbfgs', [torch.zeros(1, requires_grad=True)], lr=0.1)
    assert all(name in str(error.value) for name in OPTIMIZER_NAMES)


@pytest.mark.parametrize('name', [name for name in OPTIMIZER_NAMES if name != 'adamw'])
def test_weight_decay_only_for_adamw(name):
    with pytest.raises(ValueError, match='decoupled weight decay'):
        create_optimizer(name, [torch.zeros(1, requires_grad=True)], lr=0.1, weight_decay=1e-4)


@pytest.mark.parametrize('options, bad', [
    ({'lr': 0.0}, 'lr'),
    ({'lr': -0.1}, 'lr'),
    ({'lr': float('nan')}, 'lr'),
    ({'lr': 0.1, 'momentum': 1.0}, 'momentum'),
    ({'lr': 0.1, 'momentum': -0.1}, 'momentum'),
    ({'lr': 0.1, 'betas': (1.0, 0.999)}, 'betas'),
    ({'lr': 0.1, 'betas': (0.9,)}, 'betas'),
    ({'lr': 0.1, 'eps': 0.0}, 'eps'),
    ({'lr': 0.1, 'alpha': 1.0}, 'alpha'),
    ({'lr': 0.1, 'weight_decay': -1.0}, 'weight_decay'),
])
def test_values_out_of_range_raise(options, bad):
    with pytest.raises(ValueError, match=bad):
        create_optimizer('adamw', [torch.zeros(1, requires_grad=True)], **options)
