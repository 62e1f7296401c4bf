"""
The baseline: a classifier node written the way a typical user writes one.

rclpy, per-message numpy conversion in the callback, torchvision transforms on a PIL image,
a PyTorch eager model, vision_msgs out; no batching, no newest-frame policy (queue depth 10).
It is what ``python -m benchmarks pipeline`` measures classifier_node against, with the same
weights.
"""

from __future__ import annotations

import sys

from dl_perception.models import build_model
from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.ros.spinning import run_node
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import inference_network
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
import torch
from torchvision import transforms
from vision_msgs.msg import Classification
from vision_msgs.msg import ObjectHypothesis


class BaselineNode(Node):
    """Classify every frame in the subscription callback with PyTorch."""

    def __init__(self) -> None:
        super().__init__('baseline_classifier')
        weights = self.declare_parameter('weights', '').value
        state = torch.load(weights, map_location='cpu', weights_only=True)
        if 'model_spec' in state:  # a dl_perception checkpoint
            spec = PreprocessingSpec.from_json(state['preprocessing'])
            network = build_from_spec(state['model_spec'])
            network.load_state_dict(state['model'])
            # What the exported file computes (mirror-averaged when the run asked for it).
            self.model = inference_network(network, state['model_spec'])
            grey = [transforms.Grayscale()] if spec.channels == 'grey' else []
            self.transform = transforms.Compose([
                transforms.ToPILImage(), *grey, transforms.Resize(spec.height),
                transforms.CenterCrop(spec.height), transforms.ToTensor(),
                transforms.Normalize(spec.mean, spec.std)])
        else:  # a plain ResNet-18 state dict
            self.model = build_model('resnet18', num_classes=1000)
            self.model.load_state_dict(state)
            self.transform = transforms.Compose([
                transforms.ToPILImage(), transforms.Resize(256), transforms.CenterCrop(224),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        self.model.eval()
        self.publisher = self.create_publisher(Classification, 'classification', 10)
        self.create_subscription(Image, 'image', self.on_image, 10)

    def on_image(self, msg: Image) -> None:
        """Convert, transform, infer and publish, all in the callback."""
        frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        batch = self.transform(np.ascontiguousarray(frame[:, :, ::-1])).unsqueeze(0)
        with torch.no_grad():
            probabilities = torch.softmax(self.model(batch), dim=1)[0]
        scores, indices = probabilities.topk(5)
        self.publisher.publish(Classification(header=msg.header, results=[
            ObjectHypothesis(class_id=str(int(i)), score=float(s))
            for s, i in zip(scores, indices)]))


def main(args: list[str] | None = None) -> int:
    """Run the baseline node until interrupted."""
    return run_node(BaselineNode, args)


if __name__ == '__main__':
    sys.exit(main())
