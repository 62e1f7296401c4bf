"""
A test's hands on the ROS graph, run as its own process: publish, record, call, set.

    ros_probe.py publish SPEC_JSON   publish frames (see ``publish``), print 'done: ...' with
                                     the count and rate achieved at the end
    ros_probe.py record SPEC_JSON    print 'ready' once every topic has a publisher, then the
                                     received messages as JSON lines; exit when complete
    ros_probe.py reload NODE         call NODE/reload (std_srvs/Trigger), print the response
    ros_probe.py set NODE NAME YAML  set one parameter, print the result as JSON
    ros_probe.py transition NODE T   trigger lifecycle transition T (configure, activate, ...),
                                     print the success flag and the new state as JSON
"""

from __future__ import annotations

import json
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.ros.image_conversion import compressed_msg
from dl_perception.ros.image_conversion import image_to_msg
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from lifecycle_msgs.srv import GetState
from message_json import to_plain
import numpy as np
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo
from vision_msgs.msg import VisionInfo
import yaml

TYPES = {'Classification': Classification, 'Detection2DArray': Detection2DArray,
         'LabelInfo': LabelInfo, 'VisionInfo': VisionInfo, 'Image': Image,
         'DiagnosticArray': DiagnosticArray}


def qos(reliability: str, latched: bool = False, depth: int = 100) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        reliability=(ReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))


def wait_for_subscribers(node, publishers, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.get_subscription_count() == 0
                                              for p in publishers):
        rclpy.spin_once(node, timeout_sec=0.05)


def frames_from(spec: dict) -> list[tuple[str, object]]:
    """(topic, message) pairs to send; message data from the spec."""
    messages = []
    images = load_fashion_mnist(FASHION_MNIST_ROOT, 'test') if spec.get('indices') else None
    for number, index in enumerate(spec.get('indices', [])):
        grey = images.read(index)[:, :, 0]
        topic = spec['topics'][number % len(spec['topics'])]
        header = Header(frame_id=f'{topic}#{index}')
        header.stamp.sec, header.stamp.nanosec = 1000 + number, index
        if topic.endswith('/compressed'):
            message = compressed_msg(grey, spec.get('format', 'png'), header=header)
        else:
            message = image_to_msg(np.dstack([grey] * 3), 'bgr8', header)
        messages.append((topic, message))
    for raw in spec.get('raw', []):
        messages.append((raw['topic'], image_from_spec(raw)))
    return messages


def image_from_spec(raw: dict):
    """Build the message a raw spec describes; 'as_image' sends an Image even on /compressed."""
    if raw['topic'].endswith('/compressed') and not raw.get('as_image'):
        return CompressedImage(format=raw.get('format', ''), data=bytes(raw['data']))
    message = Image(height=raw['height'], width=raw['width'], encoding=raw['encoding'],
                    is_bigendian=raw.get('is_bigendian', 0), step=raw['step'])
    message.data = np.load(raw['npy']).tobytes() if 'npy' in raw else bytes(raw['data'])
    return message


def malformed(count: int, seed: int, image_topic: str,
              compressed_topic: str) -> list[tuple[str, object]]:
    """Messages that are structurally wrong, every one: the node must reject each."""
    rng = np.random.default_rng(seed)
    messages = []
    for number in range(count):
        kind = number % 7
        if kind == 5:
            messages.append((compressed_topic, CompressedImage(format='jpeg', data=b'')))
            continue
        if kind == 6:
            junk = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
            messages.append((compressed_topic, CompressedImage(format='jpeg',
                                                               data=b'XX' + junk)))
            continue
        width, height = int(rng.integers(1, 64)), int(rng.integers(1, 64))
        encoding, step, size = 'bgr8', width * 3, width * 3 * height
        if kind == 0:
            encoding = rng.choice(['bgr9', 'yuv420', '', 'BGR8', 'rgb16'])
        elif kind == 1:
            width = 0
        elif kind == 2:
            height = 0
        elif kind == 3:
            step = width * 3 - 1
        else:
            size = max(0, step * height - int(rng.integers(1, step + 1)))
        message = Image(height=height, width=width, encoding=str(encoding), step=max(step, 0))
        message.data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        messages.append((image_topic, message))
    return messages


def publish(spec: dict) -> None:
    """Publish the spec's frames (valid ones, then any malformed ones) at spec['rate'] Hz."""
    node = rclpy.create_node('probe_publisher')
    messages = frames_from(spec)
    if 'malformed' in spec:
        bad = malformed(**spec['malformed'])
        good = messages
        every = max(1, len(bad) // max(1, len(good)))
        messages = [m for i, item in enumerate(bad)
                    for m in ([good[i // every]] if i % every == 0 and i // every < len(good)
                              else []) + [item]]
    publishers = {}
    for topic, message in messages:
        if topic not in publishers:
            publishers[topic] = node.create_publisher(type(message), topic,
                                                      qos(spec.get('reliability', 'reliable'),
                                                          depth=spec.get('depth', 100)))
    reliable = spec.get('reliability', 'reliable') != 'best_effort'
    waited = spec.get('wait_for_subscribers', True)
    if waited:
        wait_for_subscribers(node, publishers.values())
    # Matched on this side is enough for reliable delivery (what the reader misses before it
    # matches us is sent again, and the acknowledgements are waited for below). A best-effort
    # reader drops what comes before it has matched us, which this side cannot observe: only
    # there, or when asked (``settle``), a pause remains.
    time.sleep(spec.get('settle', 0.0 if reliable and waited else 0.5))
    period = 1.0 / spec.get('rate', 50.0)
    sent, started = 0, time.monotonic()
    for _ in range(spec.get('repeat', 1)):
        for topic, message in messages:
            # On a fixed schedule, so the rate is the one asked for whatever publishing costs.
            time.sleep(max(0.0, started + sent * period - time.monotonic()))
            publishers[topic].publish(message)
            rclpy.spin_once(node, timeout_sec=0.0)
            sent += 1
    elapsed = time.monotonic() - started
    # Exit only once every reliable subscriber has acknowledged every message.
    for publisher in publishers.values():
        if not publisher.wait_for_all_acked(Duration(seconds=spec.get('linger', 10.0))):
            print(f'not acknowledged: {publisher.topic_name}', file=sys.stderr, flush=True)
    print(f'done: {sent} messages at {(sent - 1) / max(elapsed, 1e-9):.2f} Hz', flush=True)


def record(spec: dict) -> int:
    """Record topics until each has its count (or the timeout); print JSON lines."""
    node = rclpy.create_node('probe_recorder')
    counts = dict.fromkeys(spec['topics'], 0)
    # Latched messages can arrive before every topic is matched: hold them until 'ready'.
    early: list[str] = []
    for topic, options in spec['topics'].items():
        def keep(msg, topic=topic):
            counts[topic] += 1
            line = json.dumps({'topic': topic, 'message': to_plain(msg)})
            if early is not None:
                early.append(line)
            else:
                print(line, flush=True)
        node.create_subscription(TYPES[options['type']], topic, keep,
                                 qos(options.get('reliability', 'reliable'),
                                     options.get('latched', False)))
    subscriptions = list(node.subscriptions)
    deadline = time.monotonic() + spec.get('timeout', 30.0)
    while time.monotonic() < deadline and any(s.get_publisher_count() == 0
                                              for s in subscriptions):
        rclpy.spin_once(node, timeout_sec=0.05)
    print('ready', flush=True)  # every topic has a publisher: nothing sent from now is missed
    for line in early:
        print(line, flush=True)
    early = None
    while time.monotonic() < deadline and any(
            counts[t] < o.get('count', 1) for t, o in spec['topics'].items()):
        rclpy.spin_once(node, timeout_sec=0.05)
    return 0 if all(counts[t] >= o.get('count', 1) for t, o in spec['topics'].items()) else 1


def call(client, request, node):
    if not client.wait_for_service(timeout_sec=20.0):
        raise SystemExit(f'service {client.srv_name} not available')
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=60.0)
    return future.result()


def reload(target: str) -> None:
    node = rclpy.create_node('probe_client')
    response = call(node.create_client(Trigger, f'{target}/reload'), Trigger.Request(), node)
    print(json.dumps({'success': response.success, 'message': response.message}))


def set_parameter(target: str, name: str, text: str) -> None:
    node = rclpy.create_node('probe_client')
    request = SetParameters.Request(
        parameters=[Parameter(name, value=yaml.safe_load(text)).to_parameter_msg()])
    response = call(node.create_client(SetParameters, f'{target}/set_parameters'), request,
                    node)
    result = response.results[0]
    print(json.dumps({'successful': result.successful, 'reason': result.reason}))


def transition(target: str, name: str) -> None:
    node = rclpy.create_node('probe_client')
    ids = {'configure': Transition.TRANSITION_CONFIGURE,
           'activate': Transition.TRANSITION_ACTIVATE,
           'deactivate': Transition.TRANSITION_DEACTIVATE,
           'cleanup': Transition.TRANSITION_CLEANUP}
    request = ChangeState.Request(transition=Transition(id=ids[name]))
    changed = call(node.create_client(ChangeState, f'{target}/change_state'), request, node)
    state = call(node.create_client(GetState, f'{target}/get_state'), GetState.Request(), node)
    print(json.dumps({'success': changed.success, 'state': state.current_state.label}))


def main() -> int:
    rclpy.init()
    try:
        command = sys.argv[1]
        if command == 'publish':
            publish(json.loads(sys.argv[2]))
        elif command == 'record':
            return record(json.loads(sys.argv[2]))
        elif command == 'reload':
            reload(sys.argv[2])
        elif command == 'set':
            set_parameter(sys.argv[2], sys.argv[3], sys.argv[4])
        elif command == 'transition':
            transition(sys.argv[2], sys.argv[3])
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
