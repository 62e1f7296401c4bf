"""
Labelled images on disk: Fashion-MNIST's IDX files and image folders.

Belongs here: finding and decoding dataset images and their labels, nothing more. A bottom
layer (numpy and OpenCV only), used by training (wrapped as torch datasets) and by the ROS
image source (which replays a labelled split as a camera).
"""

from dl_perception.datasets.fashion_mnist import DEFAULT_ROOT as FASHION_MNIST_ROOT
from dl_perception.datasets.fashion_mnist import FASHION_MNIST_CLASSES
from dl_perception.datasets.fashion_mnist import load_fashion_mnist
from dl_perception.datasets.fashion_mnist import read_idx
from dl_perception.datasets.image_folder import IMAGE_SUFFIXES
from dl_perception.datasets.image_folder import load_folder
from dl_perception.datasets.sources import ArrayImages
from dl_perception.datasets.sources import FileImages
from dl_perception.datasets.sources import ImageSource

__all__ = ['FASHION_MNIST_CLASSES', 'FASHION_MNIST_ROOT', 'IMAGE_SUFFIXES', 'ArrayImages',
           'FileImages', 'ImageSource', 'load_fashion_mnist', 'load_folder', 'read_idx']
