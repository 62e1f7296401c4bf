"""
The inference path side by side, measured in one run, alternating.

For each model (ResNet-18 at 224x224; the Fashion-MNIST demo model) on 640x480 bgr8 frames:
1. ``raw``: ``session.run`` on a ready tensor, the floor for that model and provider;
2. ``classifier``: ``inference.Classifier.classify`` (conversion, preprocessing, inference,
   post-processing) in-process;
3. ``node``: classifier_node in its own process, fed and read over ROS 2 by this process
   (its default ``cpu_spin_wait: false``); ``node spin``: the same with ``cpu_spin_wait:
   true``, ONNX Runtime's default, which keeps cores busy between frames;
4. ``baseline``: a typical hand-written PyTorch node (``benchmarks.baseline_node``), same
   weights;
5. ``openvino``: OpenVINO on the same ONNX file, when it can be imported;
6. ``ros floor``: ``benchmarks.echo_node``, which answers each image at once: what moving the
   image and the result between processes costs, whatever the node does.
Throughput keeps two frames in flight (the node is never idle, never queued); latency sends
one frame at a time and runs from the image stamp to the result's arrival. Medians over
rounds; p50/p95/p99 over all samples. Prints a table, writes JSON with the machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
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
import numpy as np

METHODS = ('raw', 'classifier', 'node', 'node spin', 'baseline', 'openvino', 'ros floor')
NODES = {'node': 'ours', 'node spin': 'ours_spin', 'baseline': 'baseline', 'ros floor': 'echo'}


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


def _openvino(path: Path, openvino_path: str | None) -> Callable[[np.ndarray], object] | None:
    if openvino_path:
        sys.path.append(openvino_path)
    try:
        import openvino
    except ImportError:
        return None
    compiled = openvino.Core().compile_model(str(path), 'CPU')
    return lambda tensor: compiled(tensor)


def _start(module: str, parameters: dict, namespace: str, env: dict,
           logs: Path) -> subprocess.Popen:
    arguments = ['--ros-args', '-r', f'__ns:=/{namespace}']
    for name, value in parameters.items():
        arguments += ['-p', f'{name}:={json.dumps(value)}']
    with open(logs / f'{namespace}.log', 'w') as log:
        return subprocess.Popen([sys.executable, '-m', module, *arguments], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def measure_model(model: BenchModel, rounds: int, count: int,
                  openvino_path: str | None, logs: Path) -> dict:
    """
    Run every method on one model, alternating rounds; return the per-method figures.

    The nodes' output goes to ``logs/<namespace>.log``.
    """
    classifier = Classifier(model.onnx)
    frames = _frames(model, 16)
    tensor = classifier.preprocess(frames[0], 'bgr')[None]
    session, name = classifier.session, classifier.session.get_inputs()[0].name
    openvino = _openvino(model.onnx, openvino_path)
    env = dict(os.environ, ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', '77'))
    node_parameters = {'model_path': str(model.onnx), 'providers': ['cpu'], 'top_k': 5,
                       'reliability': 'reliable', 'publish_overlay': False}
    processes = [
        _start('dl_perception.ros.classifier_node', node_parameters, 'ours', env, logs),
        _start('dl_perception.ros.classifier_node', {**node_parameters, 'cpu_spin_wait': True},
               'ours_spin', env, logs),
        _start('benchmarks.baseline_node', {'weights': str(model.weights)},
               'baseline', env, logs),
        _start('benchmarks.echo_node', {}, 'echo', env, logs)]
    loop = RosLoop(frames, NODES.values())
    throughput: dict[str, list[float]] = {m: [] for m in METHODS}
    latency: dict[str, list[float]] = {m: [] for m in METHODS}
    dropped = dict.fromkeys(NODES, 0)
    try:
        for namespace in NODES.values():
            try:
                loop.wait_until_serving(namespace)
            except TimeoutError as error:
                raise TimeoutError(f'{error}; its log: {logs / namespace}.log') from None
        for _ in range(rounds):
            samples = _timed(lambda: session.run(None, {name: tensor}), count)
            latency['raw'] += samples
            throughput['raw'].append(count / sum(samples))
            picks = iter(frames * (count // len(frames) + 1))
            samples = _timed(lambda: classifier.classify(next(picks), 'bgr'), count)
            latency['classifier'] += samples
            throughput['classifier'].append(count / sum(samples))
            if openvino is not None:
                samples = _timed(lambda: openvino(tensor), count)
                latency['openvino'] += samples
                throughput['openvino'].append(count / sum(samples))
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


def _print(model: str, results: dict) -> None:
    raw = results['raw']
    print(f'\n{model}')
    print(f'{"method":<12}{"img/s":>9}{"x raw":>8}{"p50 ms":>9}{"p95 ms":>9}{"p99 ms":>9}')
    for method, row in results.items():
        ratio = row['images_per_s'] / raw['images_per_s']
        print(f'{method:<12}{row["images_per_s"]:>9.1f}{ratio:>8.2f}{row["p50_ms"]:>9.2f}'
              f'{row["p95_ms"]:>9.2f}{row["p99_ms"]:>9.2f}')
    floor, baseline = results['ros floor']['p50_ms'], results['baseline']
    for name in ('node', 'node spin'):
        node = results[name]
        print(f'{name}: {node["images_per_s"] / raw["images_per_s"]:.2f}x raw throughput '
              f'(goal >= 0.9), p50 latency +{node["p50_ms"] - raw["p50_ms"]:.1f} ms over raw '
              f'(goal <= 3; the ROS transport floor is {floor:.1f} ms), '
              f'{node["images_per_s"] / baseline["images_per_s"]:.2f}x the baseline node '
              f'(goal >= 1.4)')


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen models and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['resnet18', 'demo'],
                        choices=('resnet18', 'demo'), help='models to measure')
    parser.add_argument('--demo-model', type=Path,
                        help='exported demo model (default: the one `make demo` uses, '
                             'trained first if missing)')
    parser.add_argument('--rounds', type=int, default=5, help='alternating rounds (default 5)')
    parser.add_argument('--frames', type=int, default=40, help='frames per method and round')
    parser.add_argument('--openvino-path', help='folder to add to sys.path for openvino')
    parser.add_argument('--output', type=Path, default=Path('bench_inference.json'),
                        help='JSON results (default ./bench_inference.json)')
    args = parser.parse_args(argv)
    report = {'machine': describe_machine(), 'fastdds_transports': os.environ.get(
        'FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT'), 'models': {}}
    logs = Path(tempfile.mkdtemp(prefix='dlp-bench-logs-'))
    with tempfile.TemporaryDirectory(prefix='dlp-bench-') as folder:
        for choice in args.models:
            if choice == 'resnet18':
                model = resnet18(Path(folder))
            else:
                model = demo_model(args.demo_model or ensure_model(DEMO_CACHE))
            (logs / model.name).mkdir()
            results = measure_model(model, args.rounds, args.frames, args.openvino_path,
                                    logs / model.name)
            report['models'][model.name] = results
            _print(model.name, results)
    args.output.write_text(json.dumps(report, indent=2) + '\n')
    print(f'\nwritten: {args.output} (node logs in {logs})')
    return 0
