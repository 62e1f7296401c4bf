"""
Overload: classifier_node fed faster than it can classify; its output must not collapse.

    python -m benchmarks overload [--rates 250 500 1000 ... 8000] [--model M]
        [--output F]

One camera (``benchmarks.frame_flood``, a process of its own, best effort, 28x28 mono8
frames) floods the node at each input rate in turn; this process counts the node's results
per second over the steady part of each run and reads the node's /diagnostics. The saturated
output S is the highest output seen; the saturating input is the lowest rate reaching 0.95 S.
Goal: at every rate of at least twice the saturating input the output stays >= 0.9 S (frames
beyond what the node can classify are dropped, but the useful work must not fall). Each row
also gives the cores the node, the flood publisher and this counter used, so that a fall on a
small machine can be told apart from the publisher taking the node's cores.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import resource
import subprocess
import sys
import threading
import time

from benchmarks.machine import describe_machine
from diagnostic_msgs.msg import DiagnosticArray
from dl_perception.demo import DEMO_CACHE
from dl_perception.demo import ensure_model
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from vision_msgs.msg import Classification

NAMESPACE = 'overload'
WARM_UP_S = 1.0
TAIL_S = 0.5
GOAL_RATIO = 0.9


class ResultCounter:
    """Arrival times of the node's results and its latest diagnostic values."""

    def __init__(self) -> None:
        self.node = rclpy.create_node('overload_counter')
        self.arrivals: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(Classification, f'/{NAMESPACE}/classification',
                                      lambda _: self.arrivals.append(time.monotonic()),
                                      QoSProfile(depth=100))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spinning = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinning.start()

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._executor.shutdown()
        self._spinning.join()
        self.node.destroy_node()

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name == f'/{NAMESPACE}/classifier':
                self.diagnostics = {v.key: v.value for v in status.values}

    def rate_between(self, start: float, end: float) -> float:
        """Results per second that arrived in [start, end]."""
        return sum(start <= t <= end for t in list(self.arrivals)) / (end - start)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def children_cpu_s() -> float:
    """CPU seconds used by this process's ended (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_rate(counter: ResultCounter, node_pid: int, rate: float, seconds: float,
             env: dict) -> dict:
    """
    Flood at ``rate`` for ``seconds``; return input and output rates of the steady part.

    Also the cores each party used over the whole run (CPU seconds / wall seconds): on a small
    machine the flood publisher and this counter take cores from the node they measure.
    """
    started = time.monotonic()
    cpu_before = (process_cpu_s(node_pid), children_cpu_s(), time.process_time())
    flood = subprocess.run(
        [sys.executable, '-m', 'benchmarks.frame_flood', '--topic', f'/{NAMESPACE}/image',
         '--rate', str(rate), '--seconds', str(seconds)],
        env=env, capture_output=True, text=True, timeout=seconds + 90)
    if flood.returncode != 0:
        raise RuntimeError(f'the flood publisher at {rate:g}/s exited {flood.returncode}:\n'
                           f'{flood.stderr[-3000:]}')
    sent = json.loads(flood.stdout.strip().splitlines()[-1])
    end = time.monotonic()
    cpu_after = (process_cpu_s(node_pid), children_cpu_s(), time.process_time())
    node_cores, flood_cores, counter_cores = (
        round((after - before) / (end - started), 2) for before, after in zip(cpu_before,
                                                                              cpu_after))
    first = next((t for t in counter.arrivals if t >= started), end)
    window = (first + WARM_UP_S, end - TAIL_S)
    output = counter.rate_between(*window) if window[1] > window[0] else 0.0
    return {'asked_hz': rate, 'input_hz': sent['rate_hz'], 'output_hz': output,
            'node_cores': node_cores, 'flood_cores': flood_cores,
            'counter_cores': counter_cores}


def judge(rows: list[dict]) -> dict:
    """Saturated output, saturating input, and whether every 2x-overloaded run kept 0.9 S."""
    saturated = max(row['output_hz'] for row in rows)
    saturating = min(row['input_hz'] for row in rows if row['output_hz'] >= 0.95 * saturated)
    overloaded = [row for row in rows if row['input_hz'] >= 2 * saturating]
    worst = min((row['output_hz'] / saturated for row in overloaded), default=None)
    return {'saturated_output_hz': saturated, 'saturating_input_hz': saturating,
            'worst_overloaded_ratio': worst,
            'goal_met': None if worst is None else worst >= GOAL_RATIO}


def main(argv: list[str] | None = None) -> int:
    """Run every rate against one node; print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rates', type=float, nargs='+',
                        default=[250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000])
    parser.add_argument('--seconds', type=float, default=5.0, help='per rate')
    parser.add_argument('--model', type=Path, help='ONNX model (default: the demo model)')
    parser.add_argument('--output', type=Path, default=Path('overload.json'))
    options = parser.parse_args(argv)
    model = options.model or ensure_model(DEMO_CACHE)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    rclpy.init()
    node = subprocess.Popen(
        [sys.executable, '-m', 'dl_perception.ros.classifier_node', '--ros-args',
         '-r', f'__ns:=/{NAMESPACE}', '-p', f'model_path:={model}', '-p', 'providers:=[cpu]',
         '-p', 'diagnostics_period:=1.0'], env=env, stderr=subprocess.PIPE, text=True)
    try:
        while 'active:' not in node.stderr.readline():
            if node.poll() is not None:
                raise RuntimeError(f'classifier_node exited with {node.returncode}')
        counter = ResultCounter()
        rows = [run_rate(counter, node.pid, rate, options.seconds, env)
                for rate in options.rates]
        time.sleep(1.5)  # one more diagnostics period
        counter.close()
        verdict = judge(rows)
    finally:
        node.send_signal(2)
        node.wait(timeout=30)
    print(f'{"asked Hz":>9} {"input Hz":>9} {"output Hz":>10} {"output/S":>9} '
          f'{"cores: node":>12} {"flood":>6} {"counter":>8}')
    for row in rows:
        print(f'{row["asked_hz"]:>9.0f} {row["input_hz"]:>9.1f} {row["output_hz"]:>10.1f} '
              f'{row["output_hz"] / verdict["saturated_output_hz"]:>9.2f} '
              f'{row["node_cores"]:>12.2f} {row["flood_cores"]:>6.2f} '
              f'{row["counter_cores"]:>8.2f}')
    worst = verdict['worst_overloaded_ratio']
    print(f'saturated output S = {verdict["saturated_output_hz"]:.1f}/s at '
          f'{verdict["saturating_input_hz"]:.0f} frames/s in; at >= 2x that input the output is '
          + ('not measured (add a higher rate)' if worst is None else
             f'>= {worst:.2f} S: goal >= {GOAL_RATIO} S '
             + ('met' if verdict['goal_met'] else 'NOT met')))
    options.output.write_text(json.dumps({
        'machine': describe_machine(), 'model': str(model), 'rows': rows, **verdict,
        'node_diagnostics': counter.diagnostics}, indent=2))
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
