"""Fashion-MNIST from its four gzip-compressed IDX files (Debian: dataset-fashion-mnist)."""

from __future__ import annotations

import gzip
from pathlib import Path

from dl_perception.datasets.sources import ArrayImages
import numpy as np

DEFAULT_ROOT = Path('/usr/share/datasets/fashion-mnist')
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip-compressed IDX file (the MNIST format) into a uint8 array."""
    if not path.is_file():
        raise FileNotFoundError(
            f'missing {path}: Fashion-MNIST is expected there as the four IDX .gz files; '
            f'install it with `apt-get install dataset-fashion-mnist` or point the dataset '
            f'root elsewhere')
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise ValueError(f'{path} is not a readable gzip file: {error}') from None
    if len(raw) < 4 or raw[:2] != b'\0\0' or raw[2] != 0x08:
        raise ValueError(f'{path} is not an unsigned-byte IDX file (bad magic number)')
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).copy()
    if data.size != int(np.prod(shape)):
        raise ValueError(f'{path} is truncated: header says {shape}, found {data.size} bytes')
    return data.reshape(shape)


def load_fashion_mnist(root: Path, split: str) -> ArrayImages:
    """Load the train or test split of Fashion-MNIST from its IDX files."""
    image_file, label_file = FASHION_MNIST_FILES[split]
    images, labels = read_idx(root / image_file), read_idx(root / label_file)
    if len(images) != len(labels):
        raise ValueError(f'{root}: {len(images)} {split} images but {len(labels)} labels')
    return ArrayImages(images, labels)
