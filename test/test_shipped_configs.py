"""Every shipped training config loads, names a registered model, and says why it exists."""

from __future__ import annotations

from pathlib import Path

from dl_perception.models.registry import list_models
from dl_perception.training.config import load_config
import pytest

TRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / 'config' / 'train').glob('*.yaml'))


def test_the_training_configs_are_found():
    assert len(TRAIN_CONFIGS) >= 8


@pytest.mark.parametrize('path', TRAIN_CONFIGS, ids=lambda path: path.stem)
def test_a_shipped_training_config_is_valid_and_commented(path):
    config = load_config(str(path))  # unknown keys and bad values raise
    assert config.model.name in list_models()
    # A config differs from the defaults on purpose: its first line says what it is for.
    assert path.read_text().startswith('#'), f'{path.name} needs a comment saying why it exists'
