"""Tiles mode: Fashion-MNIST items planted in a black frame are found, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import cv2
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.tiling import box_iou
from dl_perception.inference.tiling import detect_in_tiles
from dl_perception.inference.tiling import merge_tiles
from dl_perception.inference.tiling import TileDetection
import numpy as np
import pytest
from training_runs import train_folder_lenet

FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
CLASSES = {0: 'T-shirt_top', 1: 'Trouser', 8: 'Bag', 9: 'Ankle boot'}
# Grid places (multiples of the default stride, 28 / 4 = 7) and places between grid points.
PLACES = ((56, 56), (280, 140), (420, 308), (515, 93), (333, 247), (600, 440))


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move a 2-D image by (dx, dy) pixels, filling with black."""
    out = np.zeros_like(image)
    height, width = image.shape
    out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        image[max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return out


@pytest.fixture(scope='module')
def test_images():
    return load_fashion_mnist(FASHION_MNIST, 'test')


@pytest.fixture(scope='module')
def tiles_model(tmp_path_factory) -> Path:
    """Train a 28x28 LeNet on four classes plus background (black, noise, cut-off objects)."""
    root = tmp_path_factory.mktemp('tiling')
    rng = np.random.default_rng(0)
    train = load_fashion_mnist(FASHION_MNIST, 'train')
    for split, start, count in (('train', 0, 500), ('val', 50_000, 100)):
        objects = [i for i in range(start, 60_000) if train.labels[i] in CLASSES][:2 * count]
        for label, name in [*CLASSES.items(), (None, 'background')]:
            folder = root / 'data' / split / name
            folder.mkdir(parents=True)
            picks = [i for i in range(start, 60_000) if train.labels[i] == label][:count]
            for number in range(count if label is not None else 2 * count):
                if label is not None:  # the object, up to 3 pixels off centre
                    image = _shift(train.read(picks[number])[:, :, 0], *rng.integers(-3, 4, 2))
                elif number % 4 == 0:  # black or dark noise
                    image = rng.integers(0, 2 + number % 30, (28, 28), dtype=np.uint8)
                else:  # an object cut by the tile's edge: 8..21 pixels off in x, y or both
                    offset = rng.integers(8, 22, 2) * rng.choice([-1, 1], 2)
                    if number % 4 != 3:
                        offset[number % 4 - 1] = rng.integers(-3, 4)
                    image = _shift(train.read(objects[number])[:, :, 0], *offset)
                cv2.imwrite(str(folder / f'{number}.png'), image)
    return train_folder_lenet(root, input_size=28, epochs=8)


def _plant(test_images, classifier: Classifier) -> tuple[np.ndarray, list]:
    """Paste one test item per place (cycling the classes) that the model knows on its own."""
    frame = np.zeros((480, 640, 1), np.uint8)
    labels = list(CLASSES)
    planted, index = [], 0
    for number, (x, y) in enumerate(PLACES):
        wanted = labels[number % len(labels)]
        while True:
            index += 1
            item = test_images.read(index)
            row = classifier.predict_batch([item], 'grey')[0]
            if (test_images.labels[index] == wanted
                    and classifier.labels[int(np.argmax(row))] == CLASSES[wanted]):
                break
        frame[y:y + 28, x:x + 28] = item
        planted.append((CLASSES[wanted], (x, y, 28, 28)))
    return frame, planted


@pytest.mark.slow
def test_planted_objects_get_their_own_box_and_class(tiles_model, test_images):
    classifier = Classifier(tiles_model)
    frame, planted = _plant(test_images, classifier)
    found = detect_in_tiles(classifier, frame, 'grey', 28, 7, 0.5, ignore={'background'})
    for label, box in planted:
        best = max((box_iou(d.box, box) for d in found if d.label == label), default=0.0)
        assert best >= 0.5, (label, box, found)
    for detection in found:  # nothing where nothing was planted
        assert max(box_iou(detection.box, box) for _, box in planted) > 0, (detection, found)
    empty = np.zeros_like(frame)
    assert detect_in_tiles(classifier, empty, 'grey', 28, 7, 0.5, ignore={'background'}) == []


def test_defaults_find_nothing_in_a_black_frame_even_without_background_class(tiny_onnx):
    classifier = Classifier(tiny_onnx)
    for frame in (np.zeros((480, 640, 1), np.uint8), np.full((480, 640, 3), 90, np.uint8)):
        assert detect_in_tiles(classifier, frame, 'bgr' if frame.shape[2] == 3 else 'grey') == []


def test_default_tiles_are_the_model_input_and_a_quarter_of_it_apart(tiny_onnx):
    classifier = Classifier(tiny_onnx)
    frame = np.zeros((100, 100, 1), np.uint8)
    frame[40:68, 30:58] = 255  # one bright square: only tiles that see part of it are run
    found = detect_in_tiles(classifier, frame, 'grey', threshold=0.0, merge_iou=1.0,
                            suppress_overlap=1.0)
    assert {d.box[2:] for d in found} == {(28, 28)}
    assert {d.box[0] % 7 for d in found if d.box[0] + 28 < 100} == {0}


def _tile(label: str, score: float, x: int, y: int = 0, size: int = 28) -> TileDetection:
    return TileDetection(label, score, (x, y, size, size))


def test_a_chain_of_overlapping_tiles_is_not_one_giant_box():
    tiles = [_tile('boot', 0.4, x) for x in range(0, 600, 14)]  # every tile touches the next
    tiles[10] = _tile('boot', 0.99, 140)
    merged = merge_tiles(tiles)
    assert max(d.box[2] for d in merged) <= 2 * 28
    strong = [d for d in merged if box_iou(d.box, (140, 0, 28, 28)) >= 0.5]
    assert len(strong) == 1
    far = [d for d in merged if d.box[0] > 300]
    assert far and all(d.score == pytest.approx(0.4) for d in far)  # not the 0.99 of another


def test_a_box_is_the_weighted_mean_of_its_own_tiles_and_scores_their_mean():
    tiles = [_tile('bag', 0.9, 100), _tile('bag', 0.9, 114), _tile('bag', 0.6, 400)]
    merged = merge_tiles(tiles)
    assert merged[0] == TileDetection('bag', pytest.approx(0.9), (107, 0, 28, 28))
    assert merged[1] == TileDetection('bag', pytest.approx(0.6), (400, 0, 28, 28))


def test_weaker_boxes_of_another_class_on_an_object_are_suppressed():
    tiles = [_tile('bag', 0.9, 100), _tile('bag', 0.8, 107), _tile('bag', 0.8, 93),
             _tile('boot', 0.99, 114, 14)]  # a tile half over the bag
    merged = merge_tiles(tiles)
    assert [d.label for d in merged] == ['bag']


def test_node_defaults_publish_no_box_for_a_black_frame(tiny_onnx):
    from dl_perception.ros.classifier_parameters import PARAMETERS
    from dl_perception.ros.frame_processor import FrameProcessor
    from dl_perception.ros.frame_processor import ProcessingSettings
    from dl_perception.ros.image_conversion import image_to_msg
    from dl_perception.ros.latest_frames import ReceivedFrame
    from dl_perception.ros.node_statistics import NodeStatistics
    values = {parameter.name: parameter.default for parameter in PARAMETERS}
    settings = ProcessingSettings.from_parameters({**values, 'mode': 'tiles'})
    frame = ReceivedFrame(image_to_msg(np.zeros((480, 640, 3), np.uint8), 'bgr8'), 0.0)
    processor = FrameProcessor(NodeStatistics(), lambda camera, reason: None)
    results = processor.process(Classifier(tiny_onnx), {'camera': frame}, settings, False)
    assert [list(message.detections) for message in results.detections] == [[]]
