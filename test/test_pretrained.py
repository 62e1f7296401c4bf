"""Pretrained torchvision-format weights at any input: grey, small, or the wrong network."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import cv2
from dl_perception.datasets import FASHION_MNIST_CLASSES
from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.models import build_model
from dl_perception.training.config import parse_config
from dl_perception.training.model_setup import load_pretrained
from dl_perception.training.model_setup import model_spec_for
from dl_perception.training.trainer import Trainer
import numpy as np
import pytest
import torch
from torch import nn
import torchvision

# Fashion-MNIST, 28x28 grey; tiny, so that the 64 px ResNet-18 trains in seconds.
TINY_RUN = ['data.train_subset=32', 'data.test_subset=32', 'data.val_fraction=0.001',
            'data.workers=0', 'data.batch_size=32', 'progress=false', 'epochs=1']


def config(tmp_path: Path, *extra: str):
    return parse_config(None, [*TINY_RUN, f'output_dir={tmp_path}', *extra])


@pytest.fixture(scope='module')
def imagenet_resnet18(tmp_path_factory) -> tuple[Path, dict]:
    """Save a torchvision ResNet-18 (RGB, ImageNet stem, 1000 classes) as its state dict."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp('weights') / 'resnet18-torchvision.pth'
    torch.save(state, path)
    return path, state


def test_imagenet_weights_train_on_28px_grey_upsampled_with_the_stem_summed(
        tmp_path, imagenet_resnet18):
    path, source = imagenet_resnet18
    run = config(tmp_path, 'model.name=resnet18', f'model.pretrained={path}', 'run_name=grey')
    trainer = Trainer(run, tmp_path / 'grey')
    assert trainer.spec.height == trainer.spec.width == 64  # 28 upsampled to 64
    assert trainer.spec.num_channels == 1
    loaded = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert loaded['conv1.weight'].shape == (64, 1, 7, 7)
    assert torch.equal(loaded['conv1.weight'], source['conv1.weight'].sum(1, keepdim=True))
    assert torch.equal(loaded['layer3.1.conv2.weight'], source['layer3.1.conv2.weight'])
    assert trainer.model_spec['input_size'] == 64  # what evaluation and export rebuild
    assert loaded['fc.weight'].shape == (10, 512)
    metrics = trainer.train_epoch(0)  # a real step on upsampled grey batches
    assert metrics['train_loss'] > 0
    assert not torch.equal(trainer.model.conv1.weight.detach(), loaded['conv1.weight'])


def test_a_resumed_upsampled_run_loads_its_data_at_the_size_it_started_with(
        tmp_path, imagenet_resnet18):
    path = tmp_path / 'copy.pth'
    path.write_bytes(imagenet_resnet18[0].read_bytes())
    run = config(tmp_path, 'model.name=resnet18', f'model.pretrained={path}')
    started = Trainer(run, tmp_path / 'run').spec.to_json()
    path.unlink()  # a resumed run reads its checkpoint, not the pretrained file
    resumed = Trainer(run, tmp_path / 'run', checkpoint={'preprocessing': started})
    assert resumed.data.spec.height == 64
    assert resumed.data.train[0][0].shape == (1, 64, 64)


def test_a_summed_stem_on_grey_computes_what_rgb_does_on_the_grey_copied_thrice(
        imagenet_resnet18):
    path, source = imagenet_resnet18
    rgb = torchvision.models.resnet18(weights=None)
    rgb.load_state_dict(source)
    spec = model_spec_for(parse_config(None, ['model.name=resnet18']).model, 10, 1, 64)
    grey = build_model('resnet18', num_classes=10, in_channels=1, input_size=64)
    load_pretrained(grey, spec, str(path))
    rgb.fc = grey.fc = nn.Identity()  # compare the features; the heads differ by design
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey.eval()(images), rgb.eval()(images.expand(-1, 3, -1, -1)),
                                   rtol=1e-4, atol=1e-5)


def test_small_input_weights_keep_the_small_input(tmp_path):
    torch.manual_seed(0)
    ours = build_model('resnet18', num_classes=10, in_channels=1, input_size=28)
    path = tmp_path / 'resnet18-small.pth'
    torch.save(ours.state_dict(), path)
    trainer = Trainer(config(tmp_path, 'model.name=resnet18', f'model.pretrained={path}'),
                      tmp_path / 'small')
    assert trainer.spec.height == 28
    assert trainer.model.conv1.kernel_size == (3, 3)
    assert torch.equal(trainer.model.conv1.weight, ours.conv1.weight)


def test_imagenet_weights_at_a_set_small_size_name_both_designs(tmp_path, imagenet_resnet18):
    path, _ = imagenet_resnet18
    run = config(tmp_path, 'model.name=resnet18', 'data.input_size=32',
                 f'model.pretrained={path}')
    with pytest.raises(ValueError) as caught:
        Trainer(run, tmp_path / 'set')
    message = str(caught.value)
    assert 'the file has conv1.weight (64, 3, 7, 7)' in message
    assert ('the model is resnet18 for 32 px, 1-channel input (small-input design, '
            'conv1.weight (64, 1, 3, 3))') in message
    assert 'data.input_size >= 64' in message


def test_weights_of_another_architecture_name_both(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'vgg11.pth'
    with torch.device('meta'):
        state = torchvision.models.vgg11(weights=None).state_dict()
    # only the shapes matter: each weight is one zero broadcast to its shape, a tiny file
    torch.save({k: torch.zeros(v.shape) if v.dim() < 2 else torch.zeros(1).expand(v.shape)
                for k, v in state.items()}, path)
    run = config(tmp_path, 'model.name=resnet18', f'model.pretrained={path}')
    with pytest.raises(ValueError, match=r'vgg11\.pth \(first convolution features\.0\.weight '
                                         r'\(64, 3, 3, 3\)\) fits no design of resnet18: not '
                                         r'resnet18 for 16 px.*small-input.*not resnet18 for '
                                         r'64 px.*ImageNet design'):
        Trainer(run, tmp_path / 'vgg')


def test_a_missing_weight_file_is_a_clear_error(tmp_path):
    run = config(tmp_path, 'model.name=resnet18', f'model.pretrained={tmp_path}/none.pth')
    with pytest.raises(FileNotFoundError, match='none.pth .weights are never downloaded'):
        Trainer(run, tmp_path / 'missing')


def write_folder(folder: Path, source, classes: list[int], per_class: int, seed: int | None):
    """Write ``per_class`` images of each of ``classes`` as PNGs (random ones with a seed)."""
    for label in classes:
        indices = np.flatnonzero(source.labels == label)
        if seed is not None:
            indices = np.random.default_rng(seed + label).permutation(indices)
        target = folder / FASHION_MNIST_CLASSES[label].replace('/', '_').replace(' ', '_')
        target.mkdir(parents=True)
        for index in indices[:per_class]:
            cv2.imwrite(str(target / f'{index}.png'), source.images[index][..., 0])


def folder_run(tmp_path: Path, name: str, data: Path, *extra: str) -> dict:
    run = parse_config(None, ['model.name=resnet20', 'data.dataset=folder', f'data.root={data}',
                              'data.channels=grey', 'data.input_size=28', 'data.workers=0',
                              'progress=false', f'output_dir={tmp_path}', f'run_name={name}',
                              *extra])
    return Trainer(run, tmp_path / name).fit()


@pytest.mark.slow  # about 100 s here
def test_pretrained_on_a_beats_scratch_on_a_few_images_of_other_classes(tmp_path):
    # A: Fashion-MNIST's first five classes. B: one image of each of the other five; tested
    # on 200 of each. Three draws of B, the same budget for every variant.
    train = load_fashion_mnist(FASHION_MNIST_ROOT, 'train')
    test = load_fashion_mnist(FASHION_MNIST_ROOT, 'test')
    a = tmp_path / 'a'
    write_folder(a / 'train', train, [0, 1, 2, 3, 4], 1000, seed=0)
    write_folder(a / 'val', test, [0, 1, 2, 3, 4], 50, seed=None)
    pretraining = folder_run(tmp_path, 'pretrain', a, 'data.batch_size=64', 'epochs=3',
                             'optimizer.name=momentum', 'optimizer.lr=0.05',
                             'schedule.name=cosine')
    assert pretraining['val_accuracy'] > 0.8, pretraining
    weights = tmp_path / 'pretrain' / 'best.pt'
    spec = json.loads(torch.load(weights, weights_only=True)['preprocessing'])
    budget = ['data.batch_size=8', 'epochs=30', 'optimizer.name=adam', 'schedule.name=cosine',
              'regularization.early_stopping_metric=loss', f'data.mean={spec["mean"]}',
              f'data.std={spec["std"]}']
    variants = {'scratch': ['optimizer.lr=0.001'],
                'fine-tuned': ['optimizer.lr=0.001', f'model.pretrained={weights}'],
                'frozen': ['optimizer.lr=0.01', f'model.pretrained={weights}',
                           'model.freeze_backbone=true']}
    accuracy = {name: [] for name in variants}
    for draw in range(3):
        b = tmp_path / f'b{draw}'
        write_folder(b / 'train', train, [5, 6, 7, 8, 9], 1, seed=1000 + draw)
        shutil.copytree(b / 'train', b / 'val')
        write_folder(b / 'test', test, [5, 6, 7, 8, 9], 200, seed=None)
        for name, extra in variants.items():
            summary = folder_run(tmp_path, f'{name}{draw}', b, *budget, *extra, f'seed={draw}')
            accuracy[name].append(summary['test_accuracy'])
    print(json.dumps(accuracy))
    mean = {name: float(np.mean(values)) for name, values in accuracy.items()}
    assert mean['fine-tuned'] > mean['scratch'] + 0.1, accuracy
    assert mean['frozen'] > mean['scratch'] + 0.05, accuracy
