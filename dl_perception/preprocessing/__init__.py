"""
What an image must look like before it enters a network: one implementation for both sides.

Belongs here: the preprocessing description stored with every model (``PreprocessingSpec``)
and the numpy/OpenCV functions that apply it. Training's evaluation transform and the robot's
runtime both call these functions, so the two cannot drift apart. The bottom layer: imports
numpy and opencv only, nothing else of dl_perception.
"""

from dl_perception.preprocessing.image_ops import as_hwc
from dl_perception.preprocessing.image_ops import convert_channels
from dl_perception.preprocessing.image_ops import normalization_constants
from dl_perception.preprocessing.image_ops import normalize
from dl_perception.preprocessing.image_ops import prepare
from dl_perception.preprocessing.image_ops import resize_to_input
from dl_perception.preprocessing.spec import PreprocessingSpec

__all__ = ['PreprocessingSpec', 'as_hwc', 'convert_channels', 'normalization_constants',
           'normalize', 'prepare', 'resize_to_input']
