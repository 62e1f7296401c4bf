"""Mixed precision on the CPU: bf16 only when asked for, and only where the CPU has it."""

from __future__ import annotations

from pathlib import Path

from dl_perception.training.config import load_config
from dl_perception.training.config import parse_config
from dl_perception.training.devices import amp_dtype
from dl_perception.training.devices import cpu_has_bf16
from dl_perception.training.trainer import Trainer
import pytest
import torch

TINY_RUN = ['model.name=resnet20', 'data.train_subset=128', 'data.test_subset=64',
            'data.val_fraction=0.25', 'data.workers=0', 'data.batch_size=32', 'device=cpu',
            'progress=false', 'epochs=1']


def config(tmp_path: Path, *extra: str):
    return parse_config(None, [*TINY_RUN, f'output_dir={tmp_path}', *extra])


def test_auto_and_off_train_the_cpu_in_float32(tmp_path):
    cpu = torch.device('cpu')
    assert amp_dtype(config(tmp_path), cpu) is None  # amp: auto is the default
    assert amp_dtype(config(tmp_path, 'amp=off'), cpu) is None


def test_fp16_on_the_cpu_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match='fp16 runs on CUDA only'):
        Trainer(config(tmp_path, 'amp=fp16'), tmp_path / 'run')


@pytest.mark.skipif(not cpu_has_bf16(), reason='this CPU has no bf16 instructions')
def test_bf16_on_the_cpu_computes_the_convolutions_in_bf16_and_keeps_float32_weights(
        tmp_path):
    trainer = Trainer(config(tmp_path, 'amp=bf16', 'channels_last=true'), tmp_path / 'run')
    seen = []
    trainer.model.stem.conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = trainer.model.stem.conv.weight.detach().clone()
    metrics = trainer.train_epoch(0)
    assert seen and set(seen) == {torch.bfloat16}
    assert torch.isfinite(torch.tensor(metrics['train_loss']))
    weight = trainer.model.stem.conv.weight
    assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)


@pytest.mark.skipif(not cpu_has_bf16(), reason='this CPU has no bf16 instructions')
def test_a_bf16_run_validates_in_bf16_and_tests_its_best_weights_in_float32(tmp_path):
    trainer = Trainer(config(tmp_path, 'amp=bf16', 'data.val_fraction=0.001'), tmp_path / 'run')
    seen = []
    trainer.model.stem.conv.register_forward_hook(
        lambda module, _i, out: seen.append((module.training, out.dtype)))
    summary = trainer.fit()
    evaluated = [dtype for training, dtype in seen if not training]
    # 60 validation images in one batch, then 64 test images in one batch.
    assert evaluated == [torch.bfloat16, torch.float32]
    row = trainer.state.history[-1]
    assert row['val_accuracy'] == trainer.evaluate_split(trainer.data.val, final=False).top1
    assert summary['test_accuracy'] == trainer.evaluate_split(trainer.data.test).top1


def test_off_unquoted_in_yaml_means_the_choice_off(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('amp: off\n')  # YAML 1.1 reads this as the boolean false
    assert load_config(str(path), []).amp == 'off'
    assert parse_config(None, ['amp=off']).amp == 'off'
    with pytest.raises(ValueError, match='amp must be str'):
        parse_config(None, ['amp=true'])  # no 'on' choice: a boolean stays an error
