"""The torch-free runtime: real ONNX files in a real ONNX Runtime, and its every error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.classifier import load_labels
from dl_perception.inference.postprocess import ProbabilitySmoother
from dl_perception.inference.postprocess import rank
from dl_perception.inference.postprocess import softmax
from dl_perception.inference.providers import ProviderError
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.data import PreparedImages
from dl_perception.training.evaluation import BatchNormalizer
from dl_perception.training.model_setup import build_from_spec
import numpy as np
import pytest
import torch

FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')


@pytest.fixture(scope='module')
def test_images():
    return load_fashion_mnist(FASHION_MNIST, 'test')


def torch_probabilities(checkpoint_path: Path, dataset: PreparedImages) -> np.ndarray:
    """Run the PyTorch model on the training-time evaluation transform of a split."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = build_from_spec(checkpoint['model_spec'])
    model.load_state_dict(checkpoint['model'])
    model.eval()
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        logits = model(BatchNormalizer(dataset.spec)(images))
    return torch.softmax(logits, dim=1).numpy()


def test_runtime_matches_training_on_raw_images(tiny_checkpoint, tiny_onnx, test_images):
    """The anti-drift guarantee: raw uint8 in, the same probabilities as in training."""
    classifier = Classifier(tiny_onnx)
    spec = PreprocessingSpec.from_json(load_checkpoint(tiny_checkpoint)['preprocessing'])
    dataset = PreparedImages(test_images, np.arange(200), spec)
    expected = torch_probabilities(tiny_checkpoint, dataset)
    raw = [test_images.read(i) for i in range(200)]
    predictions = classifier.classify_batch(raw, 'grey')
    actual = np.stack([p.probabilities for p in predictions])
    assert np.abs(actual - expected).max() <= 1e-4
    assert [p.class_index for p in predictions] == list(expected.argmax(axis=1))


def test_colour_and_size_of_the_camera_image_do_not_matter(tiny_onnx, test_images):
    """A grey model fed a BGR 3x-upscaled camera frame: same decision as the native image."""
    classifier = Classifier(tiny_onnx)
    agree = 0
    for i in range(50):
        grey = test_images.read(i)[:, :, 0]
        camera = cv2.cvtColor(cv2.resize(grey, (84, 84), interpolation=cv2.INTER_LINEAR),
                              cv2.COLOR_GRAY2BGR)
        native = classifier.classify(grey, 'grey').class_index
        agree += classifier.classify(camera, 'bgr').class_index == native
    assert agree >= 45


def test_batch_equals_one_by_one(tiny_onnx, test_images):
    classifier = Classifier(tiny_onnx)
    images = [test_images.read(i) for i in range(5)]
    batch = classifier.classify_batch(images, 'grey', top_k=3)
    for image, prediction in zip(images, batch):
        single = classifier.classify(image, 'grey', top_k=3)
        assert np.allclose(single.probabilities, prediction.probabilities, atol=1e-6)
        assert [label for label, _ in single.ranked] == [label for label, _ in prediction.ranked]


def test_ranked_results_carry_label_names(tiny_onnx, test_images):
    classifier = Classifier(tiny_onnx)
    prediction = classifier.classify(test_images.read(0), 'grey', top_k=3)
    labels = [label for label, _ in prediction.ranked]
    scores = [score for _, score in prediction.ranked]
    assert len(labels) == 3 and set(labels) <= set(classifier.labels)
    assert scores == sorted(scores, reverse=True)
    assert labels[0] == classifier.labels[prediction.class_index]
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert classifier.classify(test_images.read(0), 'grey', threshold=1.0).ranked == ()


def export_plain_onnx(path: Path, in_features: int | None = None) -> Path:
    """Export a model the way someone else would: no dl_perception metadata."""
    torch.manual_seed(0)
    if in_features is None:
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 3))
        example = torch.zeros(1, 3, 32, 32)
    else:
        model = torch.nn.Linear(in_features, 3)
        example = torch.zeros(1, in_features)
    torch.onnx.export(model.eval(), (example,), str(path), dynamo=True, input_names=['x'],
                      dynamic_shapes=({0: torch.export.Dim('batch')},), verbose=False)
    return path


@pytest.fixture(scope='module')
def foreign_onnx(tmp_path_factory) -> Path:
    return export_plain_onnx(tmp_path_factory.mktemp('foreign') / 'foreign.onnx')


FOREIGN_SPEC = PreprocessingSpec(32, 32, 'rgb', (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                 'center_crop', 0.875)


@pytest.mark.parametrize('labels_text, suffix', [
    ('cat\ndog\nbird\n', '.txt'),
    (json.dumps(['cat', 'dog', 'bird']), '.json'),
    (json.dumps({'2': 'bird', '0': 'cat', '1': 'dog'}), '.json'),
])
def test_foreign_model_with_explicit_labels_and_preprocessing(foreign_onnx, tmp_path,
                                                              labels_text, suffix):
    labels_path = tmp_path / f'labels{suffix}'
    labels_path.write_text(labels_text)
    classifier = Classifier(foreign_onnx, labels=labels_path, preprocessing=FOREIGN_SPEC)
    assert classifier.metadata is None
    assert classifier.labels == ('cat', 'dog', 'bird')
    frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    prediction = classifier.classify(frame, 'bgr')
    assert prediction.ranked[0][0] in ('cat', 'dog', 'bird')


def test_foreign_model_without_labels_says_what_to_give(foreign_onnx):
    with pytest.raises(ValueError, match='carries no dl_perception metadata: give labels'):
        Classifier(foreign_onnx)
    with pytest.raises(ValueError, match='give preprocessing'):
        Classifier(foreign_onnx, labels=['a', 'b', 'c'])


def test_label_count_must_match_the_output(foreign_onnx):
    with pytest.raises(ValueError, match='outputs 3 classes but 2 labels were given'):
        Classifier(foreign_onnx, labels=['a', 'b'], preprocessing=FOREIGN_SPEC)


def test_preprocessing_must_fit_the_model_input(foreign_onnx):
    grey = PreprocessingSpec(32, 32, 'grey', (0.5,), (0.5,))
    with pytest.raises(ValueError, match='takes 3-channel input, preprocessing gives grey'):
        Classifier(foreign_onnx, labels=['a', 'b', 'c'], preprocessing=grey)


def test_model_files_that_are_not_classifiers(tmp_path, tiny_onnx):
    with pytest.raises(FileNotFoundError, match='model file not found'):
        Classifier(tmp_path / 'missing.onnx')
    text = tmp_path / 'notes.onnx'
    text.write_text('this is not a model')
    with pytest.raises(ValueError, match='is not an ONNX file'):
        Classifier(text)
    truncated = tmp_path / 'truncated.onnx'
    truncated.write_bytes(tiny_onnx.read_bytes()[:2000])
    with pytest.raises(ValueError, match='truncated or corrupt ONNX file'):
        Classifier(truncated)
    vector = export_plain_onnx(tmp_path / 'vector.onnx', in_features=10)
    with pytest.raises(ValueError, match='an image classifier takes'):
        Classifier(vector, labels=['a', 'b', 'c'], preprocessing=FOREIGN_SPEC)


@pytest.mark.parametrize('image, order, error, message', [
    (np.zeros((28, 28), np.float32), 'grey', TypeError, 'expected a uint8 numpy image'),
    ([[0, 1], [2, 3]], 'grey', TypeError, 'expected a uint8 numpy image'),
    (np.zeros((2, 28, 28, 3), np.uint8), 'bgr', ValueError, 'expected an image of shape'),
    (np.zeros((0, 28, 3), np.uint8), 'bgr', ValueError, 'image has no pixels'),
    (np.zeros((28, 28, 3), np.uint8), 'grey', ValueError, 'a grey image has 1 channels'),
    (np.zeros((28, 28, 3), np.uint8), 'yuv', ValueError, 'source channel order must be'),
])
def test_bad_images_are_refused_clearly(tiny_onnx, image, order, error, message):
    classifier = Classifier(tiny_onnx)
    with pytest.raises(error, match=message):
        classifier.classify(image, order)


def test_asking_for_cuda_without_fallback_fails_clearly(tiny_onnx):
    with pytest.raises(ProviderError, match='asked for CUDAExecutionProvider but the session '
                                            'runs on CPUExecutionProvider'):
        Classifier(tiny_onnx, providers=ProviderSettings(('cuda', 'cpu')))


def test_cpu_fallback_runs_and_says_so(tiny_onnx, test_images, caplog):
    settings = ProviderSettings(('tensorrt', 'cuda', 'cpu'), allow_cpu_fallback=True,
                                tensorrt_fp16=True, tensorrt_cache_dir='/tmp/trt-cache')
    with caplog.at_level(logging.WARNING):
        classifier = Classifier(tiny_onnx, providers=settings)
    assert classifier.providers_in_use == ['CPUExecutionProvider']
    assert 'running on the CPU because allow_cpu_fallback is set' in caplog.text
    assert classifier.classify(test_images.read(0), 'grey').ranked


def test_provider_settings_are_validated():
    with pytest.raises(ValueError, match='providers must be a non-empty list'):
        ProviderSettings(('gpu',))
    with pytest.raises(ValueError, match='lists a name twice'):
        ProviderSettings(('cpu', 'cpu'))
    assert ProviderSettings(('cuda',), device_id=1).session_providers() == [
        ('CUDAExecutionProvider', {'device_id': '1'})]


def test_thread_counts_reach_the_session(tiny_onnx):
    classifier = Classifier(tiny_onnx, providers=ProviderSettings(intra_op_threads=1,
                                                                  inter_op_threads=1))
    options = classifier.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


@pytest.mark.parametrize('spin_wait', [True, False])
def test_spin_wait_reaches_the_session(tiny_onnx, spin_wait):
    classifier = Classifier(tiny_onnx, providers=ProviderSettings(spin_wait=spin_wait))
    options = classifier.session.get_session_options()
    for key in ('session.intra_op.allow_spinning', 'session.inter_op.allow_spinning'):
        if spin_wait:  # left unset: ONNX Runtime's default, which spins
            with pytest.raises(RuntimeError, match='does not have configuration'):
                options.get_session_config_entry(key)
        else:
            assert options.get_session_config_entry(key) == '0'
    assert classifier.classify(np.zeros((28, 28), np.uint8), 'grey').ranked


def test_softmax_and_ranking():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32)
    probabilities = softmax(logits)
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert probabilities[0] == pytest.approx(expected, rel=1e-6)
    assert probabilities[1] == pytest.approx([1.0, 0.0, 0.0])
    assert rank(probabilities[0], ['a', 'b', 'c'], 2, 0.0) == (
        ('c', pytest.approx(expected[2])), ('b', pytest.approx(expected[1])))
    assert rank(probabilities[0], ['a', 'b', 'c'], 3, 0.2) == (
        ('c', pytest.approx(expected[2])), ('b', pytest.approx(expected[1])))
    with pytest.raises(ValueError, match='top_k must be >= 1'):
        rank(probabilities[0], ['a', 'b', 'c'], 0, 0.0)


def test_smoothing_is_an_exponential_average_per_stream():
    smoother = ProbabilitySmoother(alpha=0.25)
    first, second = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    assert smoother.update('left', first) == pytest.approx([1.0, 0.0])
    assert smoother.update('left', second) == pytest.approx([0.75, 0.25])
    assert smoother.update('right', second) == pytest.approx([0.0, 1.0])
    smoother.reset('left')
    assert smoother.update('left', second) == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match='smoothing alpha must be in'):
        ProbabilitySmoother(0.0)


def test_labels_files(tmp_path):
    (tmp_path / 'bad.json').write_text('{"0": "a", "2": "c"}')
    with pytest.raises(ValueError, match='class indices must be 0..1'):
        load_labels(tmp_path / 'bad.json')
    (tmp_path / 'empty.txt').write_text('\n\n')
    with pytest.raises(ValueError, match='holds no labels'):
        load_labels(tmp_path / 'empty.txt')
    with pytest.raises(FileNotFoundError, match='labels file not found'):
        load_labels(tmp_path / 'none.txt')


def test_custom_operators_and_missing_external_data_are_named(tiny_onnx, tmp_path):
    import onnx
    from onnx import helper
    from onnx import TensorProto
    graph = helper.make_graph(
        [helper.make_node('Frobnicate', ['input'], ['logits'], domain='com.example.vision')],
        'custom', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 10])])
    custom = tmp_path / 'custom.onnx'
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid('', 18), helper.make_opsetid('com.example.vision', 1)]), str(custom))
    with pytest.raises(ValueError, match='uses an operator ONNX Runtime does not provide'):
        Classifier(custom)
    split = tmp_path / 'split.onnx'
    onnx.save(onnx.load(str(tiny_onnx)), str(split), save_as_external_data=True,
              location='split.weights', size_threshold=0)
    (tmp_path / 'split.weights').unlink()
    with pytest.raises(ValueError, match='external data that is missing'):
        Classifier(split)
