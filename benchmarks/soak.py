"""
Soak test: classifier_node fed at 30 Hz for minutes, its memory and counters watched.

    python -m benchmarks soak --minutes 10 [--model model.onnx] [--output soak.json]

Starts image_source_node (Fashion-MNIST test images as a looping 640x480 camera) and
classifier_node as separate processes, samples the node's resident memory every few seconds
and CPU time, and its /diagnostics counters. Reports memory growth after warm-up (goal <=
5%), errors (rejected messages, a dead process, a non-zero exit) and the frame accounting:
the node received (nearly) every frame the source sent, and published or dropped for a newer
one each frame it received. With a model far faster than the camera, drops should be zero.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks.machine import describe_machine
from diagnostic_msgs.msg import DiagnosticArray
from dl_perception.demo import DEMO_CACHE
from dl_perception.demo import ensure_model
import rclpy

WARM_UP_S = 60.0
SAMPLE_PERIOD_S = 5.0
FINAL_REPORT_S = 2.5  # more than two diagnostics periods of the node (1 s)


def resident_mib(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise ValueError(f'no VmRSS for process {pid}')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _start(module: str, parameters: dict, env: dict, log: Path) -> subprocess.Popen:
    arguments = [item for name, value in parameters.items()
                 for item in ('-p', f'{name}:={json.dumps(value)}')]
    with open(log, 'w') as stream:  # a file, not a pipe: nobody reads while it runs
        return subprocess.Popen([sys.executable, '-m', module, '--ros-args', *arguments],
                                env=env, stdout=stream, stderr=subprocess.STDOUT)


def frames_sent(log: Path) -> int:
    """Return the last 'sent N frames' count image_source_node logged (0 if none)."""
    counts = re.findall(r'sent (\d+) frames', log.read_text())
    return int(counts[-1]) if counts else 0


def soak(model: Path, minutes: float, rate: float, spin_wait: bool = False) -> dict:
    """Run the soak and return its figures; the nodes' logs go to a temporary folder."""
    logs = Path(tempfile.mkdtemp(prefix='dlp-soak-'))
    env = dict(os.environ, ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', '78'))
    node = _start('dl_perception.ros.classifier_node',
                  {'model_path': str(model), 'providers': ['cpu'], 'diagnostics_period': 1.0,
                   'cpu_spin_wait': spin_wait}, env, logs / 'classifier_node.log')
    source = _start('dl_perception.ros.image_source_node',
                    {'loop': True, 'rate_hz': rate, 'max_frames': 0, 'width': 640,
                     'height': 480, 'wait_for_subscribers': 1}, env,
                    logs / 'image_source_node.log')
    rclpy.init()
    listener = rclpy.create_node('soak_listener')
    latest: dict[str, str] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == '/classifier':  # the node's fully qualified name
                latest.clear()
                latest.update({pair.key: pair.value for pair in status.values})
                latest['level'] = str(status.level[0])

    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    samples, started = [], time.monotonic()
    try:
        while time.monotonic() - started < minutes * 60:
            deadline = time.monotonic() + SAMPLE_PERIOD_S
            while time.monotonic() < deadline:
                rclpy.spin_once(listener, timeout_sec=0.1)
            try:
                samples.append((time.monotonic() - started, resident_mib(node.pid),
                                cpu_seconds(node.pid), int(latest.get('received', 0))))
            except (FileNotFoundError, ValueError):  # the node exited (gone, or a zombie)
                break
    finally:
        alive = node.poll() is None
        source.send_signal(signal.SIGINT)
        exit_codes = [source.wait(timeout=30)]
        # Wait for the node's counters to include the source's last frames.
        settle = time.monotonic() + FINAL_REPORT_S
        while time.monotonic() < settle:
            rclpy.spin_once(listener, timeout_sec=0.1)
        counters = dict(latest)
        node.send_signal(signal.SIGINT)
        exit_codes.append(node.wait(timeout=30))
        listener.destroy_node()
        rclpy.try_shutdown()
    if not samples:
        log = (logs / 'classifier_node.log').read_text()[-2000:]
        raise RuntimeError(f'classifier_node exited at once (code {exit_codes[1]}); the end '
                           f'of its log:\n{log}')
    warm = [sample for sample in samples if sample[0] >= WARM_UP_S] or samples[-1:]
    growth = (warm[-1][1] - warm[0][1]) / warm[0][1] * 100
    busy = (warm[-1][2] - warm[0][2]) / max(warm[-1][0] - warm[0][0], 1e-9) * 100
    seconds = samples[-1][0] if samples else 0.0
    return {
        'minutes': round(seconds / 60, 2), 'rate_hz': rate, 'cpu_spin_wait': spin_wait,
        'frames_expected_about': round(seconds * rate),
        'sent_by_source': frames_sent(logs / 'image_source_node.log'),
        'node_alive_at_end': alive, 'exit_codes_source_node': exit_codes,
        'rss_mib_at_warm_up': round(warm[0][1], 1),
        'rss_mib_at_end': round(warm[-1][1], 1),
        'rss_growth_percent_after_warm_up': round(growth, 2),
        'rss_mib_max': round(max(sample[1] for sample in samples), 1),
        'node_cpu_percent_of_one_core_after_warm_up': round(busy, 1),
        'received': int(counters.get('received', 0)),
        'published': int(counters.get('published', 0)),
        'dropped': int(counters.get('dropped (newer frame arrived)', 0)),
        'rejected': int(counters.get('rejected (malformed)', 0)),
        'latency_p50_p95_ms': counters.get('latency stamp->publish p50 / p95 (ms)', 'n/a'),
        'fastdds_transports': os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT'),
        'sample_period_s': SAMPLE_PERIOD_S,
        'rss_samples_mib': [round(sample[1], 1) for sample in samples],
        'received_samples': [sample[3] for sample in samples],
        'logs': str(logs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--model', type=Path,
                        help='ONNX model (default: the demo one, trained first if missing)')
    parser.add_argument('--spin-wait', action='store_true',
                        help='run the node with cpu_spin_wait:=true (to compare CPU use)')
    parser.add_argument('--output', type=Path, default=Path('soak.json'))
    args = parser.parse_args(argv)
    model = args.model or ensure_model(DEMO_CACHE)
    report = {'machine': describe_machine(), 'model': str(model),
              **soak(model, args.minutes, args.rate, args.spin_wait)}
    args.output.write_text(json.dumps(report, indent=2) + '\n')
    for key, value in report.items():
        if key not in ('machine', 'rss_samples_mib', 'received_samples'):
            print(f'{key:<36} {value}')
    # The last diagnostics may lag the counters by a frame or two in flight.
    unaccounted = report['received'] - report['published'] - report['dropped']
    checks = {
        'node alive, clean exits': report['node_alive_at_end'] and report[
            'exit_codes_source_node'] == [0, 0],
        'no rejected messages': report['rejected'] == 0,
        'rss growth <= 5%': report['rss_growth_percent_after_warm_up'] <= 5.0,
        'received = published + dropped': abs(unaccounted) <= 2,
        # Frames lost between the processes never reach the node's counters.
        'received >= 99% of sent': report['received'] >= 0.99 * report['sent_by_source'] > 0,
    }
    for name, passed in checks.items():
        print(f'  {"ok  " if passed else "FAIL"} {name}')
    ok = all(checks.values())
    print('soak:', 'PASS' if ok else 'FAIL', f'(written: {args.output})')
    return 0 if ok else 1
