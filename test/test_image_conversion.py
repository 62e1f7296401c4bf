"""
Test the node's image conversion with real sensor_msgs messages built in-process.

Each encoding's bytes are packed here with numpy, independently of the module under test,
from one deterministic colourful RGB image; conversion back must reproduce that image.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from functools import partial

import cv2
from dl_perception.ros.image_conversion import check_compressed_msg
from dl_perception.ros.image_conversion import check_image_msg
from dl_perception.ros.image_conversion import compressed_msg
from dl_perception.ros.image_conversion import image_from_compressed
from dl_perception.ros.image_conversion import image_from_msg
from dl_perception.ros.image_conversion import image_to_msg
from dl_perception.ros.image_conversion import ImageConversionError
from dl_perception.ros.image_conversion import MAX_DECODED_PIXELS
from dl_perception.ros.image_conversion import SUPPORTED_ENCODINGS
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_msgs.msg import Header

HEIGHT, WIDTH = 48, 64
ORDER_CHANNELS = {'rgb': 3, 'bgr': 3, 'grey': 1, 'rgba': 4, 'bgra': 4}
BAYER_PATTERNS = ('rggb', 'bggr', 'gbrg', 'grbg')
BYTES_PER_PIXEL = {
    'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8UC1': 1, '8UC3': 3,
    'mono16': 2, '16UC1': 2, 'yuv422': 2, 'uyvy': 2, 'yuv422_yuy2': 2, 'yuyv': 2,
    **{f'bayer_{p}8': 1 for p in BAYER_PATTERNS}, **{f'bayer_{p}16': 2 for p in BAYER_PATTERNS},
}


def rgb_pattern() -> np.ndarray:
    """Return a smooth, colourful uint8 (48, 64, 3) RGB gradient where every channel varies."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([x * 4, y * 5, 255 - 2 * (x + y)], axis=-1).astype(np.uint8)


def image_msg(encoding: str, rows: np.ndarray, width: int, pad: int = 0,
              big_endian: int = 0) -> Image:
    """Wrap packed rows, uint8 (H, width * bytes per pixel), adding ``pad`` garbage bytes a row."""
    garbage = np.random.default_rng(pad).integers(0, 256, (rows.shape[0], pad), np.uint8)
    padded = np.concatenate([rows, garbage], axis=1)
    return Image(height=rows.shape[0], width=width, encoding=encoding, is_bigendian=big_endian,
                 step=padded.shape[1], data=array('B', padded.tobytes()))


# Each packer turns the RGB pattern into (rows as the message holds them, the image expected
# back, its channel order, the largest allowed difference per value).
Packed = tuple[np.ndarray, np.ndarray, str, int]


def _interleaved(image: np.ndarray, order: str) -> Packed:
    return image.reshape(image.shape[0], -1), image, order, 0


def _with_alpha(image: np.ndarray) -> np.ndarray:
    alpha = np.add.outer(np.arange(HEIGHT), 3 * np.arange(WIDTH)).astype(np.uint8)
    return np.dstack([image, alpha])


def _sixteen_bit(rgb: np.ndarray, big_endian: int) -> Packed:
    values = rgb[..., 1].astype(np.uint16) * 256 + rgb[..., 0]
    rows = values.astype('>u2' if big_endian else '<u2').view(np.uint8).reshape(HEIGHT, -1)
    return rows, (values >> 8).astype(np.uint8)[..., None], 'grey', 0


def _yuv422(rgb: np.ndarray, big_endian: int, byte_order: tuple[str, ...]) -> Packed:
    """Pack BT.601 limited-range YUV 4:2:2, each pixel pair sharing its mean U and V."""
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    planes = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2],
              'U': (u[:, 0::2] + u[:, 1::2]) / 2, 'V': (v[:, 0::2] + v[:, 1::2]) / 2}
    packed = np.stack([planes[name] for name in byte_order], axis=-1)
    rows = np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(HEIGHT, -1)
    return rows, rgb[..., ::-1], 'bgr', 4


_UYVY = partial(_yuv422, byte_order=('U', 'Y0', 'V', 'Y1'))
_YUYV = partial(_yuv422, byte_order=('Y0', 'U', 'Y1', 'V'))
PACKERS: dict[str, Callable[[np.ndarray, int], Packed]] = {
    'rgb8': lambda rgb, big_endian: _interleaved(rgb, 'rgb'),
    'bgr8': lambda rgb, big_endian: _interleaved(rgb[..., ::-1], 'bgr'),
    'rgba8': lambda rgb, big_endian: _interleaved(_with_alpha(rgb), 'rgba'),
    'bgra8': lambda rgb, big_endian: _interleaved(_with_alpha(rgb[..., ::-1]), 'bgra'),
    'mono8': lambda rgb, big_endian: _interleaved(rgb[..., 1:2], 'grey'),
    '8UC1': lambda rgb, big_endian: _interleaved(rgb[..., 1:2], 'grey'),
    '8UC3': lambda rgb, big_endian: _interleaved(rgb[..., ::-1], 'bgr'),
    'mono16': _sixteen_bit,
    '16UC1': _sixteen_bit,
    'yuv422': _UYVY,
    'uyvy': _UYVY,
    'yuv422_yuy2': _YUYV,
    'yuyv': _YUYV,
}
BAYER_ENCODINGS = [f'bayer_{p}{bits}' for p in BAYER_PATTERNS for bits in (8, 16)]


def test_every_supported_encoding_is_tested():
    assert set(SUPPORTED_ENCODINGS) == set(PACKERS) | set(BAYER_ENCODINGS) == set(BYTES_PER_PIXEL)


@pytest.mark.parametrize('big_endian', [0, 1])
@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding', list(PACKERS))
def test_raw_round_trip(encoding, pad, big_endian):
    rows, expected, order, tolerance = PACKERS[encoding](rgb_pattern(), big_endian)
    image, got_order = image_from_msg(image_msg(encoding, rows, WIDTH, pad, big_endian))
    assert got_order == order
    assert image.dtype == np.uint8 and image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).max() <= tolerance


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer filter named ROS's way: the top-left 2x2, by rows."""
    raw = np.empty(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, 'rgb'.index(colour)]
    return raw


def bands_msg(pattern: str, bits: int, pad: int = 0, big_endian: int = 0) -> Image:
    """Return a Bayer message of pure red, green and blue vertical bands (left to right)."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint16)
    for channel, band in enumerate(np.array_split(np.arange(WIDTH), 3)):
        rgb[:, band, channel] = 200
    raw = mosaic(rgb, pattern)
    if bits == 16:
        noise = np.random.default_rng(0).integers(0, 256, raw.shape)
        raw = (raw * 256 + noise).astype('>u2' if big_endian else '<u2')
    else:
        raw = raw.astype(np.uint8)
    rows = raw.view(np.uint8).reshape(HEIGHT, -1)
    return image_msg(f'bayer_{pattern}{bits}', rows, WIDTH, pad, big_endian)


def bands_are_right(image: np.ndarray, order: str) -> bool:
    """Tell whether each band's interior (3 px from its edges) is its pure colour in BGR."""
    assert order == 'bgr'
    for channel, band in enumerate(np.array_split(np.arange(WIDTH), 3)):
        interior = image[3:-3, band[3]:band[-3]].reshape(-1, 3)[:, ::-1].astype(int)
        expected = np.zeros(3, int)
        expected[channel] = 200
        if np.abs(interior - expected).max() > 2:
            return False
    return True


@pytest.mark.parametrize('big_endian', [0, 1])
@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding', BAYER_ENCODINGS)
def test_bayer_corners(encoding, pad, big_endian):
    pattern, bits = encoding[6:10], int(encoding[10:])
    image, order = image_from_msg(bands_msg(pattern, bits, pad, big_endian))
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    assert bands_are_right(image, order)


@pytest.mark.parametrize('sent_as', BAYER_PATTERNS)
@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_bayer_check_catches_any_wrong_corner(pattern, sent_as):
    """Labelling one mosaic with each other pattern must fail the band check above."""
    msg = bands_msg(pattern, 8)
    msg.encoding = f'bayer_{sent_as}8'
    assert bands_are_right(*image_from_msg(msg)) == (pattern == sent_as)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgra8', 'mono8', '8UC3', 'mono16', '16UC1'])
def test_padded_rows_are_a_view_of_the_message(encoding):
    rows, expected, _, _ = PACKERS[encoding](rgb_pattern(), 1)
    msg = image_msg(encoding, rows, WIDTH, pad=7, big_endian=1)
    image, _ = image_from_msg(msg)
    assert np.shares_memory(image, np.frombuffer(msg.data, np.uint8))
    assert np.array_equal(image, expected)


@pytest.mark.parametrize('encoding', ['yuv422', 'bayer_rggb8', 'bayer_gbrg16'])
def test_converted_encodings_are_copies(encoding):
    rows = np.zeros((4, 4 * BYTES_PER_PIXEL[encoding]), np.uint8)
    msg = image_msg(encoding, rows, 4)
    assert not np.shares_memory(image_from_msg(msg)[0], np.frombuffer(msg.data, np.uint8))


def test_trailing_bytes_after_the_last_row_are_ignored():
    msg = image_msg('rgb8', rgb_pattern().reshape(HEIGHT, -1), WIDTH)
    msg.data.extend(b'\xff' * 11)
    assert np.array_equal(image_from_msg(msg)[0], rgb_pattern())


@pytest.mark.parametrize('changes, message', [
    ({'encoding': 'rgb16'}, 'unsupported encoding .rgb16.*bgr8.*bayer_grbg8'),
    ({'encoding': 'RGB8'}, 'unsupported encoding'),
    ({'width': 0}, 'no pixels: 0x4'),
    ({'height': 0}, 'no pixels: 4x0'),
    ({'step': 11}, 'width 4 needs a step of at least 12 bytes, got 11'),
    ({'data': array('B', bytes(47))}, 'needs 48 bytes of data, got 47'),
    ({'data': array('B')}, 'needs 48 bytes of data, got 0'),
    ({'encoding': 'mono16', 'width': 8, 'step': 16}, 'needs 64 bytes of data, got 48'),
    ({'encoding': 'rgba8'}, 'needs a step of at least 16 bytes, got 12'),
    ({'encoding': 'yuv422', 'width': 3, 'step': 6}, 'width must be even; got 3'),
    ({'encoding': 'yuyv', 'width': 5, 'step': 12}, 'width must be even; got 5'),
    ({'encoding': 'mono8', 'width': 2**32 - 1, 'height': 2**32 - 1, 'step': 2**32 - 1},
     'mono8 image of 4294967295x4294967295 has more than max_image_pixels = 33554432'),
    ({'encoding': 'mono8', 'width': 1, 'height': 2**25 + 1, 'step': 1},
     'mono8 image of 1x33554433 has more than max_image_pixels'),
])
def test_malformed_images_are_rejected(changes, message):
    msg = image_msg('rgb8', np.zeros((4, 12), np.uint8), 4)
    for field, value in changes.items():
        setattr(msg, field, value)
    with pytest.raises(ImageConversionError, match=message):
        check_image_msg(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_from_msg(msg)


@pytest.mark.parametrize('encoding, shape', [
    ('rgb8', (HEIGHT, WIDTH, 3)), ('bgr8', (HEIGHT, WIDTH, 3)), ('rgba8', (HEIGHT, WIDTH, 4)),
    ('bgra8', (HEIGHT, WIDTH, 4)), ('mono8', (HEIGHT, WIDTH)), ('mono8', (HEIGHT, WIDTH, 1)),
])
def test_image_to_msg_round_trip(encoding, shape):
    source = np.resize(_with_alpha(rgb_pattern()), shape)
    header = Header(frame_id='camera')
    header.stamp.sec = 42
    msg = image_to_msg(source, encoding, header)
    assert (msg.width, msg.height, msg.encoding) == (WIDTH, HEIGHT, encoding)
    assert msg.step == WIDTH * ORDER_CHANNELS[encoding[:-1].replace('mono', 'grey')]
    assert msg.is_bigendian == 0 and msg.header == header
    image, order = image_from_msg(msg)
    assert ORDER_CHANNELS[order] == image.shape[2]
    assert np.array_equal(image.reshape(shape), source)


@pytest.mark.parametrize('image, encoding, error', [
    (np.zeros((4, 4, 3), np.uint8), 'yuv422', ValueError),
    (np.zeros((4, 4, 3), np.uint8), 'rgba8', ValueError),
    (np.zeros((4, 4), np.uint8), 'rgb8', ValueError),
    (np.zeros((0, 4, 3), np.uint8), 'rgb8', ValueError),
    (np.zeros((4, 4, 3), np.uint16), 'rgb8', TypeError),
    ([[0, 1], [2, 3]], 'mono8', TypeError),
])
def test_image_to_msg_rejects_bad_arguments(image, encoding, error):
    with pytest.raises(error):
        image_to_msg(image, encoding)


def _grey(image: np.ndarray) -> np.ndarray:
    return image[..., 1]


@pytest.mark.parametrize('shape, encoding', [
    ((HEIGHT, WIDTH, 3), 'bgr8'), ((HEIGHT, WIDTH), 'mono8'), ((HEIGHT, WIDTH, 1), 'mono8')])
@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_round_trip(fmt, shape, encoding):
    source = np.resize(rgb_pattern()[..., ::-1], shape)
    header = Header(frame_id='camera')
    msg = compressed_msg(source, fmt, quality=95, header=header)
    assert msg.format == f'{encoding}; {fmt} compressed {encoding}' and msg.header == header
    image, order = image_from_compressed(msg)
    assert order == {'bgr8': 'bgr', 'mono8': 'grey'}[encoding]
    assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH, ORDER_CHANNELS[order])
    difference = np.abs(image.reshape(shape).astype(int) - source)
    if fmt == 'png':
        assert difference.max() == 0
    else:
        assert difference.mean() < 2 and difference.max() < 24


def _encoded(fmt: str, image: np.ndarray) -> array:
    return array('B', cv2.imencode(f'.{fmt}', image)[1].tobytes())


@pytest.mark.parametrize('fmt, codec', [
    ('jpeg', 'jpeg'), ('JPEG', 'jpeg'), ('jpg', 'jpeg'), ('png', 'png'),
    ('bgr8; jpeg compressed bgr8', 'jpeg'), ('rgb8; jpeg compressed bgr8', 'jpeg'),
    ('rgb8; png compressed', 'png'), ('mono8; png compressed mono8', 'png'),
    (' bgra8;  png compressed  bgr8 ', 'png'),
])
def test_image_transport_format_strings(fmt, codec):
    msg = CompressedImage(format=fmt, data=_encoded(codec, rgb_pattern()))
    image, order = image_from_compressed(msg)
    assert order == 'bgr' and image.shape == (HEIGHT, WIDTH, 3)


def test_compressed_alpha_and_sixteen_bit_pngs_become_eight_bit():
    bgra = _with_alpha(rgb_pattern())
    assert image_from_compressed(CompressedImage(format='png', data=_encoded('png', bgra)))[
        0].shape == (HEIGHT, WIDTH, 3)
    deep = rgb_pattern()[..., 0].astype(np.uint16) * 256 + 77
    image, order = image_from_compressed(CompressedImage(format='16UC1; png compressed',
                                                         data=_encoded('png', deep)))
    assert order == 'grey' and np.array_equal(image[..., 0], rgb_pattern()[..., 0])


def _png_claiming(width: int, height: int) -> array:
    """Return a valid small PNG whose header is then edited to claim another size."""
    data = bytearray(_encoded('png', np.zeros((2, 2), np.uint8)))
    data[16:24] = width.to_bytes(4, 'big') + height.to_bytes(4, 'big')
    return array('B', data)


def _png_with_chunk_length(at: int, length: int) -> array:
    """Return a PNG whose chunk starting at byte ``at`` claims ``length`` bytes."""
    data = _encoded('png', rgb_pattern())
    data[at:at + 4] = array('B', length.to_bytes(4, 'big'))
    return data


def _png_with_bad_crc() -> array:
    """Return a PNG whose structure is sound but whose IHDR checksum is wrong."""
    data = _encoded('png', rgb_pattern())
    data[29] ^= 0xFF
    return data


def _jpeg_with_precision(bits: int) -> array:
    """Return a JPEG whose frame header declares ``bits`` bits per sample."""
    data = _encoded('jpeg', rgb_pattern())
    data[data.tobytes().index(b'\xff\xc0') + 4] = bits
    return data


PNG = _encoded('png', rgb_pattern())
JPEG = _encoded('jpeg', rgb_pattern())


@pytest.mark.parametrize('fmt, data, message', [
    ('', PNG, 'unsupported compressed format'),
    ('bmp', PNG, 'unsupported compressed format'),
    ('16UC1; compressedDepth png', PNG, 'unsupported compressed format'),
    ('jpeg2000', JPEG, 'unsupported compressed format'),
    ('png', array('B'), 'the 0 bytes of data do not start with a png signature'),
    ('jpeg', array('B'), 'do not start with a jpeg signature'),
    ('png', JPEG, 'do not start with a png signature'),
    ('jpeg', PNG, 'do not start with a jpeg signature'),
    ('png', PNG[:len(PNG) // 2], 'corrupt png data: a chunk at byte 33 claims'),
    ('png', PNG[:20], 'png data of 20 bytes has no IHDR header'),
    ('png', _png_claiming(100_000, 100_000),
     'png data declaring an image of 100000x100000 has more than max_image_pixels'),
    ('png', _png_claiming(0, 5), 'declares an empty 0x5 image'),
    ('png', _png_with_chunk_length(33, 2**32 - 1), 'chunk at byte 33 claims 4294967295 bytes'),
    ('png', _png_with_chunk_length(-12, 2**30), 'claims 1073741824 bytes, 0 are left'),
    ('jpeg', array('B', b'\xff\xd8\xff' + bytes(range(256))), 'no frame header'),
    ('jpeg', JPEG[:120], 'its 120 bytes hold no frame header'),
])
def test_bad_compressed_images_are_rejected(fmt, data, message):
    msg = CompressedImage(format=fmt, data=data)
    with pytest.raises(ImageConversionError, match=message):
        check_compressed_msg(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_from_compressed(msg)


@pytest.mark.parametrize('fmt, data', [('png', _png_with_bad_crc()),
                                       ('jpeg', _jpeg_with_precision(7))])
def test_corrupt_compressed_data_is_found_by_decoding(fmt, data):
    msg = CompressedImage(format=fmt, data=data)
    check_compressed_msg(msg)
    with pytest.raises(ImageConversionError, match=f'corrupt {fmt} data \\('):
        image_from_compressed(msg)


@pytest.mark.parametrize('image, kwargs, error', [
    (np.zeros((4, 4, 3), np.uint8), {'fmt': 'bmp'}, ValueError),
    (np.zeros((4, 4, 3), np.uint8), {'quality': 0}, ValueError),
    (np.zeros((4, 4, 3), np.uint8), {'quality': 101}, ValueError),
    (np.zeros((4, 4, 3), np.uint8), {'quality': 90.5}, ValueError),
    (np.zeros((4, 4, 3), np.uint8), {'quality': True}, ValueError),
    (np.zeros((4, 4, 3), np.uint8), {'fmt': 'png', 'quality': -1}, ValueError),
    (np.zeros((4, 4, 4), np.uint8), {}, ValueError),
    (np.zeros((4, 0), np.uint8), {}, ValueError),
    (np.zeros((4, 4), np.float32), {}, TypeError),
])
def test_compressed_msg_rejects_bad_arguments(image, kwargs, error):
    with pytest.raises(error):
        compressed_msg(image, **kwargs)


def test_compressed_msg_quality_changes_jpeg_size():
    noisy = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    assert len(compressed_msg(noisy, quality=20).data) < len(compressed_msg(noisy).data)


def random_image_msg(rng: np.random.Generator) -> Image:
    """Return an Image that is often well formed and more often broken in size or content."""
    encoding = str(rng.choice([*SUPPORTED_ENCODINGS, 'rgb16', '32FC1', 'jpeg', '', 'Mono8']))
    sizes = [0, 1, 2, 3, 5, 8, 2**31, 2**32 - 1]
    width, height = (int(rng.choice(sizes)) if rng.random() < 0.3 else int(rng.integers(1, 9))
                     for _ in range(2))
    row_bytes = width * BYTES_PER_PIXEL.get(encoding, int(rng.integers(1, 5)))
    step = int(rng.choice([row_bytes, row_bytes + int(rng.integers(1, 6)), max(row_bytes - 1, 0),
                           int(rng.integers(0, 2**32))]))
    step = min(step, 2**32 - 1)
    needed = step * height
    length = int(rng.choice([needed, needed - 1, needed + int(rng.integers(1, 9)), 0,
                             int(rng.integers(0, 200))]))
    if rng.random() < 0.4:
        step, length = row_bytes, row_bytes * height
    length = length if 0 <= length <= 4096 else int(rng.integers(0, 4096))
    big_endian = int(rng.integers(0, 256 if rng.random() < 0.1 else 2))
    return Image(width=width, height=height, encoding=encoding, step=step, is_bigendian=big_endian,
                 data=array('B', rng.integers(0, 256, length, np.uint8).tobytes()))


def _overwrite(data: bytes, rng: np.random.Generator, end: int) -> bytes:
    """Overwrite 1 to 8 random bytes among the first ``end`` (the headers when it is small)."""
    corrupt = bytearray(data)
    for position in rng.integers(2, min(len(data), end), int(rng.integers(1, 9))):
        corrupt[position] = int(rng.integers(0, 256))
    return bytes(corrupt)


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    'none': lambda data, rng: data,
    'truncate': lambda data, rng: data[:int(rng.integers(0, len(data)))],
    'overwrite anywhere': lambda data, rng: _overwrite(data, rng, len(data)),
    'overwrite headers': lambda data, rng: _overwrite(data, rng, 64),
    'append garbage': lambda data, rng: data + rng.integers(0, 256, 50, np.uint8).tobytes(),
    'random bytes': lambda data, rng: rng.integers(0, 256, int(rng.integers(0, 300)),
                                                   np.uint8).tobytes(),
}


def random_compressed_msg(rng: np.random.Generator,
                          samples: list[tuple[str, bytes]]) -> CompressedImage:
    """Return a CompressedImage with a valid, truncated, corrupted or random payload."""
    codec, data = samples[int(rng.integers(len(samples)))]
    data = MUTATIONS[str(rng.choice(list(MUTATIONS)))](data, rng)
    fmt = str(rng.choice([codec, f'bgr8; {codec} compressed bgr8', 'jpeg', 'png', 'tiff', '']))
    return CompressedImage(format=fmt, data=array('B', data))


def _check(check: Callable, convert: Callable, msg, counts: dict[str, int]) -> None:
    """
    Convert a message: it must give a valid image or ImageConversionError, nothing else.

    What ``check`` refuses must fail to convert; raw images it passes must convert.
    """
    try:
        check(msg)
        checked = True
    except ImageConversionError:
        checked = False
    try:
        image, order = convert(msg)
    except ImageConversionError:
        assert not checked or isinstance(msg, CompressedImage)
        counts['rejected'] += 1
        return
    assert checked
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
    assert image.shape[2] == ORDER_CHANNELS[order]
    if isinstance(msg, Image):
        assert image.shape[:2] == (msg.height, msg.width)
    assert 0 < image.shape[0] * image.shape[1] <= MAX_DECODED_PIXELS
    counts['accepted'] += 1


def test_fuzzed_messages_give_an_image_or_a_conversion_error():
    rng = np.random.default_rng(20240607)
    image_counts = {'accepted': 0, 'rejected': 0}
    for _ in range(1500):
        _check(check_image_msg, image_from_msg, random_image_msg(rng), image_counts)
    small = rng.integers(0, 256, (6, 8, 3), np.uint8)
    samples = [(codec, bytes(_encoded(codec, image))) for codec in ('jpeg', 'png')
               for image in (small, small[..., 0], small[:1, :1], rgb_pattern())]
    compressed_counts = {'accepted': 0, 'rejected': 0}
    for _ in range(1500):
        _check(check_compressed_msg, image_from_compressed, random_compressed_msg(rng, samples),
               compressed_counts)
    for counts in (image_counts, compressed_counts):
        assert 150 < counts['accepted'] < counts['rejected']
