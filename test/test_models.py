"""The registry and every registered model: build, train a step, match torchvision, adapt."""

from __future__ import annotations

from dl_perception.models import ACTIVATIONS
from dl_perception.models import build_model
from dl_perception.models import classifier_module
from dl_perception.models import create_activation
from dl_perception.models import list_models
from dl_perception.models import model_options
from dl_perception.models import register_model
from dl_perception.models import replace_classifier
from dl_perception.models.resnet_cifar import ZeroPadShortcut
import pytest
import torch
from torch import nn
import torchvision

VGG_NAMES = ['vgg11', 'vgg11_lrn', 'vgg13', 'vgg16_c', 'vgg16', 'vgg19']
CIFAR_DEPTHS = [20, 32, 44, 56, 110, 1202]
EXPECTED_MODELS = sorted(
    ['lenet', 'alexnet', 'alexnet_original', 'googlenet']
    + VGG_NAMES + [f'{name}_bn' for name in VGG_NAMES]
    + [f'resnet{depth}' for depth in (18, 34, 50, 101, 152)]
    + [f'resnet{depth}' for depth in CIFAR_DEPTHS])
# the models that are torchvision's network with the default arguments (plus TWIN_OPTIONS)
TORCHVISION_TWINS = ['alexnet', 'googlenet', 'resnet18', 'resnet34', 'resnet50', 'resnet101',
                     'resnet152', 'vgg11', 'vgg11_bn', 'vgg13', 'vgg13_bn', 'vgg16',
                     'vgg16_bn', 'vgg19', 'vgg19_bn']
# GoogLeNet's default is the paper's 5x5 Inception; torchvision's (3x3) is an option
TWIN_OPTIONS = {'googlenet': {'inception': 'torchvision'}}
# about a second or more of CPU at 224x224 (two cores); the rest stay in the fast suite
HEAVY_AT_224 = ['resnet101', 'resnet152', 'resnet1202'] + [
    name for name in EXPECTED_MODELS if name.startswith('vgg')]
ONE_PER_FAMILY = ['lenet', 'alexnet', 'vgg11', 'googlenet', 'resnet18', 'resnet20']


def _slow_if_heavy(names: list[str]) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY_AT_224 else name
            for name in names]


def _torchvision_model(name: str, **kwargs) -> nn.Module:
    if name == 'googlenet':  # init_weights given: silences torchvision's FutureWarning
        kwargs.setdefault('aux_logits', False)
        kwargs['init_weights'] = True
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def _train_step(model: nn.Module, size: int, channels: int) -> None:
    model.train()
    images = torch.randn(2, channels, size, size)
    logits = model(images)
    assert logits.shape == (2, 10)
    loss = nn.functional.cross_entropy(logits, torch.tensor([1, 7]))
    assert torch.isfinite(loss)
    loss.backward()
    # one assert per list: an assert per parameter made resnet1202's test take minutes
    without = [name for name, p in model.named_parameters() if p.grad is None]
    assert not without, 'parameters without a gradient'
    non_finite = [name for name, p in model.named_parameters()
                  if not torch.isfinite(p.grad).all()]
    assert not non_finite, 'non-finite gradients'


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def test_registered_names():
    assert list_models() == EXPECTED_MODELS


@pytest.mark.parametrize('name', EXPECTED_MODELS)
def test_trains_on_28x28_grey_and_head_can_be_replaced(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=1, input_size=28)
    _train_step(model, 28, 1)
    head = classifier_module(model)
    assert isinstance(head, nn.Linear) and head.out_features == 10
    replace_classifier(model, 3)
    new_head = classifier_module(model)
    assert new_head is not head
    assert (new_head.in_features, new_head.out_features) == (head.in_features, 3)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize('name', _slow_if_heavy(EXPECTED_MODELS))
def test_trains_on_224x224_rgb(name):
    torch.manual_seed(0)
    _train_step(build_model(name, num_classes=10), 224, 3)


@pytest.mark.parametrize('size', [16, 63, 64])
@pytest.mark.parametrize('name', ONE_PER_FAMILY)
def test_runs_at_the_small_input_threshold(name, size):
    model = build_model(name, num_classes=10, in_channels=2, input_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, size, size)).shape == (1, 10)


@pytest.mark.parametrize('name', TORCHVISION_TWINS)
def test_loads_torchvision_state_dict_strictly(name):
    # on the meta device: keys and shapes are checked, no memory or time is spent on weights
    with torch.device('meta'):
        ours = build_model(name, num_classes=1000, **TWIN_OPTIONS.get(name, {}))
        theirs = _torchvision_model(name)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_googlenet_with_aux_logits_loads_torchvision_default():
    with torch.device('meta'):
        ours = build_model('googlenet', num_classes=1000, aux_logits=True,
                           inception='torchvision')
        theirs = _torchvision_model('googlenet', aux_logits=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_state_dict_check_can_fail():
    with torch.device('meta'):
        ours = build_model('resnet18', num_classes=10)
        theirs = _torchvision_model('resnet18')
    with pytest.raises(RuntimeError, match='size mismatch'):
        ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize('name', _slow_if_heavy(TORCHVISION_TWINS))
def test_computes_what_torchvision_computes(name):
    ours = build_model(name, num_classes=1000, **TWIN_OPTIONS.get(name, {})).eval()
    theirs = _torchvision_model(name).eval()
    ours.load_state_dict(theirs.state_dict())
    images = torch.randn(1, 3, 64, 64)  # the networks pool adaptively; 64 keeps it cheap
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images))


@pytest.mark.parametrize('name', sorted(ACTIVATIONS))
def test_every_activation_changes_lenet(name):
    torch.manual_seed(0)
    reference = build_model('lenet', num_classes=10, input_size=28)
    torch.manual_seed(0)
    model = build_model('lenet', num_classes=10, input_size=28, activation=name)
    kind = type(create_activation(name))
    assert isinstance(model.features[0].act, kind)
    assert isinstance(model.features[2].act, kind)
    assert sum(isinstance(layer, kind) for layer in model.classifier) == 2
    images = torch.randn(2, 3, 28, 28)
    if name != 'relu':
        assert _count(model, nn.ReLU) == 0
        assert not torch.allclose(model(images), reference(images))
    extra = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in reference.parameters())
    assert extra == (4 if name == 'prelu' else 0)  # one PReLU weight per activation


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match='swish'):
        create_activation('gelu')
    with pytest.raises(ValueError, match='leaky_relu'):
        build_model('resnet18', num_classes=10, activation='gelu')


@pytest.mark.parametrize('name', ONE_PER_FAMILY)
def test_activation_reaches_every_family_and_keeps_keys(name):
    reference = build_model(name, num_classes=10, in_channels=1, input_size=28)
    model = build_model(name, num_classes=10, in_channels=1, input_size=28, activation='elu')
    assert _count(model, nn.ReLU) == 0
    assert _count(model, nn.ELU) == _count(reference, nn.ReLU) > 0
    assert model.state_dict().keys() == reference.state_dict().keys()


def test_googlenet_aux_heads_use_the_activation():
    model = build_model('googlenet', num_classes=10, in_channels=1, input_size=28,
                        activation='tanh', aux_logits=True)
    assert isinstance(model.aux1.act, nn.Tanh) and isinstance(model.aux2.act, nn.Tanh)
    outputs = model.train()(torch.randn(2, 1, 28, 28))
    assert [tuple(o.shape) for o in outputs] == [(2, 10)] * 3
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize('name,classic', [
    ('lenet', False), ('alexnet', False), ('vgg11', False), ('vgg11_bn', True),
    ('googlenet', True), ('resnet18', True), ('resnet20', True)])
def test_batch_norm_default_and_flag(name, classic):
    def norms(**kwargs):
        model = build_model(name, num_classes=10, in_channels=1, input_size=28, **kwargs)
        return _count(model, nn.BatchNorm2d)
    assert (norms() > 0) == classic
    assert norms(batch_norm=True) > 0
    if name != 'vgg11_bn':
        assert norms(batch_norm=False) == 0


def test_bn_variant_refuses_batch_norm_false():
    with pytest.raises(ValueError, match='vgg|_bn'):
        build_model('vgg16_bn', num_classes=10, batch_norm=False)


@pytest.mark.parametrize('name', ['resnet56', 'resnet50'])
def test_deep_resnets_without_batch_norm_start_finite(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=1, input_size=28, batch_norm=False)
    logits = model(torch.randn(2, 1, 28, 28))
    assert logits.abs().max() < 100


@pytest.mark.parametrize('name,classic', [
    ('lenet', None), ('alexnet', 0.5), ('vgg11', 0.5), ('googlenet', 0.4),
    ('resnet18', None), ('resnet20', None)])
def test_dropout_default_and_flag(name, classic):
    def rates(**kwargs):
        model = build_model(name, num_classes=10, in_channels=1, input_size=28, **kwargs)
        return {module.p for module in model.modules() if isinstance(module, nn.Dropout)}
    assert rates() == (set() if classic is None else {classic})
    assert rates(dropout=0.25) == {0.25}


@pytest.mark.parametrize('kwargs,message', [
    ({'num_classes': 0}, 'num_classes'),
    ({'num_classes': 10, 'in_channels': 0}, 'in_channels'),
    ({'num_classes': 10, 'input_size': 15}, 'input_size must be >= 16'),
    ({'num_classes': 10, 'dropout': 1.0}, 'dropout'),
])
def test_out_of_range_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model('lenet', **kwargs)


def test_wrong_types_are_refused():
    with pytest.raises(TypeError, match='num_classes'):
        build_model('lenet', num_classes=10.0)
    with pytest.raises(TypeError, match='batch_norm'):
        build_model('lenet', num_classes=10, batch_norm='yes')


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        build_model('resnet19', num_classes=10)


def test_unknown_option_names_the_allowed_ones():
    with pytest.raises(ValueError, match='shortcut.*allowed options: aux_logits, inception'):
        build_model('googlenet', num_classes=10, shortcut='A')
    with pytest.raises(ValueError, match='allowed options: none'):
        build_model('vgg16', num_classes=10, inception='naive')
    assert model_options('resnet20') == ['shortcut']


@pytest.mark.parametrize('name,option,message', [
    ('googlenet', {'inception': 'v3'}, "'reduced', 'naive'"),
    ('resnet20', {'shortcut': 'C'}, "'A', 'B'"),
])
def test_bad_option_values_are_refused(name, option, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, num_classes=10, **option)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'lenet' is already registered"):
        register_model('lenet')(lambda config: nn.Identity())


def test_replace_classifier_refuses_bad_class_counts():
    with pytest.raises(ValueError, match='num_classes'):
        replace_classifier(build_model('lenet', num_classes=10), 0)


def test_googlenet_naive_and_reduced_differ_and_both_train():
    def build(kind):
        return build_model('googlenet', num_classes=10, in_channels=1, input_size=28,
                           inception=kind)
    reduced, naive = build('reduced'), build('naive')
    count = sum(p.numel() for p in reduced.parameters())
    naive_count = sum(p.numel() for p in naive.parameters())
    assert naive_count > 3 * count
    # naive: the 3x3 convolution reads the module's whole input, no 1x1 reduction first
    assert naive.inception3a.branch2.conv.in_channels == 192
    assert naive.inception3a.branch3.conv.kernel_size == (5, 5)
    assert reduced.inception3a.branch2[0].conv.kernel_size == (1, 1)
    _train_step(naive, 28, 1)


@pytest.mark.parametrize('depth,paper_millions', list(zip(
    CIFAR_DEPTHS, [0.27, 0.46, 0.66, 0.85, 1.7, 19.4])))
def test_cifar_resnet_depth_and_paper_parameter_count(depth, paper_millions):
    with torch.device('meta'):
        model = build_model(f'resnet{depth}', num_classes=10, input_size=32)
    assert _count(model, nn.Conv2d) + _count(model, nn.Linear) == depth
    assert _count(model, nn.Linear) == 1
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(millions, 2 if millions < 1 else 1) == paper_millions


def test_resnet20_has_19_convolutions_and_one_linear_layer():
    model = build_model('resnet20', num_classes=10, in_channels=1, input_size=28)
    assert _count(model, nn.Conv2d) == 19
    assert _count(model, nn.Linear) == 1


def test_cifar_shortcut_a_is_parameter_free_and_b_projects():
    option_a = build_model('resnet20', num_classes=10, input_size=28)
    shortcuts = [m for m in option_a.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(shortcuts) == 2  # where stages 2 and 3 halve the size and double the width
    assert all(not list(s.parameters()) for s in shortcuts)
    option_b = build_model('resnet20', num_classes=10, input_size=28, shortcut='B')
    assert _count(option_b, ZeroPadShortcut) == 0
    assert _count(option_b, nn.Conv2d) == 19 + 2
    assert sum(p.numel() for p in option_b.parameters()) > sum(
        p.numel() for p in option_a.parameters())
    _train_step(build_model('resnet20', num_classes=10, in_channels=1, input_size=28,
                            shortcut='B'), 28, 1)


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize('name,small_stem,large_stem', [
    ('lenet', (5, 1), (5, 1)), ('alexnet', (5, 1), (11, 4)), ('vgg11', (3, 1), (3, 1)),
    ('googlenet', (3, 1), (7, 2)), ('resnet18', (3, 1), (7, 2)), ('resnet20', (3, 1), (7, 2)),
])
def test_stems_follow_the_input_size(name, small_stem, large_stem):
    def stem(size, channels):
        with torch.device('meta'):
            conv = _first_conv(build_model(name, num_classes=10, in_channels=channels,
                                           input_size=size))
        assert conv.in_channels == channels
        return conv.kernel_size[0], conv.stride[0]
    assert stem(28, 1) == small_stem
    assert stem(224, 4) == large_stem


@pytest.mark.parametrize('name,small_pools,large_pools', [
    ('alexnet', 3, 3), ('vgg16', 3, 5), ('googlenet', 2, 4), ('resnet18', 0, 1),
    ('resnet20', 0, 1)])
def test_max_pools_follow_the_input_size(name, small_pools, large_pools):
    def pools(size):
        with torch.device('meta'):
            return _count(build_model(name, num_classes=10, input_size=size), nn.MaxPool2d)
    inception_pools = 9  # one in the pool branch of each Inception module
    offset = inception_pools if name == 'googlenet' else 0
    assert pools(28) - offset == small_pools
    assert pools(224) - offset == large_pools


def test_small_vgg_uses_a_global_pool_and_a_narrow_classifier():
    model = build_model('vgg16', num_classes=10, in_channels=1, input_size=28)
    assert model.avgpool.output_size == 1
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [
        512, 512, 10]


def test_vgg_c_has_1x1_convolutions_in_the_last_three_blocks():
    with torch.device('meta'):
        model = build_model('vgg16_c', num_classes=10)
    kernels = [m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [3] * 6 + [1] + [3] * 2 + [1] + [3] * 2 + [1]


def test_vgg_a_lrn_normalises_after_the_first_convolution():
    with torch.device('meta'):
        model = build_model('vgg11_lrn', num_classes=10)
    assert [type(m) for m in model.features[:4]] == [
        nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d]
    assert _count(build_model('vgg11', num_classes=10, input_size=28),
                  nn.LocalResponseNorm) == 0
