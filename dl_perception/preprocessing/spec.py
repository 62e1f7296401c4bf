"""The preprocessing contract between a trained model and whoever runs it."""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
import json

RESIZE_POLICIES = ('stretch', 'center_crop', 'letterbox')
NETWORK_CHANNELS = {'rgb': 3, 'bgr': 3, 'grey': 1}


@dataclass(frozen=True)
class PreprocessingSpec:
    """
    How raw uint8 images become the network's input tensor.

    ``mean`` and ``std`` are per network channel, on pixel values scaled to 0..1.
    Resize policies: ``stretch`` (to height x width, aspect ratio not kept), ``center_crop``
    (scale so the image covers the input with its shorter side at size / ``crop_fraction``,
    then cut the centre), ``letterbox`` (fit inside, keep the aspect ratio, pad with
    ``pad_value``). Shrinking uses area interpolation, enlarging bilinear.
    """

    height: int
    width: int
    channels: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = 'stretch'
    crop_fraction: float = 1.0
    pad_value: int = 0

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f'input size must be positive, got {self.height}x{self.width}')
        if self.channels not in NETWORK_CHANNELS:
            raise ValueError(f'channels must be one of {sorted(NETWORK_CHANNELS)}, '
                             f'got {self.channels!r}')
        count = NETWORK_CHANNELS[self.channels]
        object.__setattr__(self, 'mean', tuple(float(m) for m in self.mean))
        object.__setattr__(self, 'std', tuple(float(s) for s in self.std))
        if len(self.mean) != count or len(self.std) != count:
            raise ValueError(f'{self.channels!r} input needs {count} mean and std values, '
                             f'got mean={self.mean} std={self.std}')
        if any(s <= 0 for s in self.std):
            raise ValueError(f'std values must be positive, got {self.std}')
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f'resize must be one of {RESIZE_POLICIES}, got {self.resize!r}')
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f'crop_fraction must be in (0, 1], got {self.crop_fraction}')
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f'pad_value must be a uint8 value, got {self.pad_value}')

    @property
    def num_channels(self) -> int:
        """Channels of the network input: 3 for colour, 1 for grey."""
        return NETWORK_CHANNELS[self.channels]

    def to_json(self) -> str:
        """Serialize for checkpoints and ONNX metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessingSpec:
        """Parse what ``to_json`` wrote; raises ValueError on anything else."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f'preprocessing description is not JSON: {error}') from None
        if not isinstance(fields, dict):
            raise ValueError(f'preprocessing description must be a JSON object, got {text!r}')
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(f'preprocessing description {text!r}: {error}') from None
