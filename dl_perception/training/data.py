"""
Datasets: Fashion-MNIST from its IDX files and image folders, split, measured and batched.

Every sample goes through ``dl_perception.preprocessing`` (the same resize and colour code the
robot runs), then optional augmentation (``augment``, on whole batches); samples are uint8
tensors (C, H, W) and the trainer normalizes whole batches with the constants of the recorded
``PreprocessingSpec``.

``batch_loader`` fetches a whole batch per call instead of one sample at a time: collating
28x28 images one by one costs the data-loading process more than a LeNet step costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dl_perception.datasets import ArrayImages
from dl_perception.datasets import FASHION_MNIST_CLASSES
from dl_perception.datasets import ImageSource
from dl_perception.datasets import load_fashion_mnist
from dl_perception.datasets import load_folder
from dl_perception.preprocessing import convert_channels
from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.preprocessing import resize_to_input
from dl_perception.training.augment import BatchAugmentation
from dl_perception.training.augment import build_augmentation
from dl_perception.training.config import DataConfig
import numpy as np
import torch
from torch.utils.data import BatchSampler
from torch.utils.data import DataLoader
from torch.utils.data import Dataset
from torch.utils.data import Sampler

STATISTICS_SAMPLE = 10_000


class PreparedImages(Dataset):
    """A split: source images resized and colour-converted by the spec, then augmented."""

    def __init__(self, source: ImageSource, indices: np.ndarray, spec: PreprocessingSpec,
                 augment: BatchAugmentation | None = None) -> None:
        self.source, self.indices, self.spec, self.augment = source, indices, spec, augment
        self._unprepared = _images_left_unchanged(source, spec)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        """Labels of this split, int64 (N,)."""
        return self.source.labels[self.indices]

    def image(self, position: int) -> np.ndarray:
        """Return one network-ready uint8 image, shape (H, W, C), before augmentation."""
        raw = self.source.read(int(self.indices[position]))
        return convert_channels(resize_to_input(raw, self.spec), self.source.order,
                                self.spec.channels)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        images, labels = self.batch([position])
        return images[0], int(labels[0])

    @property
    def indexed_batches(self) -> bool:
        """
        Return whether a batch is one indexing of an in-memory array, with no per-image work.

        Augmentation, a few tensor operations per batch, does not count.
        """
        return self._unprepared is not None

    def batch(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Return the samples at ``positions`` stacked: images uint8 (B, C, H, W), labels int64 (B,).

        Without augmentation, equal to collating ``self[p]`` for each position in order.
        """
        rows = self.indices[np.asarray(positions, np.int64)]
        if self._unprepared is not None:
            images = self._unprepared[rows]
        else:
            images = np.stack([self.image(position) for position in positions])
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
        if self.augment is not None:
            tensor = self.augment(tensor)
        # A copy with the strides of (B, C, H, W): with one channel, the permuted (B, H, W, C)
        # strides pass for contiguous as well, but they steer convolutions to other kernels.
        images = tensor.clone(memory_format=torch.contiguous_format)
        return images, torch.from_numpy(self.source.labels[rows])


def _images_left_unchanged(source: ImageSource, spec: PreprocessingSpec) -> np.ndarray | None:
    """
    Return the uint8 (N, H, W, C) images of an in-memory source that preparation keeps as is.

    That is when they already have the input's size and channel order, and the resize policy
    keeps an image of the input's size as it is (all but center_crop below a crop fraction of
    1); such a batch is one indexing of the array. None otherwise.
    """
    if not isinstance(source, ArrayImages):
        return None
    height, width = source.images.shape[1:3]
    cropped = spec.resize == 'center_crop' and spec.crop_fraction < 1.0
    fits = (height, width) == (spec.height, spec.width) and source.order == spec.channels
    return source.images if fits and not cropped else None


class _Batches(Dataset):
    """A PreparedImages indexed by lists of positions, as a BatchSampler yields them."""

    def __init__(self, dataset: PreparedImages) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.batch(positions)


def batch_loader(dataset: PreparedImages, order: Sampler, batch_size: int, workers: int,
                 generator: torch.Generator | None = None,
                 pin_memory: bool = False) -> DataLoader:
    """
    Batches of ``dataset`` in the order of ``order``, each made by one ``dataset.batch`` call.

    The same batches, worker seeds included, as ``DataLoader(dataset, batch_size,
    sampler=order, ...)``; the last one may be smaller. ``loader.sampler.sampler`` is
    ``order``. ``workers`` processes make the batches, unless ``dataset.indexed_batches``:
    such a batch costs less to make here than to receive from a worker.
    """
    return DataLoader(_Batches(dataset), batch_size=None,
                      sampler=BatchSampler(order, batch_size, drop_last=False),
                      num_workers=0 if dataset.indexed_batches else workers,
                      generator=generator, pin_memory=pin_memory)


@dataclass
class DataBundle:
    """The splits of one dataset, its class names and the preprocessing that defines them."""

    train: PreparedImages
    val: PreparedImages
    test: PreparedImages | None
    classes: list[str]
    spec: PreprocessingSpec
    name: str


def channel_statistics(dataset: PreparedImages, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 scale) over up to 10,000 prepared training images."""
    rng = np.random.default_rng(seed)
    count = min(len(dataset), STATISTICS_SAMPLE)
    picks = rng.choice(len(dataset), size=count, replace=False)
    total = np.zeros(dataset.spec.num_channels)
    total_sq = np.zeros(dataset.spec.num_channels)
    pixels = 0
    for position in picks:
        image = dataset.image(int(position)).astype(np.float64) / 255.0
        total += image.sum(axis=(0, 1))
        total_sq += (image ** 2).sum(axis=(0, 1))
        pixels += image.shape[0] * image.shape[1]
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean ** 2, 1e-12))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _split_indices(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    val_count = max(1, round(count * val_fraction))
    return np.sort(order[val_count:]), np.sort(order[:val_count])


def _load_sources(dataset: str,
                  root: Path) -> tuple[dict[str, ImageSource], list[str], int, str]:
    """Return sources by split, class names, native input size and channels of a dataset."""
    if dataset == 'fashion-mnist':
        sources = {split: load_fashion_mnist(root, split) for split in ('train', 'test')}
        return sources, list(FASHION_MNIST_CLASSES), 28, 'grey'
    sources, classes = load_folder(root)
    return sources, classes, 224, 'rgb'


def load_data(config: DataConfig, seed: int, min_size: int | None = None) -> DataBundle:
    """
    Load, split and describe the dataset a config names; fails early with the path.

    :param min_size: with ``input_size`` null, upsample images smaller than this (for
        pretrained weights that need a larger input); a set ``input_size`` always wins.
    """
    sources, classes, native_size, native_channels = _load_sources(config.dataset,
                                                                   Path(config.root))
    size = config.input_size or max(native_size, min_size or 0)
    channels = config.channels or native_channels
    placeholder = [0.5] * (1 if channels == 'grey' else 3)
    spec = PreprocessingSpec(size, size, channels, config.mean or placeholder,
                             config.std or placeholder, config.resize, config.crop_fraction)
    train_source = sources['train']
    if 'val' in sources:
        train_idx, val_idx = np.arange(len(train_source)), None
    else:
        train_idx, val_idx = _split_indices(len(train_source), config.val_fraction, seed)
    if config.train_subset is not None and config.train_subset < len(train_idx):
        rng = np.random.default_rng(seed + 1)
        train_idx = np.sort(rng.choice(train_idx, config.train_subset, replace=False))
    if config.mean is None or config.std is None:
        mean, std = channel_statistics(PreparedImages(train_source, train_idx, spec), seed)
        spec = PreprocessingSpec(size, size, channels, config.mean or mean, config.std or std,
                                 config.resize, config.crop_fraction)
    augment = build_augmentation(config.augment)
    train = PreparedImages(train_source, train_idx, spec, augment)
    val = (PreparedImages(sources['val'], np.arange(len(sources['val'])), spec)
           if val_idx is None else PreparedImages(train_source, val_idx, spec))
    test = None
    if 'test' in sources:
        count = min(config.test_subset or len(sources['test']), len(sources['test']))
        test = PreparedImages(sources['test'], np.arange(count), spec)
    return DataBundle(train, val, test, classes, spec, config.dataset)


def load_split(dataset: str, root: Path, split: str, spec: PreprocessingSpec,
               classes: Sequence[str], seed: int, val_fraction: float) -> PreparedImages:
    """
    One split prepared with a model's recorded spec, for evaluating that model.

    ``val`` without a val folder is the seeded hold-out of train that training used.
    :raises ValueError: the split does not exist, or its classes differ from the model's.
    """
    sources, found, _, _ = _load_sources(dataset, Path(root))
    if list(found) != list(classes):
        raise ValueError(f'{root} has classes {found}, but the model was trained on {classes}')
    if split in sources:
        return PreparedImages(sources[split], np.arange(len(sources[split])), spec)
    if split == 'val':
        _, val_idx = _split_indices(len(sources['train']), val_fraction, seed)
        return PreparedImages(sources['train'], val_idx, spec)
    raise ValueError(f'{root} has no {split!r} split; available: '
                     f'{", ".join(sorted(set(sources) | {"val"}))}')
