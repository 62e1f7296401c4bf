"""Where things are, for tests and their helpers: the repository, the helpers, the data."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent
FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
