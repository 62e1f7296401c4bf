"""
Network architectures: the classic CNNs, built from configurations.

Belongs here: layer helpers, activations, and one module per model family with a registry
that builds them by name. May import torch and torchvision only; never training, export,
inference or ros.
"""
