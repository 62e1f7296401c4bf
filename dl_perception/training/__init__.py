"""
Learning: datasets, optimizers and schedules, regularizers, the trainer and its CLI.

Belongs here: everything needed to fit a model from ``models`` and write checkpoints.
May import torch and ``dl_perception.models``; never export, inference or ros.
"""
