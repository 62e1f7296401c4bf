"""
Momentum in torch's form and in the lecture's, against steps computed by hand.

torch: ``b = mu * b + g``; ``p -= lr_t * b``. Lecture: ``dw = mu * dw - lr_t * g``; ``p += dw``.
They agree while lr is constant and part as soon as a schedule moves it.
"""

from __future__ import annotations

from pathlib import Path

from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.config import OptimizerConfig
from dl_perception.training.config import parse_config
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.optimizers import LectureMomentum
from dl_perception.training.optimizers import MOMENTUM_FORMS
from dl_perception.training.schedules import LearningRateSchedule
from dl_perception.training.trainer import Trainer
import pytest
import torch
from torch import nn

# The loss is w**2 / 2, so the gradient is w itself; w starts at 1, mu = 0.5, and the
# learning rate doubles before each step (a warm-up).
LRS = [0.1, 0.2, 0.4]
MU = 0.5
# Worked by hand, step by step (g, then the buffer, then w):
HAND_STEPS = {
    # b = 1, w = 1 - .1 * 1 = .9;  b = .5 + .9 = 1.4, w = .9 - .2 * 1.4 = .62;
    # b = .7 + .62 = 1.32, w = .62 - .4 * 1.32 = .092
    ('momentum', 'pytorch'): [0.9, 0.62, 0.092],
    # dw = -.1, w = .9;  dw = -.05 - .2 * .9 = -.23, w = .67;
    # dw = -.115 - .4 * .67 = -.383, w = .287
    ('momentum', 'lecture'): [0.9, 0.67, 0.287],
    # b = 1, w = 1 - .1 * (1 + .5) = .85;  b = .5 + .85 = 1.35, w = .85 - .2 * (.85 + .675)
    # = .545;  b = .675 + .545 = 1.22, w = .545 - .4 * (.545 + .61) = .083
    ('nesterov', 'pytorch'): [0.85, 0.545, 0.083],
    # dw = -.1, w = 1 - .05 - .1 = .85;  dw = -.05 - .17 = -.22, w = .85 - .11 - .17 = .57;
    # dw = -.11 - .228 = -.338, w = .57 - .169 - .228 = .173
    ('nesterov', 'lecture'): [0.85, 0.57, 0.173],
}


def scalar_trajectory(name: str, form: str, lrs: list[float]) -> list[float]:
    """Return w after each step on w**2 / 2, with the learning rate set to lrs[k] before step k."""
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    optimizer = create_optimizer(name, [w], lr=lrs[0], momentum=MU, momentum_form=form)
    trajectory = []
    for lr in lrs:
        optimizer.param_groups[0]['lr'] = lr
        optimizer.zero_grad()
        (w.square().sum() / 2).backward()
        optimizer.step()
        trajectory.append(float(w.detach()))
    return trajectory


@pytest.mark.parametrize('name, form', sorted(HAND_STEPS))
def test_steps_match_the_hand_computed_ones_with_a_changing_lr(name, form):
    assert scalar_trajectory(name, form, LRS) == pytest.approx(HAND_STEPS[name, form],
                                                               abs=1e-12)


def test_lecture_nesterov_is_sutskevers_update_seen_at_the_look_ahead_point():
    # Sutskever et al.: v = mu * v - lr * grad(w + mu * v); w += v. The stored p is w + mu * v.
    w, v, looked_at = 1.0, 0.0, []
    for lr in LRS:
        v = MU * v - lr * (w + MU * v)
        w += v
        looked_at.append(w + MU * v)
    assert scalar_trajectory('nesterov', 'lecture', LRS) == pytest.approx(looked_at, abs=1e-12)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def net_trajectory(name: str, form: str, schedule: str, warmup_epochs: float = 0.0,
                   steps: int = 8) -> list[torch.Tensor]:
    """Return the flat parameters after each step of a real net under a real schedule."""
    model = small_net()
    optimizer = create_optimizer(name, model.parameters(), lr=0.1, momentum=0.9,
                                 momentum_form=form)
    lrs = LearningRateSchedule(optimizer, schedule, epochs=2, steps_per_epoch=steps // 2,
                               warmup_epochs=warmup_epochs)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(steps, 5, 1, 8, 8, generator=generator)
    targets = torch.randint(0, 3, (steps, 5), generator=generator)
    trajectory = []
    for batch, target in zip(images, targets):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(batch), target).backward()
        optimizer.step()
        lrs.step_batch()
        trajectory.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return trajectory


@pytest.mark.parametrize('name', ['momentum', 'nesterov'])
def test_both_forms_agree_at_a_constant_lr(name):
    torch_form = net_trajectory(name, 'pytorch', 'constant')
    lecture = net_trajectory(name, 'lecture', 'constant')
    for ours, theirs in zip(lecture, torch_form):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not torch.equal(torch_form[0], torch_form[-1])  # it did move


@pytest.mark.parametrize('schedule, warmup', [('constant', 1.0), ('cosine', 0.0)])
def test_the_forms_part_under_warm_up_and_cosine(schedule, warmup):
    torch_form = net_trajectory('momentum', 'pytorch', schedule, warmup)
    lecture = net_trajectory('momentum', 'lecture', schedule, warmup)
    # the first step has no history to rescale; the later ones do
    torch.testing.assert_close(lecture[0], torch_form[0])
    assert (lecture[-1] - torch_form[-1]).abs().max() > 1e-3


def test_lecture_state_round_trips_and_continues_exactly():
    def run(restart_at: int | None, keep_state: bool = True) -> torch.Tensor:
        w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        optimizer = LectureMomentum([w], lr=0.1, momentum=0.9)
        for step in range(6):
            if step == restart_at:
                saved = optimizer.state_dict()
                optimizer = LectureMomentum([w], lr=0.1, momentum=0.9)
                if keep_state:
                    optimizer.load_state_dict(saved)
            optimizer.param_groups[0]['lr'] = 0.01 * (step + 1)
            optimizer.zero_grad()
            (w ** 4).sum().backward()
            optimizer.step()
        return w.detach()
    assert torch.equal(run(3), run(None))
    assert not torch.allclose(run(3, keep_state=False), run(None))  # the velocity matters


def test_other_optimizers_ignore_the_form_and_a_bad_form_is_refused():
    param = [torch.zeros(1, requires_grad=True)]
    assert isinstance(create_optimizer('momentum', param, lr=0.1, momentum_form='lecture'),
                      LectureMomentum)
    assert type(create_optimizer('adam', param, lr=0.1, momentum_form='lecture')) is (
        torch.optim.Adam)
    assert type(create_optimizer('momentum', param, lr=0.1)) is torch.optim.SGD
    with pytest.raises(ValueError, match="unknown momentum_form 'keras'; choose one of "
                                         'pytorch, lecture'):
        create_optimizer('momentum', param, lr=0.1, momentum_form='keras')


def test_config_offers_the_forms_of_the_optimizer_table():
    assert OptimizerConfig().momentum_form == 'pytorch'
    assert parse_config(None, ['optimizer.momentum_form=lecture']).optimizer.momentum_form == (
        'lecture')
    with pytest.raises(ValueError, match="optimizer.momentum_form = 'torch' is not allowed; "
                                         'choose one of: pytorch, lecture'):
        parse_config(None, ['optimizer.momentum_form=torch'])
    assert MOMENTUM_FORMS == ('pytorch', 'lecture')


def test_a_training_run_uses_the_lecture_form(tmp_path: Path):
    config = parse_config(None, [
        'model.name=lenet', 'data.train_subset=256', 'data.test_subset=64',
        'data.val_fraction=0.1', 'data.workers=0', 'data.batch_size=64', 'progress=false',
        'epochs=1', 'schedule.warmup_epochs=0.5', 'optimizer.momentum_form=lecture',
        f'output_dir={tmp_path}', 'run_name=lecture'])
    trainer = Trainer(config, tmp_path / 'lecture')
    trainer.fit()
    assert isinstance(trainer.optimizer, LectureMomentum)
    saved = load_checkpoint(tmp_path / 'lecture' / 'last.pt')['optimizer']['state']
    assert saved and all('velocity' in entry for entry in saved.values())
