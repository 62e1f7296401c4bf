"""
Learning: datasets, optimizers and schedules, regularizers, the trainer and its CLI.

Belongs here: everything needed to fit a model from ``models`` and write checkpoints.
May import torch, ``dl_perception.models`` and ``dl_perception.preprocessing`` (the image
code it shares with the robot); never export, inference or ros.
"""
