"""The benchmarks run end to end on a tiny model: every method reports, nothing is timed here."""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from dl_perception.demo import DEMO_DDS_ENVIRONMENT
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# `python -m benchmarks` runs from here: benchmarks/ is not installed.
REPOSITORY = Path(__file__).resolve().parents[1]
ROUNDS, FRAMES = 1, 4


@pytest.fixture
def demo_like_model(tiny_checkpoint, tiny_onnx, tmp_path) -> Path:
    """Lay the tiny LeNet out like the demo cache: model.onnx with run/best.pt beside it."""
    (tmp_path / 'run').mkdir()
    shutil.copy(tiny_checkpoint, tmp_path / 'run' / 'best.pt')
    return Path(shutil.copy(tiny_onnx, tmp_path / 'model.onnx'))


def test_bench_measures_every_method(demo_like_model, ros_env, tmp_path):
    output = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, '-m', 'benchmarks', 'pipeline', '--models', 'demo', '--demo-model',
         str(demo_like_model), '--rounds', str(ROUNDS), '--frames', str(FRAMES), '--output',
         str(output)],
        cwd=REPOSITORY, env=ros_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report['machine']['cores'] == os.cpu_count()
    rows = report['models']['demo-lenet']
    assert set(rows) == {'raw', 'raw openvino', 'raw int8', 'preprocess', 'classifier',
                         'openvino loop', 'node', 'node openvino', 'node int8', 'baseline',
                         'ros floor'}
    for method, row in rows.items():
        assert row['images_per_s'] > 0, method
        assert 0 < row['p50_ms'] <= row['p95_ms'] <= row['p99_ms'], method
    # A drop is a frame replaced by a newer one before the node took it: never more than the
    # frames sent, and none at all for the baseline, which queues 10 with 2 in flight.
    for method in ('node', 'node openvino', 'node int8', 'ros floor'):
        assert 0 <= rows[method]['dropped_in_throughput_runs'] <= ROUNDS * FRAMES, method
    assert rows['baseline']['dropped_in_throughput_runs'] == 0
    goals = report['goals']['demo-lenet']
    best = goals['best_node']
    assert rows[best]['images_per_s'] == max(rows[m]['images_per_s']
                                             for m in ('node', 'node openvino', 'node int8'))
    ratio = goals['throughput_vs_baseline_node']['ratio']
    assert ratio == pytest.approx(rows[best]['images_per_s'] / rows['baseline']['images_per_s'],
                                  rel=1e-2)
    for goal in ('throughput_vs_openvino_loop', 'p50_over_backend_ms',
                 'throughput_vs_baseline_node'):
        assert ('met' if goals[goal]['met'] else 'NOT met') in result.stdout, goal
    assert report['machine_load']['calibration_slowdown'] > 0
    assert ('LOADED' in result.stdout) == report['machine_load']['loaded']
    tables = subprocess.run([sys.executable, '-m', 'benchmarks', 'pipeline', '--markdown',
                             str(output)], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert f'| `node openvino` | {rows["node openvino"]["images_per_s"]:.1f} (' in tables
    assert f'Best node: `{best}`' in tables


def test_soak_accounts_for_every_frame(demo_like_model, ros_env, tmp_path):
    output = tmp_path / 'soak.json'
    # The DDS settings the demo uses for 640x480 frames (docs/performance.md "Soak").
    env = dict(ros_env, **DEMO_DDS_ENVIRONMENT)
    result = subprocess.run(
        [sys.executable, '-m', 'benchmarks', 'soak', '--minutes', '0.3', '--model',
         str(demo_like_model), '--output', str(output)],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300)
    assert output.is_file(), result.stdout + result.stderr
    report = json.loads(output.read_text())
    logs = Path(report['logs'])
    assert result.returncode == 0, (result.stdout + result.stderr + '\nclassifier_node log:\n'
                                    + (logs / 'classifier_node.log').read_text()[-3000:])
    assert 'soak: PASS' in result.stdout
    assert report['node_alive_at_end'] and report['exit_codes_source_node'] == [0, 0]
    assert report['sent_by_source'] > 0 and report['rejected'] == 0
    assert report['received'] >= report['sent_by_source'] * 0.99
    assert report['fastdds_transports'] == DEMO_DDS_ENVIRONMENT['FASTDDS_BUILTIN_TRANSPORTS']
    # A share of the machine's cores; a run shorter than the warm-up leaves no window, so 0.
    assert 0 <= report['node_cpu_percent_of_one_core_after_warm_up'] <= 100 * os.cpu_count()


def test_overload_counts_the_output_at_each_input_rate(tiny_onnx, ros_env, tmp_path):
    output = tmp_path / 'overload.json'
    result = subprocess.run(
        [sys.executable, '-m', 'benchmarks', 'overload', '--rates', '20', '60', '--seconds',
         '3', '--model', str(tiny_onnx), '--output', str(output)],
        cwd=REPOSITORY, env=ros_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    rows = report['rows']
    assert [row['asked_hz'] for row in rows] == [20, 60]
    for row in rows:  # far below saturation: every frame sent is classified
        assert row['input_hz'] == pytest.approx(row['asked_hz'], rel=0.1)
        assert row['output_hz'] == pytest.approx(row['input_hz'], rel=0.2)
        # Each party's share of the machine: the node and the flood worked, none beyond it.
        assert 0 < row['node_cores'] <= os.cpu_count() and 0 < row['flood_cores'] <= os.cpu_count()
        assert 0 <= row['counter_cores'] <= os.cpu_count()
    assert report['saturated_output_hz'] == max(row['output_hz'] for row in rows)
    assert 'batch sizes (size: batches)' in report['node_diagnostics']
    assert 'saturated output S' in result.stdout
