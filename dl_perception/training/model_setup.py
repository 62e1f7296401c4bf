"""
Build the network a run trains, and start it from pretrained weights when asked.

``model_spec`` (a plain dict stored in every checkpoint) is all it takes to rebuild the
network later for evaluation and export.
"""

from __future__ import annotations

from pathlib import Path
import pickle

from dl_perception.models import build_model
from dl_perception.models import classifier_module
from dl_perception.models.layers import MirrorAveraged
from dl_perception.models.registry import MIN_INPUT_SIZE
from dl_perception.models.registry import SMALL_INPUT_SIZE
from dl_perception.training.config import ModelConfig
import torch
from torch import nn


def model_spec_for(config: ModelConfig, num_classes: int, in_channels: int,
                   input_size: int) -> dict:
    """Describe the network to build, as checkpoint-safe plain values."""
    return {
        'name': config.name, 'num_classes': num_classes, 'in_channels': in_channels,
        'input_size': input_size, 'activation': config.activation,
        'batch_norm': config.batch_norm, 'dropout': config.dropout,
        'options': dict(config.options), 'test_time_flip': config.test_time_flip,
    }


def build_from_spec(spec: dict) -> nn.Module:
    """Build the network a ``model_spec`` describes (the one that trains)."""
    return build_model(spec['name'], num_classes=spec['num_classes'],
                       in_channels=spec['in_channels'], input_size=spec['input_size'],
                       activation=spec['activation'], batch_norm=spec['batch_norm'],
                       dropout=spec['dropout'], **spec['options'])


def inference_network(model: nn.Module, spec: dict) -> nn.Module:
    """
    Return what is tested and exported for a trained ``model``: itself, or mirror-averaged.

    Checkpoints written before ``model.test_time_flip`` existed have no such key: plain.
    """
    return MirrorAveraged(model) if spec.get('test_time_flip') else model


def _head_keys(model: nn.Module) -> set[str]:
    head = classifier_module(model)
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f'{prefix}.{key}' for key in head.state_dict()}


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """
    Read a torchvision-format state dict (name -> tensor) from a local file.

    A dl_perception checkpoint is accepted too (its ``model`` entry). Nothing is downloaded.
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a state dict.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f'pretrained weights not found: {path} (weights are never downloaded: give a '
            'local file, e.g. one written by torch.save(model.state_dict(), path))')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f'{path} is not a readable state dict: {error}') from None
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{path} does not hold a state dict (name -> tensor)')
    return state


def _stem_key(model: nn.Module) -> str:
    name = next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))
    return f'{name}.weight'


def _fit(model: nn.Module, state: dict) -> tuple[dict, list[str]]:
    """
    Return the backbone tensors of ``state`` made to fit ``model``, and what does not fit.

    A 3-channel (RGB) stem meets a 1-channel model by summing its filters over the input
    channels: for a grey image x, sum_c(W_c * x) is what the RGB network computes on x copied
    into R, G and B, so the result is exact while the stem reads one channel instead of three
    and the input (and the exported ONNX file) stays grey.
    """
    head = _head_keys(model)
    own = model.state_dict()
    backbone = {k: v for k, v in state.items() if k not in head}
    stem = _stem_key(model)
    if stem in backbone:
        theirs, ours = backbone[stem].shape, own[stem].shape
        if (len(theirs) == 4 and theirs[1] == 3 and ours[1] == 1
                and (theirs[0], *theirs[2:]) == (ours[0], *ours[2:])):
            backbone[stem] = backbone[stem].sum(dim=1, keepdim=True)
    missing = sorted(set(own) - head - set(backbone))
    unexpected = sorted(set(backbone) - set(own))
    mismatched = sorted(f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                        for k, v in backbone.items() if k in own and v.shape != own[k].shape)
    problems = [f'{label} {items[:5]}' for label, items in (
        ('missing', missing), ('unexpected', unexpected), ('shape mismatches', mismatched))
        if items]
    return backbone, problems


def _describe(spec: dict, model: nn.Module) -> str:
    design = 'small-input' if spec['input_size'] < SMALL_INPUT_SIZE else 'ImageNet'
    stem = _stem_key(model)
    return (f"{spec['name']} for {spec['input_size']} px, {spec['in_channels']}-channel input "
            f'({design} design, {stem} {tuple(model.state_dict()[stem].shape)})')


def _file_stem(state: dict) -> str:
    key = next((k for k, v in state.items() if v.dim() == 4), None)
    return 'no convolution' if key is None else f'{key} {tuple(state[key].shape)}'


def pretrained_min_size(config: ModelConfig, state: dict) -> int | None:
    """
    Return the input side the images must reach for ``state`` to fit, or None for any size.

    Below SMALL_INPUT_SIZE (64) a family takes its small-input design (e.g. ResNet's 3x3
    stride-1 stem); weights trained on ImageNet fit only the ImageNet design, so small images
    are upsampled to 64 for them. Weights of a small-input network keep the small size.

    :raises ValueError: ``state`` fits neither design of the architecture; names both.
    """
    stems = [v.shape[1] for v in state.values() if v.dim() == 4][:1]
    failures = []
    for size in (MIN_INPUT_SIZE, SMALL_INPUT_SIZE):
        spec = model_spec_for(config, 1, int(stems[0]) if stems else 3, size)
        with torch.device('meta'):
            model = build_from_spec(spec)
        problems = _fit(model, state)[1]
        if not problems:
            return None if size < SMALL_INPUT_SIZE else SMALL_INPUT_SIZE
        failures.append(f'{_describe(spec, model)}: {", ".join(problems)}')
    raise ValueError(f'{config.pretrained} (first convolution {_file_stem(state)}) fits no '
                     f'design of {config.name}: not ' + '; not '.join(failures))


def load_pretrained(model: nn.Module, spec: dict, path: str,
                    state: dict | None = None) -> list[str]:
    """
    Load a torchvision-format state dict into ``model``, all but the classifier head.

    The head stays freshly initialised for the new classes; an RGB stem is summed for a grey
    model (see ``_fit``). Returns the skipped head keys.

    :param spec: the ``model_spec`` ``model`` was built from, to name it in errors.
    :param state: the file's contents, when already read.
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a state dict, or its backbone does not fit the model;
        the message names the file's first convolution and the model's design.
    """
    state = read_state_dict(path) if state is None else state
    backbone, problems = _fit(model, state)
    if problems:
        hint = ''
        if spec['input_size'] < SMALL_INPUT_SIZE:
            hint = (f'; weights of an ImageNet network need data.input_size >= '
                    f'{SMALL_INPUT_SIZE} (null upsamples small images to it)')
        raise ValueError(f'{path} does not fit the model backbone: the file has '
                         f'{_file_stem(state)}, the model is {_describe(spec, model)}; '
                         f'{", ".join(problems)}{hint}')
    model.load_state_dict(backbone, strict=False)
    return sorted(_head_keys(model))


def freeze_backbone(model: nn.Module) -> list[nn.Parameter]:
    """Stop gradients everywhere but the classifier head; returns the trainable parameters."""
    head = classifier_module(model)
    head_ids = {id(p) for p in head.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head_ids)
    return list(head.parameters())


def set_training_mode(model: nn.Module, backbone_frozen: bool) -> None:
    """Train mode; a frozen backbone keeps its batch-norm statistics fixed (eval mode)."""
    model.train()
    if backbone_frozen:
        head = classifier_module(model)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module is not head:
                module.eval()
