"""
ONNX classifiers that load but fail at run time, written with onnx.helper for the fault tests.

Both carry dl_perception metadata (28x28 grey, three labels), so they load like an export:
- ``needs_32x32``: a Reshape that only fits 32x32 input, so every 28x28 batch fails;
- ``fails_on_bright``: classifies dark images and fails on any image with a pixel above
  half brightness (its Reshape target depends on the input), so a blank batch passes.
"""

from __future__ import annotations

from pathlib import Path

from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper
from onnx import TensorProto

LABELS = ('dark', 'grey', 'light')


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    spec = PreprocessingSpec(28, 28, 'grey', (0.0,), (1.0,))
    for key, value in ModelMetadata(LABELS, spec, architecture='faulty').to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _weights(features: int) -> TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.normal(size=(features, len(LABELS))).astype(np.float32),
                                   'weights')


def needs_32x32(path: Path) -> Path:
    """Dynamic height and width, but Reshape to (N, 1024): only 32x32 input runs."""
    shape = numpy_helper.from_array(np.array([-1, 1024], np.int64), 'shape')
    graph = helper.make_graph(
        [helper.make_node('Reshape', ['image', 'shape'], ['flat']),
         helper.make_node('MatMul', ['flat', 'weights'], ['logits'])],
        'needs_32x32',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['N', 1, 'H', 'W'])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['N', len(LABELS)])],
        [shape, _weights(1024)])
    return _save(graph, path)


def fails_on_bright(path: Path) -> Path:
    """Reshape to (N, 784 - [max pixel > 0.5]): fine for dark input, an error for bright."""
    constants = [numpy_helper.from_array(np.array(value, dtype), name) for name, value, dtype in (
        ('half', 0.5, np.float32), ('full', [784], np.int64), ('batch', [-1], np.int64))]
    graph = helper.make_graph(
        [helper.make_node('ReduceMax', ['image'], ['brightest'], keepdims=0),
         helper.make_node('Greater', ['brightest', 'half'], ['bright']),
         helper.make_node('Cast', ['bright'], ['bright_int'], to=TensorProto.INT64),
         helper.make_node('Sub', ['full', 'bright_int'], ['features']),
         helper.make_node('Concat', ['batch', 'features'], ['shape'], axis=0),
         helper.make_node('Reshape', ['image', 'shape'], ['flat']),
         helper.make_node('MatMul', ['flat', 'weights'], ['logits'])],
        'fails_on_bright',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['N', 1, 28, 28])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['N', len(LABELS)])],
        [*constants, _weights(784)])
    return _save(graph, path)
