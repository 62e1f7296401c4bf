"""
Network architectures: the classic CNNs, built from configurations.

Belongs here: layer helpers, activations, and one module per model family with a registry
that builds them by name. May import torch and torchvision only; never training, export,
inference or ros.
"""

from __future__ import annotations

from dl_perception.models import alexnet  # noqa: F401  (each family module registers itself)
from dl_perception.models import googlenet  # noqa: F401
from dl_perception.models import lenet  # noqa: F401
from dl_perception.models import resnet  # noqa: F401
from dl_perception.models import resnet_cifar  # noqa: F401
from dl_perception.models import vgg  # noqa: F401
from dl_perception.models.activations import ACTIVATIONS
from dl_perception.models.activations import create_activation
from dl_perception.models.registry import build_model
from dl_perception.models.registry import classifier_module
from dl_perception.models.registry import list_models
from dl_perception.models.registry import model_options
from dl_perception.models.registry import ModelConfig
from dl_perception.models.registry import register_model
from dl_perception.models.registry import replace_classifier

__all__ = [
    'ACTIVATIONS',
    'ModelConfig',
    'build_model',
    'classifier_module',
    'create_activation',
    'list_models',
    'model_options',
    'register_model',
    'replace_classifier',
]
