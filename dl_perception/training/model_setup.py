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
        'options': dict(config.options),
    }


def build_from_spec(spec: dict) -> nn.Module:
    """Build the network a ``model_spec`` describes."""
    return build_model(spec['name'], num_classes=spec['num_classes'],
                       in_channels=spec['in_channels'], input_size=spec['input_size'],
                       activation=spec['activation'], batch_norm=spec['batch_norm'],
                       dropout=spec['dropout'], **spec['options'])


def _head_keys(model: nn.Module) -> set[str]:
    head = classifier_module(model)
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f'{prefix}.{key}' for key in head.state_dict()}


def load_pretrained(model: nn.Module, path: str) -> list[str]:
    """
    Load a torchvision-format state dict from a local file, all but the classifier head.

    The head stays freshly initialised for the new classes. Returns the skipped head keys.
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a state dict, or its backbone does not fit the model.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f'pretrained weights not found: {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f'{path} is not a readable state dict: {error}') from None
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{path} does not hold a state dict (name -> tensor)')
    head = _head_keys(model)
    own = model.state_dict()
    backbone = {k: v for k, v in state.items() if k not in head}
    missing = sorted(set(own) - head - set(backbone))
    unexpected = sorted(set(backbone) - set(own))
    mismatched = sorted(f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                        for k, v in backbone.items() if k in own and v.shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(f'{path} does not fit the model backbone: missing {missing[:5]}, '
                         f'unexpected {unexpected[:5]}, shape mismatches {mismatched[:5]}')
    model.load_state_dict(backbone, strict=False)
    return sorted(head)


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
