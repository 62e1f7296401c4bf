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
    """Count the convolution and linear weights: what table 1 of the GoogLeNet paper counts."""
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


def test_papers_googlenet_trains_a_step_on_small_grey_images():
    torch.manual_seed(0)
    model = build_model('googlenet', num_classes=10, in_channels=1, input_size=16)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 16, 16)), torch.tensor([0, 3]))
    loss.backward()
    grad = model.inception4c.branch3[1].conv.weight.grad
    assert grad.shape[-2:] == (5, 5) and torch.isfinite(grad).all() and grad.abs().sum() > 0


def resnet_features(model: nn.Module, images: torch.Tensor, stages: int = 4) -> torch.Tensor:
    """Return the feature map after ``stages`` residual stages (no pool, no fc)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
    for stage in range(1, stages + 1):
        x = model.get_submodule(f'layer{stage}')(x)
    return x


@pytest.mark.parametrize('dilate, side', [
    ([False, False, False], 7), ([False, False, True], 14), ([False, True, True], 28)])
def test_dilated_resnet_keeps_the_resolution_it_is_asked_to(dilate, side):
    with torch.device('meta'):
        model = build_model('resnet50', num_classes=10, replace_stride_with_dilation=dilate)
        assert resnet_features(model, torch.empty(1, 3, 224, 224)).shape == (1, 2048, side, side)
        assert model(torch.empty(1, 3, 224, 224)).shape == (1, 10)


def test_dilated_stages_dilate_their_3x3_convolutions():
    model = build_model('resnet50', num_classes=10, in_channels=1, input_size=28,
                        replace_stride_with_dilation=[False, True, True])
    dilations = {stage: [block.conv2.dilation[0] for block in model.get_submodule(stage)]
                 for stage in ('layer2', 'layer3', 'layer4')}
    # the first block of a dilated stage gives up its stride and keeps the earlier dilation
    assert dilations == {'layer2': [1] * 4, 'layer3': [1] + [2] * 5, 'layer4': [2] + [4] * 2}
    assert all(block.conv2.stride == (1, 1) for block in [*model.layer3, *model.layer4])
    assert resnet_features(model, torch.randn(1, 1, 28, 28)).shape[-2:] == (14, 14)


def footprint(output: torch.Tensor, images: torch.Tensor) -> int:
    """Count the input rows the centre output unit depends on (its receptive field)."""
    centre = output.shape[-1] // 2
    output[..., centre, centre].sum().backward()
    rows = images.grad[0].abs().sum(dim=(0, 2)).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize('dilation', [1, 2, 4])
def test_a_dilated_3x3_kernel_sees_f_plus_f_minus_1_times_d_minus_1_pixels(dilation):
    model = build_model('resnet50', num_classes=10, input_size=28,
                        replace_stride_with_dilation=[False, True, True])
    conv = next(block.conv2 for block in [*model.layer3, *model.layer4]
                if block.conv2.dilation == (dilation, dilation))
    images = torch.randn(1, conv.in_channels, 21, 21, requires_grad=True)
    output = conv(images)
    assert output.shape[-2:] == (21, 21)  # padding = dilation keeps the size
    assert footprint(output, images) == 3 + (3 - 1) * (dilation - 1)


def test_dilation_keeps_the_receptive_field_of_the_strided_stage():
    # Linear activations and positive weights: every path adds, so the gradient is non-zero
    # exactly on the receptive field. Small-input stem (3x3, no max pool): 2 stages see
    # 3 + 3 * 2 (layer1) + 2 + 3 * 4 (layer2, the first conv strided or not) = 23 pixels.
    def measure(dilate: list[bool]) -> tuple[int, int]:
        model = build_model('resnet50', num_classes=10, input_size=32, activation='linear',
                            replace_stride_with_dilation=dilate).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.abs_()
        images = torch.randn(1, 3, 40, 40, requires_grad=True)
        output = resnet_features(model, images, stages=2)
        return output.shape[-1], footprint(output, images)
    assert measure([False, False, False]) == (20, 23)
    assert measure([True, False, False]) == (40, 23)


def test_dilation_is_refused_where_it_is_not_standard():
    with pytest.raises(ValueError, match='needs bottleneck blocks'):
        build_model('resnet18', num_classes=10, replace_stride_with_dilation=[False, True, True])
    with pytest.raises(ValueError, match='three booleans'):
        build_model('resnet50', num_classes=10, replace_stride_with_dilation=[True])
    build_model('resnet18', num_classes=10, replace_stride_with_dilation=[False] * 3)


def alexnet_original(**kwargs) -> nn.Module:
    options = {'num_classes': 1000, **kwargs}
    with torch.device('meta'):
        return build_model('alexnet_original', **options)


def test_original_alexnet_has_the_papers_widths_towers_and_lrn():
    model = alexnet_original()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # conv3 crosses the towers
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(11, 4), (5, 1), (3, 1),
                                                                (3, 1), (3, 1)]
    assert [type(m) for m in model.features] == [
        nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d,
        nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d,
        nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    lrn = model.features[2]
    # the paper's n=5, k=2, alpha=1e-4, beta=0.75; torch divides alpha by n
    assert (lrn.size, lrn.k, lrn.alpha / lrn.size, lrn.beta) == (5, 2.0, 1e-4, 0.75)
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [
        4096, 4096, 1000]


def test_original_alexnet_parameter_count_is_the_papers_60_million():
    two_towers = parameter_count(alexnet_original())
    one_tower = parameter_count(alexnet_original(towers=1))
    assert two_towers == 60_965_224  # "60 million parameters" (section 4)
    assert one_tower == 62_378_344
    # grouping halves the weights of conv2 (5*5*96*256), conv4 (3*3*384*384), conv5
    assert one_tower - two_towers == (5 * 5 * 96 * 256 + 9 * 384 * 384 + 9 * 384 * 256) // 2
    assert parameter_count(build_model('alexnet', num_classes=1000)) == 61_100_840


def test_original_alexnet_trains_on_28x28_grey():
    torch.manual_seed(0)
    model = build_model('alexnet_original', num_classes=10, in_channels=1, input_size=28)
    assert model.features[0].kernel_size == (5, 5) and model.features[0].out_channels == 96
    assert model.features(torch.randn(1, 1, 28, 28)).shape == (1, 256, 2, 2)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([4, 9]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_original_alexnet_refuses_other_tower_counts():
    with pytest.raises(ValueError, match='towers must be 1 or 2, got 3'):
        build_model('alexnet_original', num_classes=10, towers=3)
