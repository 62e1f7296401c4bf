"""Batched augmentation: each image of a batch gets its own draw of the classic transforms."""

from __future__ import annotations

from dl_perception.training.augment import build_augmentation
from dl_perception.training.augment import random_crop
from dl_perception.training.augment import random_erase
from dl_perception.training.augment import random_flip
from dl_perception.training.config import AugmentConfig
import torch
from torch.nn import functional


def distinct_images(count: int, channels: int = 2, size: int = 8) -> torch.Tensor:
    """Return uint8 images (count, C, size, size) whose pixels are all different and non-zero."""
    generator = torch.Generator().manual_seed(0)
    values = torch.randperm(250, generator=generator)[:channels * size * size]
    image = (values + 1).to(torch.uint8).view(1, channels, size, size)
    return image.repeat(count, 1, 1, 1)


def test_each_cropped_image_is_its_own_window_of_the_zero_padded_image():
    images = distinct_images(64)
    padded = functional.pad(images, (2,) * 4)
    torch.manual_seed(0)
    cropped = random_crop(images, 2)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    offsets = set()
    for image, original in zip(cropped, padded):
        found = [(top, left) for top in range(5) for left in range(5)
                 if torch.equal(image, original[:, top:top + 8, left:left + 8])]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 10, 'the windows are drawn per image, over all 25 offsets'


def test_each_image_is_flipped_or_left_with_even_odds():
    images = distinct_images(400)
    torch.manual_seed(0)
    out = random_flip(images, dim=3)
    flipped = [bool(torch.equal(image, images[0].flip(2))) for image in out]
    kept = [bool(torch.equal(image, images[0])) for image in out]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 150 < sum(flipped) < 250
    upside_down = random_flip(images, dim=2)
    assert all(torch.equal(image, images[0]) or torch.equal(image, images[0].flip(1))
               for image in upside_down)


def test_erasing_zeroes_one_rectangle_of_2_to_33_percent_in_the_chosen_images():
    images = torch.full((300, 3, 20, 20), 200, dtype=torch.uint8)
    torch.manual_seed(0)
    out = random_erase(images, 0.5)
    erased = 0
    for image in out:
        zero = image == 0
        assert torch.equal(zero, zero[:1].expand_as(zero)), 'every channel is erased alike'
        rows = zero[0].any(dim=1).nonzero().flatten()
        if not len(rows):
            continue
        erased += 1
        columns = zero[0].any(dim=0).nonzero().flatten()
        box = zero[0, rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
        assert bool(box.all()), 'the erased pixels form one full rectangle'
        assert int(zero[0].sum()) == box.numel()
        assert 0.015 <= box.numel() / 400 <= 0.36  # 2-33 %, give or take the rounding
    assert 110 < erased < 190
    assert torch.equal(random_erase(images, 0.0), images)


def test_the_same_seed_draws_the_same_batch_and_nothing_configured_is_none():
    config = AugmentConfig(crop_padding=2, horizontal_flip=True, random_erasing=0.5)
    augment = build_augmentation(config)
    images = distinct_images(32)
    torch.manual_seed(5)
    first = augment(images)
    torch.manual_seed(5)
    assert torch.equal(first, augment(images))
    assert not torch.equal(first, augment(images))
    assert build_augmentation(AugmentConfig()) is None
