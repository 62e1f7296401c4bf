"""The paper variants of the families: GoogLeNet's 5x5 Inception, dilated ResNet, AlexNet 2012."""

from __future__ import annotations

from dl_perception.models import build_model
import pytest
import torch
from torch import nn
import torchvision

INCEPTIONS = ['inception3a', 'inception3b', 'inception4a', 'inception4b', 'inception4c',
              'inception4d', 'inception4e', 'inception5a', 'inception5b']


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_count(model: nn.Module) -> int:
    """Convolution and linear weights only: what the GoogLeNet paper's table 1 counts."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def googlenet(**options) -> nn.Module:
    with torch.device('meta'):
        return build_model('googlenet', num_classes=1000, **options)


def test_googlenet_default_is_the_papers_5x5_inception():
    model = googlenet()
    for name in INCEPTIONS:
        module = model.get_submodule(name)
        assert module.branch3[0].conv.kernel_size == (1, 1), name
        assert module.branch3[1].conv.kernel_size == (5, 5), name
        assert module.branch3[1].conv.padding == (2, 2), name
    torchvision_form = googlenet(inception='torchvision')
    assert torchvision_form.inception3a.branch3[1].conv.kernel_size == (3, 3)


def test_googlenet_parameter_count_is_the_papers():
    # Table 1 of Szegedy et al. counts conv and linear weights in units of K = 1024: its
    # inception (3a) row, 159K, is 163,328 / 1024 = 159.5; conv2 (1x1 then 3x3), 112K, is
    # 114,688 / 1024. The column sums to 6,797.7K, the "6.8M" of the text; ours (no aux heads)
    # comes to 6,990,272 weights = 6,826.4K, the table's rows being rounded loosely (4c: 463K
    # printed for 497.5K). With batch norm and the final bias: 7,005,832 parameters.
    model = googlenet()
    assert weight_count(model.inception3a) == 163_328 == 159.5 * 1024
    assert weight_count(model.conv2) + weight_count(model.conv3) == 114_688 == 112 * 1024
    assert weight_count(model) == 6_990_272
    assert round(weight_count(model) / 1024 / 1000, 1) == 6.8
    assert parameter_count(model) == 7_005_832
    # torchvision's 3x3 form: 16 weights fewer per 5x5-branch pair of channels
    reduction_pairs = 23_808  # sum of ch5x5red * ch5x5 over the nine modules
    assert parameter_count(googlenet(inception='torchvision')) == 6_624_904 == (
        7_005_832 - 16 * reduction_pairs)


def test_torchvision_googlenet_weights_fit_only_the_torchvision_option():
    with torch.device('meta'):
        theirs = torchvision.models.googlenet(weights=None, aux_logits=False,
                                              init_weights=True).state_dict()
    googlenet(inception='torchvision').load_state_dict(theirs, strict=True)
    with pytest.raises(RuntimeError, match=r'inception3a\.branch3\.1\.conv\.weight'):
        googlenet().load_state_dict(theirs, strict=True)


def test_papers_googlenet_trains_a_step_at_28x28():
    torch.manual_seed(0)
    model = build_model('googlenet', num_classes=10, in_channels=1, input_size=28)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 3]))
    loss.backward()
    grad = model.inception4c.branch3[1].conv.weight.grad
    assert grad.shape[-2:] == (5, 5) and torch.isfinite(grad).all() and grad.abs().sum() > 0
