"""conv_output_size, conv_block and pools agree with PyTorch and the written-out formula."""

from __future__ import annotations

import itertools
import math

from dl_perception.models.layers import conv_block
from dl_perception.models.layers import conv_output_size
from dl_perception.models.layers import local_response_norm
import pytest
import torch
from torch import nn


def formula(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """w_o = floor((w_i - F' + 2p) / s) + 1, F' = F + (F - 1)(D - 1), written out again."""
    dilated = kernel + (kernel - 1) * (dilation - 1)
    return math.floor((size - dilated + 2 * padding) / stride) + 1


def _fits(size: int, kernel: int, padding: int, dilation: int) -> bool:
    return kernel + (kernel - 1) * (dilation - 1) <= size + 2 * padding


# (size, kernel, stride, padding, dilation), only windows that fit the padded input: the
# whole grid is checked against the formula (arithmetic, cheap), a representative set of it
# against PyTorch.
CONV_GRID = [case for case in itertools.product((5, 28, 33), (1, 3, 4, 5, 7), (1, 2, 3),
                                                (0, 1, 3), (1, 2, 3))
             if _fits(case[0], case[1], case[3], case[4])]

CONV_CASES = [
    (28, 3, 1, 1, 1),  # the common 'same' 3x3
    (28, 1, 1, 0, 1),  # 1x1: the size is kept
    (28, 4, 2, 1, 1),  # even kernel, stride 2
    (33, 7, 2, 3, 1),  # a ResNet-like stem on an odd size
    (33, 3, 3, 0, 1),  # stride 3 does not divide 33 - 3: the floor drops the remainder
    (28, 3, 2, 1, 2),  # strided and dilated
    (33, 5, 3, 3, 3),  # the largest dilated window the grid has, strided
    (28, 7, 1, 0, 3),  # dilated 7 spans 19
    (5, 5, 1, 0, 1),  # the window is the whole input: one output
    (5, 3, 1, 0, 2),  # a dilated window that is the whole input
    (5, 7, 1, 1, 1),  # a window wider than the input, fitting only with padding
    (5, 1, 3, 3, 1),  # more padding than input, stride 3
    (5, 3, 2, 3, 3),  # small input, large padding and dilation
    (5, 4, 3, 0, 1),  # stride larger than what is left after the first window
]


def test_representative_cases_are_in_the_grid_and_cover_it():
    assert len(CONV_GRID) > 150
    assert set(CONV_CASES) <= set(CONV_GRID)
    for position, values in enumerate(zip(*CONV_GRID)):
        assert {case[position] for case in CONV_CASES} == set(values)
    assert any(stride > 1 and dilation > 1 for _, _, stride, _, dilation in CONV_CASES)
    assert any(formula(*case) == 1 for case in CONV_CASES)


def test_conv_output_size_matches_the_formula_over_the_whole_grid():
    for size, kernel, stride, padding, dilation in CONV_GRID:
        for width in (size, size + 4):
            assert conv_output_size(width, kernel, stride, padding, dilation) == \
                formula(width, kernel, stride, padding, dilation), (width, kernel, stride,
                                                                    padding, dilation)


def test_conv_output_size_properties_over_the_whole_grid():
    # Larger input never shrinks the output; stride 1 without dilation or padding loses k - 1.
    for size, kernel, stride, padding, dilation in CONV_GRID:
        out = conv_output_size(size, kernel, stride, padding, dilation)
        assert out >= 1
        assert conv_output_size(size + stride, kernel, stride, padding, dilation) == out + 1
        if stride == 1 and dilation == 1 and padding == 0:
            assert out == size - kernel + 1


@pytest.mark.parametrize('size,kernel,stride,padding,dilation', CONV_CASES)
def test_conv2d_shape_matches_formula(size, kernel, stride, padding, dilation):
    conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation)
    # a non-square input checks both axes separately
    width = size + 4
    out = conv(torch.zeros(1, 2, size, width))
    expected_h = formula(size, kernel, stride, padding, dilation)
    expected_w = formula(width, kernel, stride, padding, dilation)
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected_h
    assert conv_output_size(width, kernel, stride, padding, dilation) == expected_w
    assert out.shape == (1, 3, expected_h, expected_w)


@pytest.mark.parametrize('size,kernel,stride,padding,dilation', CONV_CASES)
def test_conv_block_shape_matches_formula(size, kernel, stride, padding, dilation):
    block = conv_block(2, 4, kernel, stride, padding, dilation)
    out = block(torch.zeros(2, 2, size, size))
    expected = formula(size, kernel, stride, padding, dilation)
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    assert out.shape == (2, 4, expected, expected)


def test_conv_block_default_padding_is_same_style():
    # odd kernel, padding d(k-1)/2: the size is kept at stride 1 and divided (rounded up) at s
    for size, kernel, stride, dilation in itertools.product((5, 28, 33), (1, 3, 5), (1, 2, 3),
                                                            (1, 2)):
        block = conv_block(1, 1, kernel, stride, dilation=dilation)
        out = block(torch.zeros(1, 1, size, size))
        assert out.shape[-1] == math.ceil(size / stride), (size, kernel, stride, dilation)


POOL_CASES = [case for case in itertools.product((6, 28, 31), (2, 3, 4), (1, 2, 3), (0, 1, 2))
              if case[3] <= case[1] // 2]


@pytest.mark.parametrize('size,kernel,stride,padding', POOL_CASES)
def test_pool_shapes_match_formula(size, kernel, stride, padding):
    x = torch.zeros(1, 1, size, size)
    expected = formula(size, kernel, stride, padding, 1)
    assert conv_output_size(size, kernel, stride, padding) == expected
    assert nn.MaxPool2d(kernel, stride, padding)(x).shape[-1] == expected
    assert nn.AvgPool2d(kernel, stride, padding)(x).shape[-1] == expected


@pytest.mark.parametrize('size,kernel,stride,padding,dilation', [
    (28, 3, 2, 1, 2), (33, 3, 1, 0, 3), (28, 2, 2, 0, 2)])
def test_dilated_max_pool_matches_formula(size, kernel, stride, padding, dilation):
    pool = nn.MaxPool2d(kernel, stride, padding, dilation=dilation)
    out = pool(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == conv_output_size(size, kernel, stride, padding, dilation)
    assert out.shape[-1] == formula(size, kernel, stride, padding, dilation)


def test_known_values():
    assert conv_output_size(224, 11, 4, 2) == 55  # AlexNet's first layer
    assert conv_output_size(224, 7, 2, 3) == 112  # ResNet's stem
    assert conv_output_size(28, 3, 1, 2, dilation=2) == 28  # dilation 2 widens 3 to 5


@pytest.mark.parametrize('kwargs', [
    {'size': 0, 'kernel': 3}, {'size': 28, 'kernel': 0}, {'size': 28, 'kernel': 3, 'stride': 0},
    {'size': 28, 'kernel': 3, 'padding': -1}, {'size': 28, 'kernel': 3, 'dilation': 0},
    {'size': 4, 'kernel': 3, 'dilation': 3}])
def test_conv_output_size_refuses_bad_values(kwargs):
    with pytest.raises(ValueError, match='must be|does not fit'):
        conv_output_size(**kwargs)


def test_conv_output_size_refuses_non_integers():
    with pytest.raises(TypeError, match='size must be an int'):
        conv_output_size(28.0, 3)


def test_conv_block_parts():
    block = conv_block(3, 8, 3)
    assert [name for name, _ in block.named_children()] == ['conv', 'bn', 'act']
    assert block.conv.bias is None  # batch norm follows, a bias would be redundant
    assert isinstance(block.act, nn.ReLU)
    plain = conv_block(3, 8, 3, batch_norm=False, activation=None)
    assert [name for name, _ in plain.named_children()] == ['conv']
    assert plain.conv.bias is not None
    assert conv_block(3, 8, 3, bias=True).conv.bias is not None
    assert isinstance(conv_block(3, 8, 3, activation='tanh').act, nn.Tanh)


def test_local_response_norm_uses_paper_constants():
    # b_c = a_c / (k + alpha * sum over the 5 neighbouring channels of a^2) ** beta
    k, alpha, beta, n = 2.0, 1e-4, 0.75, 5
    x = torch.randn(1, 8, 3, 3) * 20
    squares = nn.functional.pad(x.pow(2), (0, 0, 0, 0, n // 2, n // 2))
    sums = torch.stack([squares[:, c:c + n].sum(1) for c in range(8)], 1)
    expected = x / (k + alpha * sums).pow(beta)
    torch.testing.assert_close(local_response_norm()(x), expected)
