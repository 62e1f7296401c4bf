"""The training config takes its names and shared bounds from the tables that build objects."""

from __future__ import annotations

from dataclasses import fields

from dl_perception.models.activations import ACTIVATIONS
from dl_perception.preprocessing.spec import RESIZE_POLICIES
from dl_perception.training.config import DataConfig
from dl_perception.training.config import ModelConfig
from dl_perception.training.config import OptimizerConfig
from dl_perception.training.config import parse_config
from dl_perception.training.config import ScheduleConfig
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.optimizers import OPTIMIZER_NAMES
from dl_perception.training.schedules import SCHEDULE_NAMES
import pytest
import torch


def choices(cls: type, name: str) -> tuple:
    return next(item for item in fields(cls) if item.name == name).metadata['choices']


@pytest.mark.parametrize('cls, name, table', [
    (OptimizerConfig, 'name', OPTIMIZER_NAMES),
    (ScheduleConfig, 'name', SCHEDULE_NAMES),
    (DataConfig, 'resize', RESIZE_POLICIES),
    (ModelConfig, 'activation', tuple(ACTIVATIONS)),
])
def test_config_choices_are_the_factory_tables_keys(cls, name, table):
    assert choices(cls, name) == table


def accepts(build) -> bool:
    try:
        build()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize('momentum', [-0.1, 0.0, 0.9, 0.999, 0.9999, 1.0, 1.5])
def test_config_and_optimizer_factory_agree_on_momentum(momentum):
    by_config = accepts(lambda: parse_config(None, [f'optimizer.momentum={momentum}']))
    by_factory = accepts(lambda: create_optimizer(
        'momentum', [torch.zeros(1, requires_grad=True)], lr=0.1, momentum=momentum))
    assert by_config == by_factory
    assert by_config == (0 <= momentum < 1)
