"""Test-time flip: what a run tests with model.test_time_flip is what its ONNX file computes."""

from __future__ import annotations

import json

from dl_perception import cli
from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.models import build_model
from dl_perception.models.layers import MirrorAveraged
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.config import parse_config
from dl_perception.training.evaluation import evaluate
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import inference_network
from dl_perception.training.trainer import Trainer
import numpy as np
import onnx
import onnxruntime
import torch


def test_the_mirror_average_is_the_mean_of_both_views_and_blind_to_the_flip():
    torch.manual_seed(0)
    network = build_model('lenet', num_classes=10, in_channels=1, input_size=28).eval()
    averaged = MirrorAveraged(network).eval()
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = (network(images) + network(images.flip(3))) / 2
        assert torch.allclose(averaged(images), expected, atol=1e-6)
        assert torch.allclose(averaged(images.flip(3)), averaged(images), atol=1e-5)
        assert not torch.allclose(network(images.flip(3)), network(images), atol=1e-3)
    assert set(averaged.state_dict()) == {f'network.{key}' for key in network.state_dict()}


def test_a_run_with_test_time_flip_tests_and_exports_the_mirror_average(tmp_path, capsys):
    config = parse_config(None, [
        'model.name=lenet', 'model.test_time_flip=true', 'data.train_subset=1000',
        'data.test_subset=300', 'data.val_fraction=0.05', 'data.workers=0', 'epochs=1',
        'progress=false', f'output_dir={tmp_path}'])
    trainer = Trainer(config, tmp_path / 'run')
    summary = trainer.fit()
    best = load_checkpoint(tmp_path / 'run' / 'best.pt')
    assert best['model_spec']['test_time_flip'] is True
    plain = build_from_spec(best['model_spec'])
    plain.load_state_dict(best['model'])  # the trained network's weights, unchanged
    loader = [trainer.data.test.batch(range(len(trainer.data.test)))]
    averaged = evaluate(MirrorAveraged(plain), loader, trainer.normalizer, 10,
                        torch.device('cpu'))
    assert summary['test_accuracy'] == averaged.top1
    assert isinstance(inference_network(plain, best['model_spec']), MirrorAveraged)

    exported = tmp_path / 'flip.onnx'
    assert cli.main(['export', str(tmp_path / 'run' / 'best.pt'), '-o', str(exported),
                     '--parity-images', '32']) == 0
    assert 'mirror-averaged (two forward passes per image)' in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert ModelMetadata.from_props(props).mirror_averaged is True
    session = onnxruntime.InferenceSession(str(exported), providers=['CPUExecutionProvider'])
    images = np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32)
    logits = session.run(None, {'input': images})[0]
    mirrored = session.run(None, {'input': images[..., ::-1].copy()})[0]
    np.testing.assert_allclose(logits, mirrored, atol=1e-4)
    with torch.no_grad():
        plain.eval()
        expected = (plain(torch.from_numpy(images)) + plain(torch.from_numpy(images).flip(3))) / 2
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)
    assert json.loads((tmp_path / 'run' / 'summary.json').read_text())['test_accuracy'] == \
        summary['test_accuracy']
