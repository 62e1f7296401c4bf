"""
The self-description stored in an ONNX file's ``metadata_props``: the training/robot contract.

Export writes it, the runtime reads it; both use ``ModelMetadata``, so the keys cannot drift.
Every key starts with ``dlp.``; ``dlp.format_version`` says how to read the rest. Keys added
since format 1 first appeared are optional, so older files still read (``dlp.mirror_averaged``).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import json

from dl_perception.preprocessing import PreprocessingSpec

FORMAT_VERSION = 1
PREFIX = 'dlp.'
OUTPUT_KINDS = ('logits', 'probabilities')
LAYOUTS = ('NCHW',)


@dataclass(frozen=True)
class ModelMetadata:
    """
    Everything a robot needs to run a classifier that the file itself does not say.

    ``labels[i]`` names output ``i``; ``preprocessing`` turns camera images into input;
    ``output`` says whether the network ends in logits or probabilities; ``mirror_averaged``
    that it averages each image with its mirror image (``model.test_time_flip``), which costs
    two forward passes per image.
    """

    labels: tuple[str, ...]
    preprocessing: PreprocessingSpec
    output: str = 'logits'
    layout: str = 'NCHW'
    architecture: str = 'unknown'
    dataset: str = 'unknown'
    metrics: dict = field(default_factory=dict)
    source_sha256: str = ''
    mirror_averaged: bool = False
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, 'labels', tuple(str(label) for label in self.labels))
        if not self.labels:
            raise ValueError('a classifier needs at least one label')
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f'output must be one of {OUTPUT_KINDS}, got {self.output!r}')
        if self.layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, got {self.layout!r}')
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f'model metadata format {self.format_version} is not supported '
                             f'(this dl_perception reads format {FORMAT_VERSION}); re-export '
                             f'the model with this version')

    def to_props(self) -> dict[str, str]:
        """Flatten to ONNX ``metadata_props`` (string keys and values)."""
        return {
            f'{PREFIX}format_version': str(self.format_version),
            f'{PREFIX}labels': json.dumps(list(self.labels)),
            f'{PREFIX}preprocessing': self.preprocessing.to_json(),
            f'{PREFIX}output': self.output,
            f'{PREFIX}layout': self.layout,
            f'{PREFIX}architecture': self.architecture,
            f'{PREFIX}dataset': self.dataset,
            f'{PREFIX}metrics': json.dumps(self.metrics, sort_keys=True),
            f'{PREFIX}source_sha256': self.source_sha256,
            f'{PREFIX}mirror_averaged': json.dumps(self.mirror_averaged),
        }

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata | None:
        """
        Read what ``to_props`` wrote; None when the file carries no dl_perception metadata.

        :raises ValueError: the metadata is there but malformed, naming the bad key.
        """
        if f'{PREFIX}format_version' not in props:
            return None

        def read(key: str, parse=str):
            name = PREFIX + key
            if name not in props:
                raise ValueError(f'model metadata lacks {name}')
            try:
                return parse(props[name])
            except (ValueError, TypeError) as error:
                raise ValueError(f'model metadata {name} is malformed: {error}') from None

        def flag(text: str) -> bool:
            if text not in ('true', 'false'):
                raise ValueError(f'expected true or false, got {text!r}')
            return text == 'true'

        labels = read('labels', json.loads)
        if not isinstance(labels, list):
            raise ValueError(f'model metadata {PREFIX}labels must be a JSON list')
        return cls(labels=tuple(labels),
                   preprocessing=read('preprocessing', PreprocessingSpec.from_json),
                   output=read('output'), layout=read('layout'),
                   architecture=read('architecture'), dataset=read('dataset'),
                   metrics=read('metrics', json.loads), source_sha256=read('source_sha256'),
                   mirror_averaged=(read('mirror_averaged', flag)
                                    if f'{PREFIX}mirror_averaged' in props else False),
                   format_version=read('format_version', int))
