"""Weight penalties, decoupled decay, max-norm and early stopping on small hand-made models."""

from __future__ import annotations

import io

from dl_perception.training.regularization import apply_max_norm_
from dl_perception.training.regularization import decoupled_weight_decay_
from dl_perception.training.regularization import EarlyStopping
from dl_perception.training.regularization import weight_penalty
import pytest
import torch
from torch import nn

CONV_WEIGHT = [[[[1.0, -2.0], [0.0, 3.0]]], [[[-1.0, 1.0], [1.0, -1.0]]]]  # L1 10, squared L2 18
LINEAR_WEIGHT = [[0.5, -1.5], [2.0, -1.0]]  # L1 5, squared L2 7.5


def small_model() -> nn.Sequential:
    """Return conv -> batch norm -> linear (for 1 x 2 x 2 images) with known weights."""
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(CONV_WEIGHT))
        model[3].weight.copy_(torch.tensor(LINEAR_WEIGHT))
        model[0].bias.fill_(100.0)
        model[1].weight.fill_(7.0)
        model[1].bias.fill_(-9.0)
        model[3].bias.fill_(50.0)
    return model


def test_penalty_matches_hand_computation():
    model = small_model()
    assert weight_penalty(model, l1=1.0).item() == pytest.approx(15.0)
    assert weight_penalty(model, l2=1.0).item() == pytest.approx(25.5)
    assert weight_penalty(model, l1=0.1, l2=0.01).item() == pytest.approx(1.5 + 0.255)


def test_penalty_excludes_biases_and_norm_layers_and_passes_gradients():
    model = small_model()
    l1, l2 = 0.1, 0.01
    weight_penalty(model, l1=l1, l2=l2).backward()
    for layer, values in ((model[0], CONV_WEIGHT), (model[3], LINEAR_WEIGHT)):
        w = torch.tensor(values)
        torch.testing.assert_close(layer.weight.grad, l1 * torch.sign(w) + 2 * l2 * w)
        assert layer.bias.grad is None
    assert model[1].weight.grad is None and model[1].bias.grad is None


def test_penalty_is_zero_without_touching_parameters():
    """With both coefficients 0 the weights are not read: NaN weights still give 0."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(float('nan'))
    penalty = weight_penalty(model)
    assert penalty.dim() == 0 and penalty.item() == 0.0 and not penalty.requires_grad


def test_decoupled_decay_shrinks_only_weights():
    model = small_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    decoupled_weight_decay_(model, lr=0.1, weight_decay=0.5)
    after = model.state_dict()
    for name, value in before.items():
        shrunk = name in ('0.weight', '3.weight')
        torch.testing.assert_close(after[name], value * 0.95 if shrunk else value)


@pytest.mark.parametrize('lr, weight_decay', [(0.1, 0.0), (0.0, 0.1)])
def test_decoupled_decay_of_zero_changes_nothing(lr, weight_decay):
    model = small_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    decoupled_weight_decay_(model, lr=lr, weight_decay=weight_decay)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


def unit_norms(weight: torch.Tensor) -> torch.Tensor:
    """Return the squared L2 norm of each output unit's incoming weights."""
    return weight.detach().flatten(1).square().sum(1)


def test_max_norm_holds_after_a_large_step_and_spares_units_inside():
    """A step with lr 10 moves every unit but the first; those outside come back to the ball."""
    torch.manual_seed(0)
    c = 2.0
    conv, linear = nn.Conv2d(2, 3, 3), nn.Linear(4, 3)
    model = nn.Sequential(conv, nn.Flatten(), linear)
    with torch.no_grad():
        conv.weight.mul_(0.1)
        linear.weight.mul_(0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)
    x = torch.randn(5, 2, 3, 3)
    # Only units 1 and 2 of each layer get a gradient; unit 0 stays small, inside the ball.
    (conv(x)[:, 1:].square().sum() + linear(torch.randn(5, 4))[:, 1:].square().sum()).backward()
    optimizer.step()
    stepped = [conv.weight.detach().clone(), linear.weight.detach().clone()]
    for weight in stepped:
        assert unit_norms(weight)[0] < c and (unit_norms(weight)[1:] > c).all()
    biases = [conv.bias.detach().clone(), linear.bias.detach().clone()]

    apply_max_norm_(model, c)

    for weight, old, bias, old_bias in zip((conv.weight, linear.weight), stepped,
                                           (conv.bias, linear.bias), biases):
        assert (unit_norms(weight) <= c + 1e-6).all()
        assert unit_norms(weight)[1:] == pytest.approx([c, c], rel=1e-5)  # onto the boundary
        assert torch.equal(weight[0], old[0])
        cosine = nn.functional.cosine_similarity(weight.detach().flatten(1), old.flatten(1))
        torch.testing.assert_close(cosine, torch.ones(3))  # rescaled, not turned
        assert torch.equal(bias, old_bias)


@pytest.mark.parametrize('call, bad', [
    (lambda model: weight_penalty(model, l1=-1.0), 'l1'),
    (lambda model: weight_penalty(model, l2=float('nan')), 'l2'),
    (lambda model: decoupled_weight_decay_(model, lr=-0.1, weight_decay=0.1), 'lr'),
    (lambda model: decoupled_weight_decay_(model, lr=0.1, weight_decay=-0.1), 'weight_decay'),
    (lambda model: decoupled_weight_decay_(model, lr=0.5, weight_decay=2.0), 'weight_decay'),
    (lambda model: apply_max_norm_(model, 0.0), 'max_squared_norm'),
    (lambda model: apply_max_norm_(model, float('inf')), 'max_squared_norm'),
])
def test_invalid_arguments_raise(call, bad):
    with pytest.raises(ValueError, match=bad):
        call(small_model())


def test_early_stopping_improvement_and_min_delta():
    stopping = EarlyStopping(patience=5, min_delta=0.05, mode='max')
    assert stopping.best_metric is None and stopping.best_epoch == 0
    stopping.update(0.5, nn.Linear(1, 1))
    stopping.update(0.54, nn.Linear(1, 1))  # better, but not by more than min_delta
    assert (stopping.best_metric, stopping.best_epoch) == (0.5, 1)
    stopping.update(0.56, nn.Linear(1, 1))
    assert (stopping.best_metric, stopping.best_epoch) == (0.56, 3)
    stopping.update(float('nan'), nn.Linear(1, 1))
    assert stopping.best_epoch == 3


def test_early_stopping_min_mode_for_losses():
    stopping = EarlyStopping(patience=5, mode='min')
    for loss in (1.0, 0.8, 0.9, 0.7, 0.75):
        stopping.update(loss, nn.Linear(1, 1))
    assert (stopping.best_metric, stopping.best_epoch) == (0.7, 4)


def test_early_stopping_stops_after_patience_and_improvement_resets_it():
    stopping = EarlyStopping(patience=2)
    model = nn.Linear(1, 1)
    decisions = [stopping.update(metric, model) for metric in (0.5, 0.4, 0.6, 0.6, 0.5)]
    assert decisions == [False, False, False, False, True]
    assert stopping.should_stop


def train_with_early_stopping(stopping: EarlyStopping, model: nn.Linear,
                              metrics: list[float]) -> list[dict[str, torch.Tensor]]:
    """Take an SGD step before each update; return the weights each update saw."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = []
    for metric in metrics:
        optimizer.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        seen.append({name: value.clone() for name, value in model.state_dict().items()})
        stopping.update(metric, model)
    return seen


def test_restore_best_brings_back_the_best_epoch_after_training_on():
    model = nn.Linear(3, 2)
    stopping = EarlyStopping(patience=10)
    seen = train_with_early_stopping(stopping, model, [0.1, 0.7, 0.3, 0.2])
    assert not torch.equal(model.weight, seen[1]['weight'])
    stopping.restore_best(model)
    for name, value in model.state_dict().items():
        assert torch.equal(value, seen[1][name])


def test_restore_best_before_any_update_raises():
    with pytest.raises(RuntimeError, match='update'):
        EarlyStopping(patience=1).restore_best(nn.Linear(1, 1))


def test_early_stopping_state_round_trip_through_torch_save():
    model = nn.Linear(3, 2)
    stopping = EarlyStopping(patience=3, mode='max')
    seen = train_with_early_stopping(stopping, model, [0.1, 0.7, 0.3, 0.2])
    buffer = io.BytesIO()
    torch.save(stopping.state_dict(), buffer)
    buffer.seek(0)

    resumed = EarlyStopping(patience=3, mode='max')
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert (resumed.best_metric, resumed.best_epoch) == (0.7, 2)
    fresh = nn.Linear(3, 2)
    resumed.restore_best(fresh)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, seen[1][name])
    assert not resumed.should_stop
    assert resumed.update(0.6, fresh)  # the third update in a row without improvement


def test_loading_a_state_of_another_mode_raises():
    with pytest.raises(ValueError, match='mode'):
        EarlyStopping(patience=1, mode='min').load_state_dict(
            EarlyStopping(patience=1, mode='max').state_dict())


@pytest.mark.parametrize('options, bad', [
    ({'patience': 0}, 'patience'),
    ({'patience': 1.5}, 'patience'),
    ({'patience': 2, 'min_delta': -0.1}, 'min_delta'),
    ({'patience': 2, 'mode': 'maximum'}, 'mode'),
])
def test_early_stopping_invalid_arguments_raise(options, bad):
    with pytest.raises(ValueError, match=bad):
        EarlyStopping(**options)
