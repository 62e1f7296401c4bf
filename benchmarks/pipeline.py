"""
The inference path side by side, measured in one run, alternating; the goals judged from it.

For each model (ResNet-18 at 224x224; the Fashion-MNIST demo model) on 640x480 bgr8 frames:
1. ``raw`` / ``raw openvino`` / ``raw int8``: the backend alone on a ready tensor (ONNX Runtime
   float32, OpenVINO bf16, ONNX Runtime on the static int8 file): each node's floor;
2. ``preprocess``: ``Classifier.preprocess`` on one frame (resize, crop, normalise);
3. ``classifier``: ``inference.Classifier.classify`` in-process;
4. ``openvino loop``: what a user would write instead of the node, in-process: preprocess,
   then OpenVINO bf16 on the same ONNX file;
5. ``node`` / ``node openvino`` / ``node int8``: classifier_node in its own process with each
   backend, fed and read over ROS 2 by this process;
6. ``baseline``: a typical hand-written PyTorch node (``benchmarks.baseline_node``), same
   weights;
7. ``ros floor``: ``benchmarks.echo_node``, which answers each image at once: what moving the
   image and the result between processes costs, whatever the node does.
Throughput keeps two frames in flight (the node is never idle, never queued); latency sends
one frame at a time and runs from the image stamp to the result's arrival. Medians over
rounds; p50/p95/p99 over all samples. A short calibration loop runs before and after: when
it slowed down, or the load average says something else ran, the output says the machine was
loaded. Goals, for the best node: throughput >= the OpenVINO loop's; p50 - its backend's raw
p50 <= ros floor + preprocess + 1 ms; throughput >= 3x the baseline node's. Prints a table and
the goals, writes JSON with the machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import itertools
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.bench_models import BenchModel
from benchmarks.bench_models import demo_model
from benchmarks.bench_models import resnet18
from benchmarks.machine import describe_machine
from benchmarks.ros_loop import RosLoop
from dl_perception.demo import DEMO_CACHE
from dl_perception.demo import ensure_model
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import ProviderSettings
import numpy as np

METHODS = ('raw', 'raw openvino', 'raw int8', 'preprocess', 'classifier', 'openvino loop',
           'node', 'node openvino', 'node int8', 'baseline', 'ros floor')
NODES = {'node': 'ours', 'node openvino': 'ours_openvino', 'node int8': 'ours_int8',
         'baseline': 'baseline', 'ros floor': 'echo'}
# Which raw figure is each node's backend floor.
NODE_BACKENDS = {'node': 'raw', 'node openvino': 'raw openvino', 'node int8': 'raw int8'}
CALIBRATION_SLOWDOWN = 1.15  # calibration after / before beyond this: the machine was loaded
LOADED_AVERAGE = 0.25  # 1-minute load average per core before the run beyond this: loaded


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1e3
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {'p50_ms': round(float(p50), 2), 'p95_ms': round(float(p95), 2),
            'p99_ms': round(float(p99), 2)}


def _timed(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def calibration_s() -> float:
    """Median seconds of a fixed numpy workload: a probe of what the machine gives us now."""
    matrix = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    return statistics.median(_timed(lambda: matrix @ matrix, 200))


def _int8_file(model: BenchModel, frames: list[np.ndarray], folder: Path) -> Path:
    """Quantize the model statically on its own benchmark frames (speed, not accuracy)."""
    from dl_perception.export.quantize import CalibrationImages
    from dl_perception.export.quantize import quantize_model
    path = folder / f'{model.onnx.stem}.int8.onnx'
    if not path.exists():
        classifier = Classifier(model.onnx)
        batches = [classifier.preprocess(frame, 'bgr')[None] for frame in frames]
        quantize_model(model.onnx, path, CalibrationImages(classifier.backend.input.name,
                                                           batches))
    return path


def _frames(model: BenchModel, count: int) -> list[np.ndarray]:
    """640x480 BGR frames: dataset images as the demo camera renders them, or noise."""
    if model.name.startswith('demo'):
        from dl_perception.datasets import FASHION_MNIST_ROOT
        from dl_perception.datasets import load_fashion_mnist
        from dl_perception.datasets.frame_sources import render_frame
        images = load_fashion_mnist(FASHION_MNIST_ROOT, 'test')
        return [render_frame(images.read(i), 'grey', 640, 480) for i in range(count)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]


def _openvino_loop(path: Path, classifier: Classifier) -> Callable[[np.ndarray], object]:
    """Return the user's alternative: preprocess, then OpenVINO bf16 compiled for latency."""
    import openvino
    compiled = openvino.Core().compile_model(str(path), 'CPU', {
        'INFERENCE_PRECISION_HINT': 'bf16', 'PERFORMANCE_HINT': 'LATENCY'})
    return lambda frame: compiled(classifier.preprocess(frame, 'bgr')[None])


def _start(module: str, parameters: dict, namespace: str, env: dict,
           logs: Path) -> subprocess.Popen:
    arguments = ['--ros-args', '-r', f'__ns:=/{namespace}']
    for name, value in parameters.items():
        arguments += ['-p', f'{name}:={json.dumps(value)}']
    with open(logs / f'{namespace}.log', 'w') as log:
        return subprocess.Popen([sys.executable, '-m', module, *arguments], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def measure_model(model: BenchModel, rounds: int, count: int, logs: Path,
                  work: Path) -> dict:
    """
    Run every method on one model, alternating rounds; return the per-method figures.

    The nodes' output goes to ``logs/<namespace>.log``.
    """
    frames = _frames(model, 16)
    int8 = _int8_file(model, frames, work)
    backends = {'raw': Classifier(model.onnx),
                'raw openvino': Classifier(model.onnx, providers=ProviderSettings(
                    ('openvino',), openvino_precision='bf16')),
                'raw int8': Classifier(int8)}
    classifier = backends['raw']
    tensor = classifier.preprocess(frames[0], 'bgr')[None]
    openvino_loop = _openvino_loop(model.onnx, classifier)
    env = dict(os.environ, ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', '77'))
    node_parameters = {'model_path': str(model.onnx), 'providers': ['cpu'], 'top_k': 5,
                       'reliability': 'reliable', 'publish_overlay': False}
    processes = [
        _start('dl_perception.ros.classifier_node', node_parameters, 'ours', env, logs),
        _start('dl_perception.ros.classifier_node',
               {**node_parameters, 'providers': ['openvino'], 'openvino_precision': 'bf16'},
               'ours_openvino', env, logs),
        _start('dl_perception.ros.classifier_node', {**node_parameters, 'model_path': str(int8)},
               'ours_int8', env, logs),
        _start('benchmarks.baseline_node', {'weights': str(model.weights)},
               'baseline', env, logs),
        _start('benchmarks.echo_node', {}, 'echo', env, logs)]
    loop = RosLoop(frames, NODES.values())
    throughput: dict[str, list[float]] = {m: [] for m in METHODS}
    latency: dict[str, list[float]] = {m: [] for m in METHODS}
    dropped = dict.fromkeys(NODES, 0)

    def in_process(method: str, call: Callable[[], object]) -> None:
        samples = _timed(call, count)
        latency[method] += samples
        throughput[method].append(count / sum(samples))

    try:
        for namespace in NODES.values():
            try:
                loop.wait_until_serving(namespace)
            except TimeoutError as error:
                raise TimeoutError(f'{error}; its log: {logs / namespace}.log') from None
        for _ in range(rounds):
            for method, backend in backends.items():
                in_process(method, lambda backend=backend: backend.backend.run(tensor))
            picks = itertools.cycle(frames)
            in_process('preprocess', lambda: classifier.preprocess(next(picks), 'bgr'))
            in_process('classifier', lambda: classifier.classify(next(picks), 'bgr'))
            in_process('openvino loop', lambda: openvino_loop(next(picks)))
            for method, namespace in NODES.items():
                rate, lost = loop.throughput(namespace, count)
                throughput[method].append(rate)
                dropped[method] += lost
                latency[method] += loop.latencies(namespace, count)
    finally:
        loop.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    results = {method: {'images_per_s': round(statistics.median(throughput[method]), 1),
                        **_percentiles(latency[method])}
               for method in METHODS if throughput[method]}
    for method, lost in dropped.items():
        results[method]['dropped_in_throughput_runs'] = lost
    return results


def judge(results: dict) -> dict:
    """Judge the goals for the best node (highest throughput) of one model."""
    best = max(NODE_BACKENDS, key=lambda method: results[method]['images_per_s'])
    node, raw = results[best], results[NODE_BACKENDS[best]]
    allowance = results['ros floor']['p50_ms'] + results['preprocess']['p50_ms'] + 1.0
    versus_loop = node['images_per_s'] / results['openvino loop']['images_per_s']
    versus_baseline = node['images_per_s'] / results['baseline']['images_per_s']
    overhead = node['p50_ms'] - raw['p50_ms']
    return {
        'best_node': best,
        'throughput_vs_openvino_loop': {'ratio': round(versus_loop, 3), 'goal': 1.0,
                                        'met': versus_loop >= 1.0},
        'p50_over_backend_ms': {'value': round(overhead, 2), 'goal': round(allowance, 2),
                                'met': overhead <= allowance},
        'throughput_vs_baseline_node': {'ratio': round(versus_baseline, 3), 'goal': 3.0,
                                        'met': versus_baseline >= 3.0},
    }


def _print(model: str, results: dict, goals: dict) -> None:
    raw = results['raw']
    print(f'\n{model}')
    print(f'{"method":<15}{"img/s":>9}{"x raw":>8}{"p50 ms":>9}{"p95 ms":>9}{"p99 ms":>9}')
    for method, row in results.items():
        ratio = row['images_per_s'] / raw['images_per_s']
        print(f'{method:<15}{row["images_per_s"]:>9.1f}{ratio:>8.2f}{row["p50_ms"]:>9.2f}'
              f'{row["p95_ms"]:>9.2f}{row["p99_ms"]:>9.2f}')

    def verdict(goal: dict) -> str:
        return 'met' if goal['met'] else 'NOT met'

    loop, over, baseline = (goals['throughput_vs_openvino_loop'], goals['p50_over_backend_ms'],
                            goals['throughput_vs_baseline_node'])
    print(f'best node: {goals["best_node"]}')
    print(f'- throughput {loop["ratio"]:.2f}x the OpenVINO bf16 loop (goal >= 1.0): '
          f'{verdict(loop)}')
    print(f'- p50 {over["value"]:+.2f} ms over its backend (goal <= {over["goal"]:.2f} = ros '
          f'floor + preprocess + 1 ms): {verdict(over)}')
    print(f'- throughput {baseline["ratio"]:.2f}x the PyTorch baseline node (goal >= 3): '
          f'{verdict(baseline)}')


def markdown(report: dict) -> str:
    """Render a written report as the Markdown tables of docs/performance.md."""
    lines = [f'Machine: {report["machine"]["cpu"]}, {report["machine"]["cores"]} cores; '
             f'transport {report["fastdds_transports"]}; '
             + ('LOADED while measured' if report['machine_load']['loaded'] else 'idle') + '.']
    for model, results in report['models'].items():
        raw = results['raw']['images_per_s']
        lines += ['', f'| {model} | img/s (x raw) | p50 / p95 ms |', '| --- | ---: | ---: |']
        lines += [f'| `{method}` | {row["images_per_s"]:.1f} ({row["images_per_s"] / raw:.2f}x) '
                  f'| {row["p50_ms"]:.2f} / {row["p95_ms"]:.2f} |'
                  for method, row in results.items()]
        goals = report['goals'][model]
        verdicts = {name: 'met' if goal['met'] else 'not met' for name, goal in goals.items()
                    if isinstance(goal, dict)}
        loop, over, baseline = (goals['throughput_vs_openvino_loop'],
                                goals['p50_over_backend_ms'],
                                goals['throughput_vs_baseline_node'])
        lines += ['', f'Best node: `{goals["best_node"]}`. Throughput {loop["ratio"]:.2f}x the '
                  f'OpenVINO loop (goal >= 1: {verdicts["throughput_vs_openvino_loop"]}); p50 '
                  f'{over["value"]:+.2f} ms over its backend (goal <= {over["goal"]:.2f}: '
                  f'{verdicts["p50_over_backend_ms"]}); {baseline["ratio"]:.2f}x the PyTorch '
                  f'baseline node (goal >= 3: {verdicts["throughput_vs_baseline_node"]}).']
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the benchmark's parser (``dl-perception bench`` forwards its arguments here)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['resnet18', 'demo'],
                        choices=('resnet18', 'demo'), help='models to measure')
    parser.add_argument('--demo-model', type=Path,
                        help='exported demo model (default: the one `make demo` uses, '
                             'trained first if missing)')
    parser.add_argument('--rounds', type=int, default=5, help='alternating rounds (default 5)')
    parser.add_argument('--frames', type=int, default=40, help='frames per method and round')
    parser.add_argument('--markdown', type=Path, metavar='JSON',
                        help='print the tables of a written report and exit (measures nothing)')
    parser.add_argument('--output', type=Path, default=Path('bench_inference.json'),
                        help='JSON results (default ./bench_inference.json)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen models and write the JSON report."""
    args = build_parser().parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    report = {'machine': describe_machine(), 'fastdds_transports': os.environ.get(
        'FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT'), 'models': {}, 'goals': {}}
    load_before, calibration_before = os.getloadavg()[0], calibration_s()
    logs = Path(tempfile.mkdtemp(prefix='dlp-bench-logs-'))
    with tempfile.TemporaryDirectory(prefix='dlp-bench-') as folder:
        for choice in args.models:
            if choice == 'resnet18':
                model = resnet18(Path(folder))
            else:
                model = demo_model(args.demo_model or ensure_model(DEMO_CACHE))
            (logs / model.name).mkdir()
            results = measure_model(model, args.rounds, args.frames, logs / model.name,
                                    Path(folder))
            report['models'][model.name] = results
            report['goals'][model.name] = judge(results)
            _print(model.name, results, report['goals'][model.name])
    slowdown = calibration_s() / calibration_before
    loaded = (slowdown > CALIBRATION_SLOWDOWN
              or load_before / (os.cpu_count() or 1) > LOADED_AVERAGE)
    report['machine_load'] = {'load_average_before': load_before,
                              'calibration_slowdown': round(slowdown, 3), 'loaded': loaded}
    print(f'\nmachine: load average {load_before:.2f} before, calibration loop '
          f'{slowdown:.2f}x its time before at the end: '
          + ('LOADED, do not publish these figures' if loaded else 'idle'))
    args.output.write_text(json.dumps(report, indent=2) + '\n')
    print(f'\nwritten: {args.output} (node logs in {logs})')
    return 0
