"""
``classifier_node``: classify camera images with an ONNX model and publish vision_msgs.

A managed (lifecycle) node: configure loads the model, activate subscribes and starts the
worker, deactivate stops both, cleanup frees the model; ``autostart`` walks it to active.
Callbacks only store the newest frame of each camera; one worker thread classifies whatever
is waiting in one batch. Topics (relative, remappable): inputs from ``image_topics``;
``classification``, ``detections`` (tiles mode), ``overlay``, ``label_info`` and
``vision_info`` (both transient local), and ``/diagnostics``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import partial
import sys
import threading
import time
import traceback
from types import MappingProxyType
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.classifier import InferenceError
from dl_perception.inference.providers import provider_request
from dl_perception.inference.providers import ProviderError
from dl_perception.ros import vision_messages
from dl_perception.ros.classifier_parameters import classifier_from_parameters
from dl_perception.ros.classifier_parameters import MODEL_PARAMETERS
from dl_perception.ros.classifier_parameters import PARAMETERS
from dl_perception.ros.frame_processor import FrameProcessor
from dl_perception.ros.frame_processor import ProcessingSettings
from dl_perception.ros.image_conversion import check_compressed_msg
from dl_perception.ros.image_conversion import check_image_msg
from dl_perception.ros.image_conversion import image_to_msg
from dl_perception.ros.image_conversion import ImageConversionError
from dl_perception.ros.latest_frames import LatestFrames
from dl_perception.ros.latest_frames import ReceivedFrame
from dl_perception.ros.log_forwarding import PythonLogForwarding
from dl_perception.ros.node_statistics import diagnostic_status
from dl_perception.ros.node_statistics import NodeStatistics
from dl_perception.ros.node_statistics import SequenceGaps
from dl_perception.ros.qos_matching import choose_reliability
from dl_perception.ros.qos_matching import input_qos
from dl_perception.ros.qos_matching import latched_qos
from dl_perception.ros.spinning import run_node
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo
from vision_msgs.msg import VisionInfo

NO_INPUT_WARNING_S = 5.0
GRAPH_CHECK_PERIOD_S = 0.5
MODEL_ERRORS = (FileNotFoundError, ValueError, ProviderError)
# Frames arriving with nothing published for this many diagnostics periods (and at least
# STALL_MIN_S seconds, plus one max_rate_hz period) is an ERROR: the node is blind.
STALL_PERIODS = 3
STALL_MIN_S = 3.0
WORKER_RESTART_DELAY_S = 0.5
# While every camera has a frame waiting, the spinning thread takes no messages, but at least
# this often it spins once anyway: timers, services and parameter changes stay served.
BACKPRESSURE_MAX_WAIT_S = 0.05
INPUT_TYPES = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CompressedImage': CompressedImage}


@dataclass
class _Input:
    """One input topic: its subscription, and what the graph last showed about it."""

    subscription: Any
    reliability: Any
    type_name: str
    publishers: int = 0
    foreign_types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Settings:
    """
    Every parameter value, and the worker's typed view of them: one snapshot, swapped whole.

    The worker and the diagnostics read one snapshot per use, so a change made meanwhile can
    never mix old and new values.
    """

    values: Mapping[str, Any]
    processing: ProcessingSettings

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> _Settings:
        """Freeze a copy of ``values`` with its ProcessingSettings."""
        return cls(MappingProxyType(dict(values)), ProcessingSettings.from_parameters(values))


class ClassifierNode(LifecycleNode):
    """Serve one ONNX classifier to every configured camera topic."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('classifier', **kwargs)
        self._settings = _Settings.from_values(PARAMETERS.declare(self))
        self._unknown_parameters = PARAMETERS.warn_unknown_overrides(self)
        self._log_forwarding = PythonLogForwarding(self.get_logger())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._statistics = NodeStatistics()
        self._frames = LatestFrames()
        self._sequence_gaps = SequenceGaps()
        self._processor = FrameProcessor(self._statistics, self._reject)
        self._processor.reset_smoothing(self._settings.processing.smoothing)
        self._classifier: Classifier | None = None
        self._model_lock = threading.Lock()
        self._database_version = 0
        self._problem = 'not configured'
        self._input_topics = [self.resolve_topic_name(t)
                              for t in self._settings.values['image_topics'] if t]
        self._inputs: dict[str, _Input] = {}
        self._outputs: dict[str, Any] = {}
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._graph_timer = None
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(self._settings.values['diagnostics_period'],
                          self._publish_diagnostics)
        self.create_service(Trigger, '~/reload', self._on_reload)

    # lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers; FAILURE (with the reason) if it fails."""
        try:
            classifier = classifier_from_parameters(self._settings.values)
        except MODEL_ERRORS as error:
            self._problem = f'cannot load the model: {error}'
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        self._install(classifier)
        self._outputs = {
            'classification': self.create_lifecycle_publisher(Classification, 'classification',
                                                              10),
            'detections': self.create_lifecycle_publisher(Detection2DArray, 'detections', 10),
            'overlay': self.create_lifecycle_publisher(Image, 'overlay', 2),
            'label_info': self.create_lifecycle_publisher(LabelInfo, 'label_info',
                                                          latched_qos()),
            'vision_info': self.create_lifecycle_publisher(VisionInfo, 'vision_info',
                                                           latched_qos()),
        }
        self._problem = ''
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Publish the model description, subscribe, and start the worker."""
        result = super().on_activate(state)
        self._announce_model()
        self._refresh_subscriptions()
        self._graph_timer = self.create_timer(GRAPH_CHECK_PERIOD_S, self._refresh_subscriptions)
        self._stop.clear()
        self._statistics.restart()
        self._worker = threading.Thread(target=self._work, name='classifier-worker',
                                        daemon=True)
        self._worker.start()
        metadata = self._classifier.metadata
        mirrored = ' (mirror-averaged: two passes per image)' if (
            metadata and metadata.mirror_averaged) else ''
        self.get_logger().info(f'active: {self._classifier.path.name}{mirrored} on '
                               f'{", ".join(self._classifier.providers_in_use)}, inputs '
                               f'{", ".join(self._input_topics)}')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and unsubscribe; the model stays loaded."""
        self.stop_work()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and free the model."""
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        with self._model_lock:
            self._classifier = None
        self._problem = 'not configured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything."""
        self.stop_work()
        return super().on_shutdown(state)

    def stop_work(self) -> None:
        """Stop the worker and the subscriptions (deactivation, shutdown, process exit)."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        if self._graph_timer is not None:
            self.destroy_timer(self._graph_timer)
            self._graph_timer = None
        for item in self._inputs.values():
            self.destroy_subscription(item.subscription)
        self._inputs = {}
        self._frames.clear()

    def spin(self, executor: SingleThreadedExecutor) -> None:
        """
        Spin until shutdown; take no messages while every camera has a frame waiting.

        That is the node's backpressure: under overload the frames that would only replace
        waiting ones stay in the middleware (which keeps the newest and counts nothing in
        Python), so the worker keeps the GIL and the output holds at the saturated rate.
        """
        while self.context.ok():
            self._frames.wait_while_full(max(len(self._input_topics), 1),
                                         BACKPRESSURE_MAX_WAIT_S)
            executor.spin_once(timeout_sec=BACKPRESSURE_MAX_WAIT_S)

    def destroy_node(self) -> None:
        """Stop the work first: the worker must not publish through destroyed publishers."""
        self.stop_work()
        self._log_forwarding.close()
        super().destroy_node()

    # model ---------------------------------------------------------------------------

    def _install(self, classifier: Classifier) -> None:
        """Swap in a loaded model (atomically for the worker) and bump the database version."""
        with self._model_lock:
            self._classifier = classifier
            self._database_version += 1
            self._processor.reset_smoothing(self._settings.processing.smoothing)

    def _announce_labels(self) -> None:
        """Publish LabelInfo (latched): the class map and the threshold in force."""
        if 'label_info' not in self._outputs or self._classifier is None:
            return
        self._outputs['label_info'].publish(vision_messages.label_info_msg(
            Header(stamp=self.get_clock().now().to_msg()), self._classifier.labels,
            self._settings.processing.score_threshold))

    def _announce_model(self) -> None:
        """Publish LabelInfo and VisionInfo (latched) for the model now serving."""
        if 'vision_info' not in self._outputs or self._classifier is None:
            return
        self._announce_labels()
        header = Header(stamp=self.get_clock().now().to_msg())
        classifier = self._classifier
        self._outputs['vision_info'].publish(vision_messages.vision_info_msg(
            header, method=(classifier.metadata.architecture if classifier.metadata else
                            'onnx classifier'),
            database_location=str(classifier.path), database_version=self._database_version))

    def _on_reload(self, request: Trigger.Request,
                   response: Trigger.Response) -> Trigger.Response:
        """Load the model again from model_path; on failure the old one keeps serving."""
        if self._classifier is None:
            response.success, response.message = False, 'not configured: nothing to reload'
            return response
        try:
            classifier = classifier_from_parameters(self._settings.values)
        except MODEL_ERRORS as error:
            response.success = False
            response.message = f'reload failed, the previous model keeps serving: {error}'
            self.get_logger().error(response.message)
            return response
        self._install(classifier)
        self._announce_model()
        response.success = True
        response.message = f'loaded {classifier.path} (database version ' \
                           f'{self._database_version})'
        self.get_logger().info(response.message)
        return response

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """
        Validate changes and apply them.

        A change of a model parameter loads the new model first (which must also run a blank
        batch); if that fails the change is refused with the reason and the old model keeps
        serving. Any change wakes the worker, so a new max_rate_hz applies at once.
        """
        reason = PARAMETERS.check_changes(parameters)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        current = self._settings.values
        proposed = {**current, **{parameter.name: parameter.value for parameter in parameters}}
        model_changed = any(proposed[n] != current[n] for n in MODEL_PARAMETERS)
        classifier = None
        if model_changed and self._classifier is not None:
            try:
                classifier = classifier_from_parameters(proposed)
            except MODEL_ERRORS as error:
                return SetParametersResult(successful=False, reason=(
                    f'the new model does not load, the previous one keeps serving: {error}'))
        smoothing_changed = proposed['smoothing'] != current['smoothing']
        threshold_changed = proposed['score_threshold'] != current['score_threshold']
        self._settings = _Settings.from_values(proposed)
        if classifier is not None:
            self._install(classifier)
            self._announce_model()
        else:
            if smoothing_changed:
                self._processor.reset_smoothing(proposed['smoothing'])
            if threshold_changed:
                self._announce_labels()
        self._wake.set()
        return SetParametersResult(successful=True)

    # inputs ----------------------------------------------------------------------------

    def _refresh_subscriptions(self) -> None:
        """Subscribe to each input topic with the reliability its publishers need."""
        for topic in self._input_topics:
            publishers = self.get_publishers_info_by_topic(topic)
            current = self._inputs.get(topic)
            reliability = choose_reliability(self._settings.values['reliability'], publishers,
                                             current.reliability if current else None)
            if current is None or current.reliability != reliability:
                current = self._subscribe(topic, reliability, current)
            current.publishers = len(publishers)
            current.foreign_types = frozenset(
                info.topic_type for info in publishers if info.topic_type != current.type_name)

    def _subscribe(self, topic: str, reliability: Any, current: _Input | None) -> _Input:
        """(Re)subscribe; the message type follows the resolved (remapped) topic name."""
        if current is not None:
            self.destroy_subscription(current.subscription)
        type_name = ('sensor_msgs/msg/CompressedImage' if topic.endswith('/compressed')
                     else 'sensor_msgs/msg/Image')
        subscription = self.create_subscription(
            INPUT_TYPES[type_name], topic, partial(self._on_image, topic),
            input_qos(reliability, self._settings.values['queue_depth']))
        self._inputs[topic] = _Input(subscription, reliability, type_name)
        self.get_logger().info(f'subscribed to {topic} as {type_name} '
                               f'({reliability.name.lower()})')
        return self._inputs[topic]

    def _on_image(self, topic: str, msg: Image | CompressedImage, info: MessageInfo) -> None:
        """Check the message's structure and keep it as the camera's newest frame."""
        gid, sent_ns = info.get('publisher_gid'), info.get('source_timestamp')
        self._statistics.on_received(
            topic, self._sequence_gaps.missed((topic, bytes(gid['data']) if gid else b''),
                                              info.get('publication_sequence_number')),
            # the middleware's source timestamp is the sender's wall clock
            (time.time_ns() - sent_ns) / 1e6 if sent_ns else None)
        check = check_compressed_msg if isinstance(msg, CompressedImage) else check_image_msg
        try:
            check(msg, self._settings.processing.max_image_pixels)
        except ImageConversionError as error:
            self._reject(topic, str(error))
            return
        self._statistics.on_accepted()
        self._frames.put(topic, ReceivedFrame(msg, time.monotonic()))

    def _reject(self, topic: Hashable, reason: str) -> None:
        self._statistics.on_rejected(topic, reason)
        self.get_logger().warning(f'rejected a message on {topic}: {reason}',
                                  throttle_duration_sec=5.0)

    # work ------------------------------------------------------------------------------

    def _work(self) -> None:
        """
        Classify waiting frames until stopped, at most max_rate_hz batches a second.

        This loop is the worker's supervisor: a batch the model fails on is counted and the
        next one runs; any other error is logged with its traceback, reported on
        /diagnostics, and the loop starts again after a short pause. Only a stop ends it.
        """
        while not self._stop.is_set():
            frames = self._frames.take(timeout=0.1)
            if not frames:
                continue
            started = time.monotonic()
            try:
                self._process(frames)
            except InferenceError as error:
                self._statistics.on_inference_error(str(error))
                self.get_logger().error(str(error), throttle_duration_sec=5.0)
            except Exception as error:  # noqa: B902 - the supervisor must outlive any failure
                if not self.context.ok():
                    return  # SIGINT/SIGTERM shut the context down under the worker
                self._statistics.on_worker_failure(f'{type(error).__name__}: {error}')
                self.get_logger().error(f'the worker failed and restarts: '
                                        f'{traceback.format_exc()}')
                self._stop.wait(WORKER_RESTART_DELAY_S)
            self._pause_for_rate(started)

    def _pause_for_rate(self, started: float) -> None:
        """Wait out the rest of the max_rate_hz period; a parameter change or stop wakes."""
        while not self._stop.is_set():
            rate = self._settings.processing.max_rate_hz
            remaining = 1.0 / rate - (time.monotonic() - started) if rate > 0 else 0.0
            if remaining <= 0:
                return
            self._wake.wait(remaining)
            self._wake.clear()

    def _process(self, frames: dict[Hashable, ReceivedFrame]) -> None:
        """Classify one batch with the current model and publish every result."""
        with self._model_lock:
            classifier = self._classifier
        settings = self._settings.processing
        overlay = self._outputs['overlay']
        want_overlay = settings.publish_overlay and overlay.get_subscription_count() > 0
        results = self._processor.process(classifier, frames, settings, want_overlay)
        started = time.perf_counter()
        for message in results.classifications:
            self._outputs['classification'].publish(message)
            self._count_published(message.header)
        for message in results.detections:
            self._outputs['detections'].publish(message)
            self._count_published(message.header)
        for header, image in results.overlays:
            overlay.publish(image_to_msg(image, 'bgr8', header))
        if results.classifications or results.detections:
            self._statistics.on_stage('publish', (time.perf_counter() - started) * 1e3)

    def _count_published(self, header: Header) -> None:
        stamp_ns = Time.from_msg(header.stamp).nanoseconds
        now_ns = self.get_clock().now().nanoseconds
        self._statistics.on_published((now_ns - stamp_ns) / 1e6 if stamp_ns else float('nan'))

    # diagnostics -----------------------------------------------------------------------

    def _stall_window(self) -> float:
        """Seconds of input without output after which the node reports itself blind."""
        settings = self._settings
        rate = settings.processing.max_rate_hz
        return (max(STALL_PERIODS * settings.values['diagnostics_period'], STALL_MIN_S)
                + (1.0 / rate if rate > 0 else 0.0))

    def _health(self) -> tuple[bytes, str]:
        """Return the diagnostic level and message for the node's current state."""
        if self._classifier is None:
            return DiagnosticStatus.ERROR, self._problem
        errors, warnings = [], []
        if self._worker is not None:
            if not self._worker.is_alive():
                errors.append('the worker thread has stopped: nothing is classified')
            found_errors, found_warnings = self._statistics.problems(self._stall_window())
            errors += found_errors
            warnings += found_warnings
        in_use = self._classifier.providers_in_use
        shortfall = self._classifier.provider_settings.shortfall(in_use)
        if shortfall:
            warnings.append(shortfall)
        if self._unknown_parameters:
            warnings.append(self._unknown_parameters)
        warnings += self._input_problems()
        if errors:
            return DiagnosticStatus.ERROR, '; '.join(errors + warnings)
        if warnings:
            return DiagnosticStatus.WARN, '; '.join(warnings)
        state = 'classifying' if self._worker else 'configured, inactive'
        return DiagnosticStatus.OK, f'{state} on {in_use[0]}'

    def _input_problems(self) -> list[str]:
        """Warnings about the inputs: no publisher, publishers of another type, no input."""
        if self._worker is None:
            return []
        problems = []
        for topic, item in self._inputs.items():
            if item.foreign_types:
                foreign = ', '.join(sorted(item.foreign_types))
                problems.append(f'{topic} has publishers of {foreign} but is subscribed as '
                                f'{item.type_name}')
            elif not item.publishers:
                problems.append(f'no publisher seen on {topic}')
        idle = self._statistics.seconds_since_input()
        if not problems and idle > NO_INPUT_WARNING_S:
            problems.append(f'no input for {idle:.0f} s' if idle != float('inf')
                            else 'no input received yet')
        return problems

    def _publish_diagnostics(self) -> None:
        level, message = self._health()
        values = {'model': str(self._classifier.path) if self._classifier else 'none',
                  'providers in use': ', '.join(self._classifier.providers_in_use)
                  if self._classifier else 'none',
                  'providers asked for': provider_request(
                      self._settings.values['providers'],
                      self._settings.values['openvino_precision']),
                  'database version': str(self._database_version)}
        values.update(self._statistics.report(self._frames.dropped))
        status = diagnostic_status(self.get_fully_qualified_name(), values['model'], level,
                                   message, values)
        self._diagnostics.publish(DiagnosticArray(
            header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))


def _start_and_spin(node: ClassifierNode, executor: SingleThreadedExecutor) -> None:
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        node.spin(executor)
    finally:
        # Worker and subscriptions go while the executor still exists (``run_node`` shuts it
        # down next): freeing it first crashed the process (SIGSEGV in a middleware thread)
        # in about 1 of 20 SIGTERMs sent just after activation.
        node.stop_work()


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; exit 1 when its parameters are invalid."""
    return run_node(ClassifierNode, args, name='classifier', spin=_start_and_spin)


if __name__ == '__main__':
    sys.exit(main())
