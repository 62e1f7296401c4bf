"""
Static INT8 quantization of an exported classifier, calibrated on the images it will see.

Calibration images are training images read raw and prepared by ``Classifier.preprocess``
with the fp32 file's own ``dlp.*`` metadata, so the activation ranges are those of the
deployed input. The int8 file keeps every metadata entry of the fp32 one, adds
``dlp.quantization`` (method, calibration, accuracy change), and is written only when its
top-1 accuracy on the test split (val where there is no test split), measured through
``inference.Classifier`` for both files, fell by at most the allowed points.

Settings, chosen by measurement with ONNX Runtime 1.31 (CPU execution provider, default
threads) on a 2-core AMD EPYC (Zen 4: avx512_vnni, no AMX) shared with other jobs (load 2.5
to 6), so speed-ups are ranges over repeated runs: ResNet-18 224x224 batch 8 images/s over
fp32, medians of runs alternating between the files in one process. Accuracy is the demo
LeNet on the 10,000 Fashion-MNIST test images; fp32 scores 90.41 %.

- QDQ format, uint8 activations, int8 weights: 2.0-2.9x (batch 1: 2.7-3.5x), 90.45 %. ONNX
  Runtime fuses the QuantizeLinear/DequantizeLinear pairs into QLinearConv and friends when
  it loads the file, other providers read QDQ too, and the input stays float32, so the
  runtime feeds it like any other model. QOperator was no faster (2.3-2.9x), 90.45 %.
- Activations uint8, asymmetric: u8 x s8 is the product the VNNI kernels compute, and a ReLU
  output keeps all 256 levels with zero point 0. Signed activations (s8 x s8) ran at only
  1.1-1.2x, 90.35 %; symmetric uint8 (zero point 128) at 2.1-2.4x, 90.41 %, spending half its
  levels on negatives a ReLU never outputs.
- Weights int8, symmetric, per output channel: per tensor ran alike (2.3-2.7x), 90.33 %.
- No ``reduce_range`` (7-bit weights, for CPUs without VNNI, where AVX2's u8 x s8
  multiply-add can saturate): with it, alike (2.3-2.8x), 90.38 %.
- MinMax calibration over 500 images: Percentile (90.40 %) and Entropy (90.45 %) did no
  better.
- ``quant_pre_process`` first (shape inference, basic graph optimization such as Conv+BN
  folding): it changed no node or weight of our exports, whose exporter already folds; it
  costs about a second and covers files exported otherwise.
- A final Softmax stays float: 256 levels would coarsen the probabilities, for no speed.

A model as small as LeNet gains nothing: int8 ran 0.95-1.2x fp32 at batch 1 and about 0.5x at
batch 8. Its first convolution has one input channel, which the int8 kernels handle poorly,
and the fixed costs (quantizing the input, layout transposes) outweigh its tiny arithmetic.
It still shrinks to a third on disk; deploy such a model in fp32 where speed matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import replace
import json
import math
from pathlib import Path
import tempfile

from dl_perception.export.evaluate_cli import DATASET_ROOTS
from dl_perception.export.evaluate_cli import evaluate_onnx
from dl_perception.export.onnx_export import check_output_file
from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.export.onnx_export import ExportReport
from dl_perception.export.onnx_export import make_parent_folder
from dl_perception.export.onnx_export import publish
from dl_perception.export.onnx_export import sha256_of
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.model_metadata import PREFIX
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.data import load_split
from dl_perception.training.data import PreparedImages
import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader
from onnxruntime.quantization import CalibrationMethod
from onnxruntime.quantization import QuantFormat
from onnxruntime.quantization import quantize_static
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.shape_inference import quant_pre_process

QUANTIZATION_KEY = f'{PREFIX}quantization'
CALIBRATION_SPLITS = ('train', 'val')
CALIBRATION_BATCH = 8
EVALUATION_BATCH = 256
SETTINGS = {
    'format': 'QDQ', 'weights': 'int8, symmetric, per channel',
    'activations': 'uint8, asymmetric, per tensor', 'reduce_range': False,
    'calibration_method': 'MinMax',
}


class AccuracyDropError(RuntimeError):
    """The int8 model lost more top-1 accuracy than allowed; nothing was written."""


@dataclass(frozen=True)
class QuantizationReport:
    """What was written and what quantization cost in top-1 accuracy."""

    path: Path
    fp32_path: Path
    calibration_images: int
    evaluation_split: str
    evaluation_images: int
    fp32_top1: float
    int8_top1: float

    @property
    def accuracy_change_points(self) -> float:
        """Return int8 minus fp32 top-1 in percentage points (negative: int8 is worse)."""
        return round(100.0 * (self.int8_top1 - self.fp32_top1), 6)


@dataclass(frozen=True)
class QuantizationOptions:
    """
    How to calibrate and how much accuracy the int8 model may lose.

    ``max_accuracy_drop`` is in percentage points of top-1 (a negative value demands a gain).
    ``seed`` picks the calibration images; with ``val_fraction`` it also defines the val
    hold-out of train for a dataset without a val folder (give the training run's values to
    get the images training held out). ``evaluation_images`` None measures the whole split.
    ``dataset_root`` None uses the standard location of the model's dataset.
    """

    calibration_images: int = 500
    calibration_split: str = 'train'
    max_accuracy_drop: float = 0.5
    evaluation_images: int | None = None
    dataset_root: str | None = None
    seed: int = 0
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.calibration_images < 1:
            raise ValueError(f'calibration needs at least one image, got '
                             f'{self.calibration_images}')
        if self.calibration_split not in CALIBRATION_SPLITS:
            raise ValueError(f'calibration split must be one of {CALIBRATION_SPLITS}, got '
                             f'{self.calibration_split!r}')
        if not math.isfinite(self.max_accuracy_drop):
            raise ValueError(f'max accuracy drop must be a finite number of points, got '
                             f'{self.max_accuracy_drop}')
        if self.evaluation_images is not None and self.evaluation_images < 1:
            raise ValueError(f'evaluation needs at least one image, got '
                             f'{self.evaluation_images}')
        if not 0 < self.val_fraction < 1:
            raise ValueError(f'val fraction must be in (0, 1), got {self.val_fraction}')


class CalibrationImages(CalibrationDataReader):
    """Hand ONNX Runtime's calibrator prepared batches, float32 (N, C, H, W), one at a time."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._input_name = input_name
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Return the next feed, or None when the images are used up."""
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


def prepared_batches(classifier: Classifier, dataset: PreparedImages, positions: np.ndarray,
                     batch_size: int = CALIBRATION_BATCH) -> Iterator[np.ndarray]:
    """Yield the raw images at ``positions`` as the runtime prepares them, in small batches."""
    for start in range(0, len(positions), batch_size):
        images = [dataset.source.read(int(dataset.indices[p]))
                  for p in positions[start:start + batch_size]]
        yield np.stack([classifier.preprocess(image, dataset.source.order) for image in images])


def quantize_model(fp32_path: Path, output_path: Path, reader: CalibrationDataReader) -> None:
    """
    Quantize with the settings above and copy the fp32 file's metadata; no checks.

    The building block of ``quantize_onnx`` (and of the speed benchmark); writes in place.
    """
    fp32 = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory(prefix='dlp-quantize-') as work:
        prepared = Path(work) / 'prepared.onnx'
        quant_pre_process(str(fp32_path), str(prepared))
        softmax = [node.name for node in onnx.load(str(prepared)).graph.node
                   if node.op_type == 'Softmax']
        quantize_static(str(prepared), str(output_path), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=softmax,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={'WeightSymmetric': True, 'ActivationSymmetric': False})
    model = onnx.load(str(output_path))
    onnx.helper.set_model_props(model, {p.key: p.value for p in fp32.metadata_props})
    model.doc_string = f'{fp32.doc_string} (static int8, QDQ)'.lstrip()
    onnx.save(model, str(output_path))


def _evaluation_split(name: str, root: str, reference: Classifier,
                      options: QuantizationOptions) -> tuple[str, PreparedImages]:
    arguments = (reference.spec, reference.labels, options.seed, options.val_fraction)
    try:
        split, dataset = 'test', load_split(name, root, 'test', *arguments)
    except ValueError:  # an image folder without test/: its val/ folder or the hold-out
        split, dataset = 'val', load_split(name, root, 'val', *arguments)
    if options.evaluation_images is not None:
        dataset = PreparedImages(dataset.source, dataset.indices[:options.evaluation_images],
                                 dataset.spec)
    return split, dataset


def _describe(path: Path, report: QuantizationReport, options: QuantizationOptions) -> None:
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[QUANTIZATION_KEY] = json.dumps({
        'method': 'static', 'dtype': 'int8', **SETTINGS,
        'tool': f'onnxruntime.quantization {onnxruntime.__version__}',
        'calibration': {'images': report.calibration_images,
                        'split': options.calibration_split, 'seed': options.seed},
        'accuracy': {'split': report.evaluation_split, 'images': report.evaluation_images,
                     'fp32_top1': report.fp32_top1, 'int8_top1': report.int8_top1,
                     'change_points': report.accuracy_change_points},
        'fp32_sha256': sha256_of(report.fp32_path),
    }, sort_keys=True)
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def quantize_onnx(fp32_path: str | Path, output_path: str | Path,
                  options: QuantizationOptions = QuantizationOptions()) -> QuantizationReport:
    """
    Quantize an exported float32 classifier to int8; the output exists only if it passed.

    :raises FileNotFoundError: no file at ``fp32_path``.
    :raises ValueError: the file lacks dl_perception metadata or has float16 input, or its
        dataset cannot be found.
    :raises AccuracyDropError: top-1 fell by more than ``options.max_accuracy_drop`` points.
    """
    fp32_path, output_path = Path(fp32_path), Path(output_path)
    reference = Classifier(fp32_path)
    if reference.metadata is None or reference.input_dtype != np.float32:
        raise ValueError(f'{fp32_path} must be a float32 dl-perception export: calibration '
                         f'reads its dataset and preprocessing from the dlp.* metadata')
    name = reference.metadata.dataset
    root = options.dataset_root or DATASET_ROOTS.get(name)
    if root is None:
        raise ValueError(f'{fp32_path} was trained on {name!r}; give its dataset folder')
    calibration = load_split(name, root, options.calibration_split, reference.spec,
                             reference.labels, options.seed, options.val_fraction)
    count = min(options.calibration_images, len(calibration))
    positions = np.sort(np.random.default_rng(options.seed).choice(
        len(calibration), size=count, replace=False))
    split, evaluation = _evaluation_split(name, root, reference, options)
    make_parent_folder(output_path)
    with tempfile.TemporaryDirectory(prefix=f'.{output_path.name}.',
                                     dir=output_path.parent) as work:
        draft = Path(work) / output_path.name
        reader = CalibrationImages(reference.session.get_inputs()[0].name,
                                   prepared_batches(reference, calibration, positions))
        quantize_model(fp32_path, draft, reader)
        report = QuantizationReport(
            output_path, fp32_path, count, split, len(evaluation),
            evaluate_onnx(reference, evaluation, EVALUATION_BATCH).top1,
            evaluate_onnx(Classifier(draft), evaluation, EVALUATION_BATCH).top1)
        if -report.accuracy_change_points > options.max_accuracy_drop:
            raise AccuracyDropError(
                f'int8 top-1 {report.int8_top1:.4f} vs fp32 {report.fp32_top1:.4f} on '
                f'{report.evaluation_images} {split} images ({report.accuracy_change_points:+.2f} '
                f'points), but the drop may be at most {options.max_accuracy_drop} points; '
                f'nothing was written')
        _describe(draft, report, options)
        publish(draft, output_path)
    return report


def fp32_companion(output: Path) -> Path:
    """Name the float32 file kept beside an int8 ``output``: model.onnx -> model.fp32.onnx."""
    return output.with_name(f'{output.stem}.fp32{output.suffix or ".onnx"}')


def export_int8(checkpoint_path: str | Path, export: ExportOptions,
                options: QuantizationOptions) -> tuple[ExportReport, QuantizationReport]:
    """
    Export float32 (kept as the ``fp32_companion``), then write int8 to ``export.output``.

    The dataset folder (unless given), seed and val fraction are the training run's. Either
    both files are written or, on any failure, neither.

    :raises ParityError: see ``export_checkpoint``.
    :raises AccuracyDropError: see ``quantize_onnx``.
    """
    if export.fp16:
        raise ValueError('int8 quantization starts from the float32 model; drop --fp16')
    checkpoint = load_checkpoint(Path(checkpoint_path))
    options = replace(options, dataset_root=options.dataset_root or export.dataset_root
                      or checkpoint['dataset']['root'], seed=checkpoint['config']['seed'],
                      val_fraction=checkpoint['config']['data']['val_fraction'])
    fp32_path = fp32_companion(export.output)
    check_output_file(export.output)
    make_parent_folder(fp32_path)
    with tempfile.TemporaryDirectory(prefix=f'.{fp32_path.name}.', dir=fp32_path.parent) as work:
        staged = Path(work) / fp32_path.name
        exported = export_checkpoint(checkpoint_path, replace(export, output=staged))
        quantized = quantize_onnx(staged, export.output, options)
        publish(staged, fp32_path)
    return replace(exported, path=fp32_path), replace(quantized, fp32_path=fp32_path)
