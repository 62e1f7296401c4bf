"""
Checkpoint -> self-describing ONNX file, verified against PyTorch before it counts.

The file gets a dynamic batch axis, opset 18 or newer, the ``dlp.*`` metadata the robot reads
(labels, preprocessing, architecture, dataset, metrics, source checksum), and passes
``onnx.checker``. Then ONNX Runtime and PyTorch classify the same real validation images; if
their outputs differ by more than the tolerance the file is removed and export fails.

Outputs are written to a temporary file that is renamed into place with the mode the umask
gives (0644 usually); an existing output that is not a regular file (a folder, a device, a
symbolic link) is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
import hashlib
import json
import logging
import os
from pathlib import Path
import stat
import tempfile

from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.inference.onnxruntime_backend import open_session
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.checkpoint import reading_checkpoint
from dl_perception.training.data import load_split
from dl_perception.training.evaluation import BatchNormalizer
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import inference_network
from google.protobuf.message import DecodeError
import numpy as np
import onnx
import torch
from torch import nn

logger = logging.getLogger(__name__)

MIN_OPSET = 18
INPUT_NAME = 'input'
# Operator domains ONNX Runtime implements; any other domain is a custom operator library.
BUILTIN_DOMAINS = ('', 'ai.onnx', 'ai.onnx.ml', 'ai.onnx.preview.training', 'com.microsoft')


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


@dataclass(frozen=True)
class ExportOptions:
    """How to export; ``input_size`` None keeps the training size."""

    output: Path
    input_size: int | None = None
    fp16: bool = False
    probabilities: bool = False
    opset: int = MIN_OPSET
    parity_images: int = 256
    tolerance: float = 1e-4
    dataset_root: str | None = None

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise ValueError(f'opset must be >= {MIN_OPSET}, got {self.opset}')
        if self.input_size is not None and self.input_size < 16:
            raise ValueError(f'input size must be >= 16, got {self.input_size}')
        if self.parity_images < 1:
            raise ValueError(f'parity needs at least one image, got {self.parity_images}')
        if self.tolerance <= 0:
            raise ValueError(f'tolerance must be > 0, got {self.tolerance}')


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely ONNX Runtime matched PyTorch."""

    path: Path
    images: int
    max_abs_diff: float
    top1_agreement: float
    providers: list[str]
    metadata: ModelMetadata


def check_output_file(path: Path) -> None:
    """
    Refuse an output path that cannot or must not be written as a regular file.

    :raises ValueError: a file stands where a parent folder must be, or ``path`` exists and is
        not a regular file (a folder, a device, a pipe, a symbolic link).
    """
    path = Path(path)
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f'cannot write {path}: {folder} is not a folder')
            break
        if folder.is_symlink():
            raise ValueError(f'cannot write {path}: {folder} is a dangling symbolic link')
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ('a folder' if stat.S_ISDIR(mode) else 'a symbolic link' if stat.S_ISLNK(mode)
                else 'a device, pipe or socket')
        raise ValueError(f'{path} exists and is not a regular file ({kind}); refusing to replace '
                         f'it: choose another output path')


def make_parent_folder(path: Path) -> None:
    """
    Create the folder an output goes to.

    :raises ValueError: it cannot be created (a file in the way, no permission).
    """
    check_output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f'cannot create the folder for {path}: {error.strerror}') from None


def publish(temporary: Path, target: Path) -> None:
    """Give a finished temporary file the umask's mode (0644 usually) and rename it to target."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(temporary, 0o666 & ~mask)
    check_output_file(target)
    os.replace(temporary, target)


def describe_unloadable_onnx(path: Path) -> str | None:
    """
    Say why an ONNX file that parses cannot be run: custom operators or missing external data.

    :returns: the reason as a phrase that follows the path, or None when neither applies.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError):
        return None
    custom = sorted({f'{node.domain}.{node.op_type}' for node in model.graph.node
                     if node.domain not in BUILTIN_DOMAINS})
    if custom:
        return (f'uses custom operators that ONNX Runtime does not provide: '
                f'{", ".join(custom)}; register the library that implements them, or export '
                f'the model without them')
    missing = sorted({entry.value for tensor in model.graph.initializer
                      if tensor.data_location == onnx.TensorProto.EXTERNAL
                      for entry in tensor.external_data
                      if entry.key == 'location' and not (path.parent / entry.value).is_file()})
    if missing:
        return (f'keeps its weights in external data that is missing: {", ".join(missing)} '
                f'(expected in {path.parent}); copy the data file(s) beside the model')
    return None


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _metrics(checkpoint: dict, path: Path) -> dict:
    state = checkpoint['state']
    metrics = {'epochs': checkpoint['epoch'], 'best_val_accuracy': state['best_val_accuracy']}
    summary = path.parent / 'summary.json'
    if summary.is_file():
        recorded = json.loads(summary.read_text())
        metrics.update({k: recorded[k] for k in ('test_accuracy', 'test_top5') if k in recorded})
    return metrics


def _network(checkpoint: dict, options: ExportOptions, path: Path) -> nn.Module:
    with reading_checkpoint(path):
        model = build_from_spec(checkpoint['model_spec'])
        model.load_state_dict(checkpoint['model'])
    model = inference_network(model, checkpoint['model_spec'])
    network = nn.Sequential(model, nn.Softmax(dim=1)) if options.probabilities else model
    network.eval()
    return network.half() if options.fp16 else network


def _write_onnx(network: nn.Module, spec: PreprocessingSpec, options: ExportOptions,
                metadata: ModelMetadata, target: Path) -> None:
    dtype = torch.float16 if options.fp16 else torch.float32
    example = torch.zeros(2, spec.num_channels, spec.height, spec.width, dtype=dtype)
    batch = torch.export.Dim('batch', min=1)
    output_name = 'probabilities' if options.probabilities else 'logits'
    try:
        with torch.no_grad():
            network(example)
    except RuntimeError as error:
        raise ValueError(f'the network does not accept {spec.height}x{spec.width} input: '
                         f'{str(error).splitlines()[0]}') from None
    torch.onnx.export(network, (example,), str(target), dynamo=True, opset_version=options.opset,
                      input_names=[INPUT_NAME], output_names=[output_name],
                      dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    model = onnx.load(str(target))
    existing = {prop.key: prop.value for prop in model.metadata_props}
    onnx.helper.set_model_props(model, {**existing, **metadata.to_props()})
    model.doc_string = (f'{metadata.architecture} trained on {metadata.dataset}; '
                        f'{len(metadata.labels)} classes; see metadata_props dlp.*')
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))


def _check_parity(network: nn.Module, target: Path, checkpoint: dict, spec: PreprocessingSpec,
                  options: ExportOptions) -> tuple[int, float, float, list[str]]:
    config = checkpoint['config']
    dataset = load_split(checkpoint['dataset']['name'],
                         options.dataset_root or checkpoint['dataset']['root'], 'val', spec,
                         checkpoint['classes'], config['seed'], config['data']['val_fraction'])
    count = min(options.parity_images, len(dataset))
    images = torch.stack([dataset[i][0] for i in range(count)])
    inputs = BatchNormalizer(spec)(images)
    with torch.no_grad():
        expected = network(inputs.to(next(network.parameters()).dtype)).float().numpy()
    session = open_session(target, ProviderSettings(('cpu',)))
    feed = inputs.numpy().astype(np.float16 if options.fp16 else np.float32)
    actual = session.run(None, {INPUT_NAME: feed})[0].astype(np.float32)
    difference = float(np.abs(actual - expected).max())
    agreement = float((actual.argmax(axis=1) == expected.argmax(axis=1)).mean())
    return count, difference, agreement, session.get_providers()


def export_checkpoint(checkpoint_path: str | Path, options: ExportOptions) -> ExportReport:
    """
    Export, describe, check and verify; the output file exists only if everything passed.

    :raises ParityError: ONNX Runtime and PyTorch disagree beyond ``options.tolerance``.
    :raises ValueError: the checkpoint is unusable, or the output cannot be written (see
        ``check_output_file``).
    """
    checkpoint_path = Path(checkpoint_path)
    check_output_file(options.output)
    checkpoint = load_checkpoint(checkpoint_path)
    spec = PreprocessingSpec.from_json(checkpoint['preprocessing'])
    if options.input_size is not None:
        spec = replace(spec, height=options.input_size, width=options.input_size)
    metadata = ModelMetadata(
        labels=tuple(checkpoint['classes']), preprocessing=spec,
        output='probabilities' if options.probabilities else 'logits',
        architecture=checkpoint['model_spec']['name'], dataset=checkpoint['dataset']['name'],
        metrics=_metrics(checkpoint, checkpoint_path), source_sha256=sha256_of(checkpoint_path),
        mirror_averaged=bool(checkpoint['model_spec'].get('test_time_flip')))
    network = _network(checkpoint, options, checkpoint_path)
    make_parent_folder(options.output)
    handle, temporary = tempfile.mkstemp(prefix=f'.{options.output.name}.',
                                         dir=options.output.parent)
    os.close(handle)
    target = Path(temporary)
    try:
        _write_onnx(network, spec, options, metadata, target)
        images, difference, agreement, providers = _check_parity(
            network, target, checkpoint, spec, options)
        if difference > options.tolerance:
            raise ParityError(f'ONNX Runtime and PyTorch differ by {difference:.3g} (tolerance '
                              f'{options.tolerance:.3g}) on {images} validation images; top-1 '
                              f'agreement {agreement:.4f}; nothing was written')
        publish(target, options.output)
    finally:
        target.unlink(missing_ok=True)
    return ExportReport(options.output, images, difference, agreement, providers, metadata)
