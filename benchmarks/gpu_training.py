"""
Training images/s on a GPU: mixed precision + channels_last against plain float32.

    python -m benchmarks gpu_training [--model resnet18] [--size 224] [--batch 128] \
        [--steps 40] [--rounds 5] [--device cuda] [--output gpu_training.json]

Fashion-MNIST training images (``--data``, the IDX folder) are held on the device as one
uint8 tensor; each step takes a random batch, resizes it there to ``--size`` (bilinear),
normalizes it, and runs forward, cross-entropy, backward and an SGD-momentum step. Two set-ups
of the same network train in turns, round by round (which one goes first alternating):
``fp32`` (contiguous float32) and ``amp`` (autocast to bfloat16 where the device supports it,
else float16 with a gradient scaler, and channels_last). The table gives the median images/s of
each and their ratio; the JSON adds every round, the device and the library versions. Needs
torch and numpy only (no OpenCV, no ONNX Runtime), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import statistics
import time

from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.models import build_model
import torch
from torch.nn import functional

# Pixel mean and std of the Fashion-MNIST training split (on a 0..1 scale).
MEAN, STD = 0.286, 0.353


class TrainingSetup:
    """One network, optimizer and precision policy, trained on batches drawn on the device."""

    def __init__(self, name: str, args: argparse.Namespace, images: torch.Tensor,
                 labels: torch.Tensor, amp: bool) -> None:
        torch.manual_seed(0)
        self.name, self.images, self.labels, self.size = name, images, labels, args.size
        self.device = images.device
        self.batch = args.batch
        self.memory_format = torch.channels_last if amp else torch.contiguous_format
        self.model = build_model(args.model, num_classes=10, in_channels=1,
                                 input_size=args.size).to(self.device,
                                                          memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        bf16 = self.device.type == 'cpu' or torch.cuda.is_bf16_supported()
        self.dtype = (torch.bfloat16 if bf16 else torch.float16) if amp else None
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.dtype == torch.float16)
        self.generator = torch.Generator(self.device).manual_seed(0)

    def step(self) -> None:
        """Train on one random batch."""
        picks = torch.randint(len(self.images), (self.batch,), device=self.device,
                              generator=self.generator)
        inputs = self.images[picks].unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
        inputs = functional.interpolate(inputs, size=(self.size, self.size), mode='bilinear',
                                        align_corners=False)
        inputs = inputs.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            loss = functional.cross_entropy(self.model(inputs).float(), self.labels[picks])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def images_per_s(self, steps: int) -> float:
        """Time ``steps`` steps, the device drained before and after."""
        synchronize(self.device)
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize(self.device)
        return steps * self.batch / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> dict:
    """Device name and versions, for the JSON."""
    description = {'torch': torch.__version__, 'python': platform.python_version(),
                   'device': str(device)}
    if device.type == 'cuda':
        properties = torch.cuda.get_device_properties(device)
        description.update(name=properties.name, cuda=torch.version.cuda,
                           cudnn=torch.backends.cudnn.version(),
                           memory_gib=round(properties.total_memory / 2**30, 1))
    else:
        description.update(name=platform.processor() or platform.machine(),
                           threads=torch.get_num_threads())
    return description


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='resnet18')
    parser.add_argument('--size', type=int, default=224, help='input side (28 = native)')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--steps', type=int, default=40, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--data', type=Path, default=FASHION_MNIST_ROOT,
                        help='Fashion-MNIST IDX folder')
    parser.add_argument('--output', type=Path, default=Path('gpu_training.json'))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('no CUDA device: pass --device cpu to try the script here')
        return 1
    torch.backends.cudnn.benchmark = True
    train = load_fashion_mnist(args.data, 'train')
    images = torch.from_numpy(train.images[..., 0]).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    setups = [TrainingSetup('fp32', args, images, labels, amp=False),
              TrainingSetup('amp', args, images, labels, amp=True)]
    for setup in setups:  # warm-up: cuDNN autotuning, allocator, lazy initialization
        setup.images_per_s(3)
    rates: dict[str, list[float]] = {setup.name: [] for setup in setups}
    for round_ in range(args.rounds):
        for setup in setups if round_ % 2 == 0 else setups[::-1]:
            rates[setup.name].append(round(setup.images_per_s(args.steps), 1))
        print(f'round {round_ + 1}/{args.rounds}: '
              + ', '.join(f'{name} {values[-1]:.0f} img/s' for name, values in rates.items()),
              flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    amp_dtype = str(setups[1].dtype).removeprefix('torch.')
    print(f'\n{args.model} at {args.size}x{args.size}, batch {args.batch}')
    print(f'{"set-up":<34}{"img/s":>10}')
    print(f'{"fp32, contiguous":<34}{medians["fp32"]:>10.0f}')
    print(f'{"amp (" + amp_dtype + "), channels_last":<34}{medians["amp"]:>10.0f}')
    print(f'ratio amp / fp32: {medians["amp"] / medians["fp32"]:.2f}')
    report = {'device': describe_device(device), 'model': args.model, 'size': args.size,
              'batch': args.batch, 'steps_per_round': args.steps, 'amp_dtype': amp_dtype,
              'images_per_s': rates, 'median_images_per_s': medians,
              'ratio_amp_over_fp32': round(medians['amp'] / medians['fp32'], 3)}
    args.output.write_text(json.dumps(report, indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
