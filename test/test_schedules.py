"""Learning-rate schedules: their formulas, warm-up, plateau, resuming, and validation."""

from __future__ import annotations

import io

from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.schedules import SCHEDULE_NAMES
import pytest
import torch

LR0 = 0.5


def make(name: str, *, lr: float = LR0, **options) -> LearningRateSchedule:
    """Return a schedule over a fresh SGD optimizer of one parameter."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    options = {'epochs': 10, 'steps_per_epoch': 4, **options}
    return LearningRateSchedule(optimizer, name, **options)


def run(schedule: LearningRateSchedule, epochs: int, steps_per_epoch: int,
        losses: list[float] | None = None) -> list[float]:
    """Drive the schedule like the trainer does; return the lr used by every step."""
    used = []
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            used.append(schedule.lr)
            schedule.step_batch()
        schedule.step_epoch(None if losses is None else losses[epoch])
    return used


def test_names():
    assert SCHEDULE_NAMES == ('constant', 'exponential', 'step', 'cosine', 'plateau')


def test_constant_never_moves():
    assert run(make('constant'), 10, 4) == [LR0] * 40


def test_exponential_per_step_follows_the_formula_with_its_floor():
    decay, lr_min = 0.9, 0.05
    used = run(make('exponential', per='step', decay=decay, lr_min=lr_min), 10, 4)
    expected = [max(LR0 * decay ** t, lr_min) for t in range(40)]
    assert used == pytest.approx(expected, rel=1e-12)
    assert used[-1] == lr_min and used[20] > lr_min  # the floor is reached inside the run


def test_exponential_per_epoch_follows_the_formula_with_its_floor():
    decay, lr_min = 0.7, 0.04
    used = run(make('exponential', per='epoch', decay=decay, lr_min=lr_min), 10, 4)
    expected = [max(LR0 * decay ** (t // 4), lr_min) for t in range(40)]
    assert used == pytest.approx(expected, rel=1e-12)
    assert min(used) == lr_min and used[4] < used[3]


def test_step_multiplies_by_gamma_every_step_size_epochs():
    used = run(make('step', step_size=3, gamma=0.5), 10, 4)
    expected = [LR0 * 0.5 ** (t // 4 // 3) for t in range(40)]
    assert used == pytest.approx(expected, rel=1e-12)


def test_cosine_endpoints_and_midpoint():
    lr_min = 0.1
    schedule = make('cosine', lr_min=lr_min, epochs=10, steps_per_epoch=4)
    used = run(schedule, 10, 4)
    assert used[0] == pytest.approx(LR0, rel=1e-12)
    assert used[20] == pytest.approx((LR0 + lr_min) / 2, rel=1e-12)
    assert schedule.lr == pytest.approx(lr_min, rel=1e-12)
    assert all(a > b for a, b in zip(used, used[1:]))


def test_cosine_matches_torch_cosine_annealing_per_step():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR0)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 40, eta_min=0.1)
    expected = []
    for _ in range(40):
        expected.append(torch_schedule.get_last_lr()[0])
        optimizer.step()
        torch_schedule.step()
    assert run(make('cosine', lr_min=0.1), 10, 4) == pytest.approx(expected, rel=1e-9)


def plateau_reference(losses: list[float], *, lr: float = LR0, **options) -> list[float]:
    """Return the lr after each epoch under torch's ReduceLROnPlateau."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    lrs = []
    for loss in losses:
        reference.step(loss)
        lrs.append(optimizer.param_groups[0]['lr'])
    return lrs


def test_plateau_reduces_after_patience_and_respects_lr_min():
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.89999, 0.86, 0.86, 0.86, 0.86, 0.86, 0.86, 0.86]
    schedule = make('plateau', epochs=len(losses), steps_per_epoch=1, plateau_patience=2,
                    plateau_factor=0.5, plateau_threshold=0.01, lr_min=0.1)
    lrs = []
    for loss in losses:
        schedule.step_batch()
        schedule.step_epoch(loss)
        lrs.append(schedule.lr)
    # 0.9 improves; three more epochs without gain pass patience 2 -> cut after the 5th epoch.
    assert lrs[:5] == [LR0] * 4 + [LR0 * 0.5]
    assert min(lrs) == 0.1 and lrs[-1] == 0.1
    assert lrs == pytest.approx(plateau_reference(
        losses, patience=2, factor=0.5, threshold=0.01, min_lr=0.1), rel=1e-12)


@pytest.mark.parametrize('lr', [1.5e-8, 1e-8])
def test_plateau_skips_cuts_below_torch_eps(lr):
    """Torch skips a cut smaller than 1e-8: from 1.5e-8 it cuts, from 1e-8 it does not."""
    losses = [1.0, 1.0, 1.0]
    schedule = make('plateau', lr=lr, epochs=3, steps_per_epoch=1, plateau_patience=0)
    lrs = []
    for loss in losses:
        schedule.step_batch()
        schedule.step_epoch(loss)
        lrs.append(schedule.lr)
    assert lrs == plateau_reference(losses, lr=lr, patience=0)
    assert (lrs[-1] < lr) == (lr > 1e-8)


def test_plateau_needs_val_loss():
    with pytest.raises(ValueError, match='val_loss'):
        make('plateau').step_epoch()


@pytest.mark.parametrize('name', SCHEDULE_NAMES)
def test_warmup_ramps_linearly_then_hands_over(name):
    """1.5 warm-up epochs of 4 steps: steps 1..6 use lr0 * k / 6, then the schedule starts."""
    options = {'warmup_epochs': 1.5, 'decay': 0.5, 'per': 'step', 'step_size': 1, 'gamma': 0.5}
    warm = make(name, **options)
    cold = make(name, **{**options, 'warmup_epochs': 0.0})
    used = run(warm, 10, 4, losses=[1.0] * 10)
    assert used[:6] == pytest.approx([LR0 * k / 6 for k in range(1, 7)], rel=1e-12)
    assert used[6] == pytest.approx(LR0, rel=1e-12)
    if name in ('constant', 'exponential'):  # these do not depend on the run's length
        assert used[6:] == pytest.approx(run(cold, 10, 4, losses=[1.0] * 10)[:34], rel=1e-12)


def test_warmup_then_cosine_reaches_lr_min_at_the_end():
    schedule = make('cosine', warmup_epochs=2, lr_min=0.05)
    used = run(schedule, 10, 4)
    assert used[7] == pytest.approx(LR0) and used[8] == pytest.approx(LR0)
    assert used[8 + 16] == pytest.approx((LR0 + 0.05) / 2)  # midpoint of the 32 cosine steps
    assert schedule.lr == pytest.approx(0.05)


def test_warmup_then_step_counts_epochs_after_warmup():
    used = run(make('step', warmup_epochs=0.5, step_size=2, gamma=0.1), 6, 4)
    # warm-up ends inside epoch 0; epochs 1 and 2 run at lr0, epochs 3 and 4 at lr0 / 10.
    assert used[2:12] == pytest.approx([LR0] * 10)
    assert used[12:20] == pytest.approx([LR0 * 0.1] * 8)


@pytest.mark.parametrize('name, options', [
    ('exponential', {'per': 'step', 'decay': 0.9, 'lr_min': 0.1, 'warmup_epochs': 1.25}),
    ('exponential', {'per': 'epoch', 'decay': 0.8}),
    ('step', {'step_size': 2, 'gamma': 0.3, 'warmup_epochs': 1}),
    ('cosine', {'lr_min': 0.01, 'warmup_epochs': 0.5}),
    ('plateau', {'plateau_patience': 1, 'plateau_factor': 0.5, 'warmup_epochs': 1}),
])
def test_resume_continues_exactly(name, options):
    """Run 5 epochs, save through torch.save, load into a new optimizer and schedule, go on."""
    losses = [1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7]  # plateau saves mid-patience
    whole = run(make(name, **options), 10, 4, losses)

    first = make(name, **options)
    before = run(first, 5, 4, losses[:5])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(name, lr=123.0, **options)  # a resumed optimizer may hold any lr
    second.load_state_dict(torch.load(buffer, weights_only=True))
    after = run(second, 5, 4, losses[5:])
    assert before + after == whole
    assert len(set(whole)) > 2  # the schedule did move


def test_every_param_group_is_scheduled():
    groups = [{'params': [torch.zeros(1, requires_grad=True)], 'lr': lr} for lr in (1.0, 0.1)]
    optimizer = torch.optim.SGD(groups)
    schedule = LearningRateSchedule(optimizer, 'exponential', epochs=3, steps_per_epoch=1,
                                    decay=0.5)
    schedule.step_batch()
    schedule.step_epoch()
    assert [group['lr'] for group in optimizer.param_groups] == [0.5, 0.05]


def test_loading_another_schedules_state_raises():
    with pytest.raises(ValueError, match='cosine'):
        make('step').load_state_dict(make('cosine').state_dict())


@pytest.mark.parametrize('options, bad', [
    ({'name': 'linear'}, 'name'),
    ({'epochs': 0}, 'epochs'),
    ({'epochs': 2.5}, 'epochs'),
    ({'steps_per_epoch': 0}, 'steps_per_epoch'),
    ({'decay': 0.0}, 'decay'),
    ({'decay': 1.5}, 'decay'),
    ({'lr_min': -0.1}, 'lr_min'),
    ({'lr_min': 1.0}, 'lr_min'),  # above the optimizer's lr
    ({'per': 'batch'}, 'per'),
    ({'step_size': 0}, 'step_size'),
    ({'gamma': 0.0}, 'gamma'),
    ({'plateau_factor': 1.0}, 'plateau_factor'),
    ({'plateau_patience': -1}, 'plateau_patience'),
    ({'plateau_threshold': -0.1}, 'plateau_threshold'),
    ({'warmup_epochs': -1.0}, 'warmup_epochs'),
    ({'warmup_epochs': 10.0}, 'warmup_epochs'),
    ({'epochs': 1, 'steps_per_epoch': 1, 'warmup_epochs': 0.6}, 'warmup_epochs'),
])
def test_bad_values_raise(options, bad):
    options = {'name': 'constant', **options}
    with pytest.raises(ValueError, match=bad) as error:
        make(options.pop('name'), **options)
    assert 'must be' in str(error.value)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as error:
        make('linear')
    assert all(name in str(error.value) for name in SCHEDULE_NAMES)


def test_plateau_ignores_the_epochs_of_warmup():
    """Patience 0, constant loss: epoch 2 (after warm-up) sets the best, epoch 3 cuts."""
    used = run(make('plateau', warmup_epochs=2, plateau_patience=0, plateau_factor=0.5), 6, 4,
               losses=[1.0] * 6)
    assert used[8:16] == pytest.approx([LR0] * 8)
    assert used[16:20] == pytest.approx([LR0 * 0.5] * 4)
    assert used[20:24] == pytest.approx([LR0 * 0.25] * 4)


@pytest.mark.parametrize('name', ['constant', 'exponential', 'cosine'])
def test_scaling_lowers_every_later_rate_floor_included(name):
    """Divergence recovery: scale_learning_rate(0.1) gives a tenth of the unscaled schedule."""
    def rates(scale_at: int | None) -> list[float]:
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=0.5)
        schedule = LearningRateSchedule(optimizer, name, epochs=4, steps_per_epoch=5,
                                        decay=0.5, per='step', lr_min=0.1)
        seen = []
        for step in range(20):
            if step == scale_at:
                schedule.scale_learning_rate(0.1)
            seen.append(schedule.lr)
            schedule.step_batch()
        return seen

    plain, scaled = rates(None), rates(7)
    assert scaled[:7] == plain[:7]
    assert scaled[7:] == pytest.approx([0.1 * lr for lr in plain[7:]], rel=1e-12)
    assert min(scaled[7:]) < 0.1  # the floor moved down too
