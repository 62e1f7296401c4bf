"""The inference backends: ONNX Runtime and OpenVINO on the same real ONNX files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
import subprocess
import sys

from dl_perception import cli
from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.classifier import InferenceError
from dl_perception.inference.openvino_backend import openvino_runtime
from dl_perception.inference.providers import provider_request
from dl_perception.inference.providers import ProviderSettings
import numpy as np
import pytest

OPENVINO = ProviderSettings(('openvino',))
# Runs Python with the openvino package made unimportable, as on a robot without it.
WITHOUT_OPENVINO = "import sys; sys.modules['openvino'] = None\n"


@pytest.fixture(scope='module')
def test_images():
    images = load_fashion_mnist(FASHION_MNIST_ROOT, 'test')
    return [images.read(i) for i in range(300)]


def bf16_supported() -> bool:
    core = openvino_runtime().Core()
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def test_openvino_f32_gives_onnx_runtime_results(tiny_onnx, test_images):
    reference = Classifier(tiny_onnx)
    classifier = Classifier(tiny_onnx, providers=OPENVINO)
    assert classifier.providers_in_use == ['OpenVINO CPU (f32)']
    assert reference.providers_in_use == ['CPUExecutionProvider']
    # the same metadata, read by each runtime from the same file, gives the same pipeline
    assert classifier.metadata == reference.metadata and classifier.spec == reference.spec
    expected = reference.predict_batch(test_images, 'grey')
    actual = classifier.predict_batch(test_images, 'grey')
    assert np.abs(actual - expected).max() <= 1e-5
    assert list(actual.argmax(axis=1)) == list(expected.argmax(axis=1))


@pytest.mark.parametrize('size', [1, 2, 3, 7])
def test_openvino_takes_every_batch_size(tiny_onnx, test_images, size):
    """The node batches one frame per camera: any count must run, without a reload."""
    classifier = Classifier(tiny_onnx, providers=OPENVINO)
    assert not classifier.fixed_batch
    expected = Classifier(tiny_onnx).predict_batch(test_images[:size], 'grey')
    actual = classifier.predict_batch(test_images[:size], 'grey')
    assert actual.shape == (size, 10) and np.abs(actual - expected).max() <= 1e-5


def test_bf16_hint_is_accepted_and_reported(tiny_onnx, test_images):
    classifier = Classifier(tiny_onnx, providers=ProviderSettings(
        ('openvino',), openvino_precision='bf16'))
    precision = 'bf16' if bf16_supported() else 'f32'
    assert classifier.providers_in_use == [f'OpenVINO CPU ({precision})']
    expected = Classifier(tiny_onnx).predict_batch(test_images, 'grey')
    actual = classifier.predict_batch(test_images, 'grey')
    assert np.abs(actual - expected).max() <= 0.05  # bf16 keeps 8 bits of mantissa
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.97


def test_int8_model_runs_on_openvino(int8, test_images):
    reference = Classifier(int8.path)
    classifier = Classifier(int8.path, providers=OPENVINO)
    assert classifier.labels == reference.labels
    expected = reference.predict_batch(test_images, 'grey')
    actual = classifier.predict_batch(test_images, 'grey')
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.97


def test_threads_and_latency_hint_reach_openvino(tiny_onnx):
    settings = ProviderSettings(('openvino',), intra_op_threads=1)
    compiled = Classifier(tiny_onnx, providers=settings).backend.compiled
    assert compiled.get_property('INFERENCE_NUM_THREADS') == 1
    assert str(compiled.get_property('PERFORMANCE_HINT')).endswith('LATENCY')
    assert compiled.get_property('ENABLE_CPU_PINNING') is False


def test_the_onnx_runtime_session_stays_reachable(tiny_onnx):
    assert Classifier(tiny_onnx).session.get_providers() == ['CPUExecutionProvider']
    with pytest.raises(AttributeError, match='session'):
        Classifier(tiny_onnx, providers=OPENVINO).session


def test_openvino_refuses_bad_files_with_the_reason(tiny_onnx, tmp_path):
    with pytest.raises(FileNotFoundError, match='model file not found'):
        Classifier(tmp_path / 'missing.onnx', providers=OPENVINO)
    text = tmp_path / 'text.onnx'
    text.write_text('not a model')
    with pytest.raises(ValueError, match='is not an ONNX file'):
        Classifier(text, providers=OPENVINO)
    truncated = tmp_path / 'truncated.onnx'
    truncated.write_bytes(tiny_onnx.read_bytes()[:200])
    with pytest.raises(ValueError, match='does not load in OpenVINO'):
        Classifier(truncated, providers=OPENVINO)


def test_a_failed_openvino_batch_is_an_inference_error(tiny_onnx):
    classifier = Classifier(tiny_onnx, providers=OPENVINO)
    with pytest.raises(InferenceError, match=r'failed on a batch of shape \(2, 3, 28, 28\)'):
        classifier.probabilities(np.zeros((2, 3, 28, 28), np.float32))
    assert classifier.classify(np.zeros((28, 28), np.uint8), 'grey').ranked  # still serves


@pytest.mark.parametrize('providers, message', [
    (('cpu', 'openvino'), 'openvino comes first'),
    (('openvino', 'cuda'), 'only cpu'),
    (('openvino', 'openvino'), 'lists a name twice'),
])
def test_provider_lists_with_openvino_are_validated(providers, message):
    with pytest.raises(ValueError, match=message):
        ProviderSettings(providers)


def test_precision_hint_is_validated():
    with pytest.raises(ValueError, match=r"openvino_precision must be one of \['f32', 'bf16'\]"):
        ProviderSettings(('openvino',), openvino_precision='fp16')
    assert provider_request(['openvino', 'cpu'], 'bf16') == 'openvino (bf16), cpu'


def test_shortfall_names_what_did_not_start():
    assert OPENVINO.shortfall(['OpenVINO CPU (f32)']) == ''
    assert 'openvino did not start' in OPENVINO.shortfall(['CPUExecutionProvider'])
    bf16 = ProviderSettings(('openvino',), openvino_precision='bf16')
    assert 'not the bf16 precision asked for' in bf16.shortfall(['OpenVINO CPU (f32)'])
    assert ProviderSettings(('cuda',)).shortfall(['CPUExecutionProvider']).startswith(
        'running on the CPU')


def run_without_openvino(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', WITHOUT_OPENVINO + code], capture_output=True,
                          text=True, timeout=120)


STRICT = """
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import ProviderError, ProviderSettings
for providers in (('openvino',), ('openvino', 'cpu')):
    try:
        Classifier({path!r}, providers=ProviderSettings(providers))
    except ProviderError as error:
        print('refused:', error)
"""

FALLBACK = """
import logging
logging.basicConfig(level=logging.WARNING, format='%(message)s')
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import ProviderSettings
settings = ProviderSettings(('openvino',), allow_cpu_fallback=True)
classifier = Classifier({path!r}, providers=settings)
print('in use:', classifier.providers_in_use, settings.shortfall(classifier.providers_in_use))
"""


@pytest.mark.ros
def test_without_openvino_asking_for_it_fails_and_says_how_to_install(tiny_onnx):
    result = run_without_openvino(STRICT.format(path=str(tiny_onnx)))
    assert result.returncode == 0, result.stderr
    refusals = result.stdout.splitlines()
    assert len(refusals) == 2
    for line in refusals:
        assert 'the OpenVINO runtime is not importable' in line
        assert 'pip install -r requirements/openvino.txt' in line
        assert 'allow_cpu_fallback' in line


@pytest.mark.ros
def test_without_openvino_the_cpu_fallback_runs_onnx_runtime(tiny_onnx):
    result = run_without_openvino(FALLBACK.format(path=str(tiny_onnx)))
    assert result.returncode == 0, result.stderr
    assert "in use: ['CPUExecutionProvider'] running on CPUExecutionProvider: openvino did " \
           'not start' in result.stdout
    assert "running on ONNX Runtime's CPU provider because allow_cpu_fallback" in result.stderr


def test_doctor_lists_the_backends(capsys):
    assert cli.main(['doctor', '--json']) == 0
    with_openvino = json.loads(capsys.readouterr().out)
    assert with_openvino['backends available'] == 'onnxruntime, openvino'
    assert with_openvino['openvino'].startswith(openvino_runtime().get_version().split('-')[0])
    assert with_openvino['node picks (providers: [auto])'].startswith('onnxruntime: auto -> ')


@pytest.mark.ros
def test_doctor_without_openvino_lists_only_onnx_runtime():
    command = 'import sys; from dl_perception import cli; sys.exit(cli.main(["doctor", "--json"]))'
    without = json.loads(run_without_openvino(command).stdout)
    assert without['backends available'] == 'onnxruntime'
    assert without['openvino'].startswith('not installed (optional: pip install -r ')


def test_cpu_fallback_warning_is_logged_in_process(tiny_onnx, caplog):
    """With OpenVINO present the fallback is never used: what runs is OpenVINO, quietly."""
    settings = ProviderSettings(('openvino', 'cpu'), allow_cpu_fallback=True)
    with caplog.at_level(logging.WARNING):
        classifier = Classifier(tiny_onnx, providers=settings)
    assert classifier.providers_in_use == ['OpenVINO CPU (f32)']
    assert 'allow_cpu_fallback' not in caplog.text


def evaluate(model: Path, output: Path, *options: str) -> dict:
    result = subprocess.run(['dl-perception', 'evaluate', str(model), '--output', str(output),
                             *options], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads((output / 'evaluation.json').read_text()) | {'stdout': result.stdout}


def test_evaluate_refuses_a_precision_without_openvino(tiny_onnx, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:
        cli.main(['evaluate', str(tiny_onnx), '--output', str(tmp_path),
                  '--openvino-precision', 'bf16'])
    assert exit_status.value.code == 2
    assert '--openvino-precision bf16 needs --providers openvino' in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_reports_the_bf16_change_like_int8(tiny_onnx, tmp_path):
    onnx_runtime = evaluate(tiny_onnx, tmp_path / 'ort')
    bf16 = evaluate(tiny_onnx, tmp_path / 'bf16', '--providers', 'openvino',
                    '--openvino-precision', 'bf16')
    change = bf16['precision']
    assert onnx_runtime['providers_in_use'] == ['CPUExecutionProvider']
    assert bf16['providers_in_use'][0].startswith('OpenVINO CPU')
    assert bf16['images'] == onnx_runtime['images'] == 10000
    # OpenVINO at f32 computes like ONNX Runtime: the same accuracy, to a tie or two
    assert change['f32_top1'] == pytest.approx(onnx_runtime['top1'], abs=2e-4)
    assert change['top1'] == bf16['top1']
    assert change['change_points'] == pytest.approx(100 * (bf16['top1'] - change['f32_top1']))
    assert f'({change["change_points"]:+.2f} points)' in bf16['stdout']
