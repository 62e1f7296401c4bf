"""
Convert sensor_msgs images to numpy arrays and back, without cv_bridge.

Decoded images are uint8 (H, W, C) arrays with C in {1, 3, 4}, returned with their channel
order ('rgb', 'bgr', 'grey', 'rgba' or 'bgra', the names ``convert_channels`` accepts).
8-bit interleaved encodings come back as views of ``msg.data`` (strided when rows are padded),
and 16-bit grey as a view of the high bytes; YUV and Bayer data are converted by OpenCV into
new arrays.  Every problem with a message's content raises ImageConversionError, so a node can
count the frame as rejected and keep running.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
import numbers
import re

import cv2
from dl_perception.preprocessing import as_hwc
import numpy as np
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_msgs.msg import Header

# The default bound on a frame's pixels (8K UHD fits). A compressed image is checked before
# it is decoded (a few bytes can claim gigapixels), a raw one before it is read.
MAX_DECODED_PIXELS = 1 << 25


class ImageConversionError(ValueError):
    """A message whose encoding, sizes or data cannot be turned into an image."""


@dataclass(frozen=True)
class _Layout:
    """How one raw encoding lies in the rows of ``msg.data``, and how to decode those rows."""

    bytes_per_pixel: int
    order: str
    decode: Callable[[np.ndarray, bool], np.ndarray]
    even_width: bool = False


def _interleaved(rows: np.ndarray, big_endian: bool, channels: int) -> np.ndarray:
    return rows.reshape(rows.shape[0], -1, channels)


def _high_bytes(rows: np.ndarray, big_endian: bool) -> np.ndarray:
    """Keep each 16-bit sample's most significant byte (value >> 8), as a view."""
    return rows[:, 0 if big_endian else 1::2]


def _grey16(rows: np.ndarray, big_endian: bool) -> np.ndarray:
    return _high_bytes(rows, big_endian)[:, :, None]


def _yuv422(rows: np.ndarray, big_endian: bool, code: int) -> np.ndarray:
    packed = np.ascontiguousarray(rows).reshape(rows.shape[0], -1, 2)
    return cv2.cvtColor(packed, code)


def _bayer(rows: np.ndarray, big_endian: bool, code: int, sample_bytes: int) -> np.ndarray:
    samples = _high_bytes(rows, big_endian) if sample_bytes == 2 else rows
    return cv2.cvtColor(np.ascontiguousarray(samples), code)


# ROS names a Bayer pattern by its top-left 2x2 block read row by row; OpenCV's legacy names
# use the second row's second and third pixels, so ROS rggb is OpenCV BG (alias BayerRGGB).
_BAYER_CODES = {
    'rggb': cv2.COLOR_BayerBG2BGR,
    'bggr': cv2.COLOR_BayerRG2BGR,
    'gbrg': cv2.COLOR_BayerGR2BGR,
    'grbg': cv2.COLOR_BayerGB2BGR,
}
_UYVY = _Layout(2, 'bgr', partial(_yuv422, code=cv2.COLOR_YUV2BGR_UYVY), even_width=True)
_YUYV = _Layout(2, 'bgr', partial(_yuv422, code=cv2.COLOR_YUV2BGR_YUY2), even_width=True)

_LAYOUTS = {
    'rgb8': _Layout(3, 'rgb', partial(_interleaved, channels=3)),
    'bgr8': _Layout(3, 'bgr', partial(_interleaved, channels=3)),
    'rgba8': _Layout(4, 'rgba', partial(_interleaved, channels=4)),
    'bgra8': _Layout(4, 'bgra', partial(_interleaved, channels=4)),
    'mono8': _Layout(1, 'grey', partial(_interleaved, channels=1)),
    '8UC1': _Layout(1, 'grey', partial(_interleaved, channels=1)),
    '8UC3': _Layout(3, 'bgr', partial(_interleaved, channels=3)),
    'mono16': _Layout(2, 'grey', _grey16),
    '16UC1': _Layout(2, 'grey', _grey16),
    'yuv422': _UYVY,
    'uyvy': _UYVY,
    'yuv422_yuy2': _YUYV,
    'yuyv': _YUYV,
    **{f'bayer_{pattern}{bits}': _Layout(bits // 8, 'bgr',
                                         partial(_bayer, code=code, sample_bytes=bits // 8))
       for pattern, code in _BAYER_CODES.items() for bits in (8, 16)},
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

# image_to_msg: encoding -> channels of the numpy image it takes.
_OUTPUT_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


def check_image_msg(msg: Image, max_pixels: int = MAX_DECODED_PIXELS) -> None:
    """
    Raise ImageConversionError if image_from_msg would refuse the message.

    Reads only the encoding and sizes, so it is cheap enough for a subscription callback.

    :raises ImageConversionError: for an unknown encoding, an empty image or one of more than
        ``max_pixels`` pixels, a step shorter than a row, data shorter than
        ``step * height``, or an odd width for YUV 4:2:2.
    """
    _checked_layout(msg, max_pixels)


def _check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageConversionError(f'{what} of {width}x{height} has more than '
                                   f'max_image_pixels = {max_pixels} pixels')


def _checked_layout(msg: Image, max_pixels: int) -> _Layout:
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise ImageConversionError(f'unsupported encoding {msg.encoding!r}; expected one of '
                                   f'{", ".join(SUPPORTED_ENCODINGS)}')
    width, height, step = msg.width, msg.height, msg.step
    if width == 0 or height == 0:
        raise ImageConversionError(f'{msg.encoding} image has no pixels: {width}x{height}')
    _check_pixels(f'{msg.encoding} image', width, height, max_pixels)
    if layout.even_width and width % 2:
        raise ImageConversionError(f'{msg.encoding} packs pixel pairs, so its width must be '
                                   f'even; got {width}')
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(f'{msg.encoding} image of width {width} needs a step of at '
                                   f'least {row_bytes} bytes, got {step}')
    if len(msg.data) < step * height:
        raise ImageConversionError(f'{msg.encoding} image of {width}x{height} with step {step} '
                                   f'needs {step * height} bytes of data, got {len(msg.data)}')
    return layout


def image_from_msg(msg: Image, max_pixels: int = MAX_DECODED_PIXELS) -> tuple[np.ndarray, str]:
    """
    Return a message's pixels as uint8 (H, W, C) and their channel order.

    Rows are read ``msg.step`` bytes apart, so padded rows are skipped.  8-bit interleaved
    encodings and mono16/16UC1 give views sharing memory with ``msg.data``; YUV and Bayer
    encodings are converted to new 'bgr' arrays.  16-bit samples are reduced to 8 bits
    (value >> 8) honouring ``is_bigendian``.  Bytes after ``step * height`` are ignored.

    :raises ImageConversionError: as check_image_msg does.
    """
    layout = _checked_layout(msg, max_pixels)
    height, step = msg.height, msg.step
    rows = np.frombuffer(msg.data, np.uint8, count=step * height).reshape(height, step)
    decoded = layout.decode(rows[:, :msg.width * layout.bytes_per_pixel], bool(msg.is_bigendian))
    return decoded, layout.order


def _png_size(data: memoryview) -> tuple[int, int]:
    """
    Return the IHDR width and height after checking every chunk fits in the data.

    OpenCV 5 sizes its reads by a chunk's declared length, so a 70-byte message whose
    chunk claims 4 GB would cost seconds and gigabytes before failing.
    """
    if len(data) < 24 or bytes(data[12:16]) != b'IHDR':
        raise ImageConversionError(f'png data of {len(data)} bytes has no IHDR header')
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], 'big')
        if pos + 12 + length > len(data):
            raise ImageConversionError(f'corrupt png data: a chunk at byte {pos} claims '
                                       f'{length} bytes, {len(data) - pos - 12} are left')
        if bytes(data[pos + 4:pos + 8]) == b'IEND':
            break
        pos += 12 + length
    return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')


# Start-of-frame markers: every JPEG coding process except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_BARE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01, 0xFF}


def _jpeg_size(data: memoryview) -> tuple[int, int]:
    """Walk the JPEG segments up to the frame header and return its width and height."""
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        marker = data[pos + 1]
        if marker in _JPEG_FRAME_MARKERS:
            return (int.from_bytes(data[pos + 7:pos + 9], 'big'),
                    int.from_bytes(data[pos + 5:pos + 7], 'big'))
        # A 0xFF after 0xFF is fill: step one byte.  RSTn and TEM carry no length.
        if marker in _JPEG_BARE_MARKERS:
            pos += 1 if marker == 0xFF else 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
    raise ImageConversionError(f'corrupt jpeg data: its {len(data)} bytes hold no frame '
                               f'header before the scan')


_CODECS = {  # format word -> (codec, file signature, reader of the checked width and height)
    'jpeg': ('jpeg', b'\xff\xd8\xff', _jpeg_size),
    'jpg': ('jpeg', b'\xff\xd8\xff', _jpeg_size),
    'png': ('png', b'\x89PNG\r\n\x1a\n', _png_size),
}
# 'jpeg', or image_transport's '<encoding>; <codec> compressed [<encoding>]'.
_FORMAT = re.compile(r'(?:[^;]*;\s*)?(\w+)(?:\s+compressed(?:\s+\S+)?)?')


def check_compressed_msg(msg: CompressedImage, max_pixels: int = MAX_DECODED_PIXELS) -> None:
    """
    Raise ImageConversionError if image_from_compressed would refuse the message unread.

    Checks the format, the data's signature and its header (structure and declared size)
    without decoding, so it is cheap enough for a subscription callback; only decoding finds
    corrupt image data.

    :raises ImageConversionError: for an unsupported format, or empty, mismatched or
        malformed data, or a declared size of more than ``max_pixels`` pixels.
    """
    _checked_codec(msg, max_pixels)


def _checked_codec(msg: CompressedImage, max_pixels: int) -> str:
    match = _FORMAT.fullmatch(msg.format.strip().lower())
    codec = _CODECS.get(match.group(1)) if match else None
    if codec is None:
        raise ImageConversionError(f'unsupported compressed format {msg.format!r}; expected '
                                   f'jpeg or png as image_transport writes them')
    name, signature, read_size = codec
    data = memoryview(msg.data)
    if bytes(data[:len(signature)]) != signature:
        raise ImageConversionError(f'format {msg.format!r} but the {len(data)} bytes of data '
                                   f'do not start with a {name} signature')
    width, height = read_size(data)
    if width * height == 0:
        raise ImageConversionError(f'{name} data declares an empty {width}x{height} image')
    _check_pixels(f'{name} data declaring an image', width, height, max_pixels)
    return name


def image_from_compressed(msg: CompressedImage,
                          max_pixels: int = MAX_DECODED_PIXELS) -> tuple[np.ndarray, str]:
    """
    Decode a jpeg or png CompressedImage to uint8 (H, W, 3) 'bgr' or (H, W, 1) 'grey'.

    ``msg.format`` is read as image_transport writes it ('jpeg', 'rgb8; jpeg compressed
    bgr8', ...).  The data must start with the declared codec's signature, so that only that
    decoder sees untrusted bytes, and its header is checked before decoding so that a tiny
    message cannot make OpenCV allocate gigabytes (at most ``max_pixels`` pixels).
    Alpha is dropped and 16-bit PNGs are reduced to 8 bits.

    :raises ImageConversionError: as check_compressed_msg does, and for corrupt data.
    """
    name = _checked_codec(msg, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_ANYCOLOR)
    except cv2.error as error:
        raise ImageConversionError(f'corrupt {name} data: {error}') from error
    if image is None:
        raise ImageConversionError(f'corrupt {name} data ({len(msg.data)} bytes)')
    if image.ndim == 2:
        return image[:, :, None], 'grey'
    return image, 'bgr'


def image_to_msg(image: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """
    Return a sensor_msgs Image holding a copy of ``image`` with the given encoding.

    ``image`` is uint8 (H, W, C) or (H, W) for mono8; ``encoding`` is rgb8, bgr8, rgba8,
    bgra8 or mono8, and C must match it.  Rows are unpadded (step = width * C), little-endian.

    :raises TypeError: if ``image`` is not a uint8 numpy array.
    :raises ValueError: for another encoding, or a shape that does not fit it.
    """
    if encoding not in _OUTPUT_CHANNELS:
        raise ValueError(f'cannot write encoding {encoding!r}; expected one of '
                         f'{", ".join(_OUTPUT_CHANNELS)}')
    image = as_hwc(image)
    height, width, channels = image.shape
    if channels != _OUTPUT_CHANNELS[encoding]:
        raise ValueError(f'{encoding} needs {_OUTPUT_CHANNELS[encoding]} channels, got an '
                         f'image of shape {image.shape}')
    # array('B', bytes) is one memcpy; rclpy checks any other sequence element by element.
    return Image(header=Header() if header is None else header, height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=width * channels,
                 data=array('B', image.tobytes()))


def compressed_msg(image: np.ndarray, fmt: str = 'jpeg', quality: int = 90,
                   header: Header | None = None) -> CompressedImage:
    """
    Return a CompressedImage of a uint8 BGR (H, W, 3) or grey (H, W) / (H, W, 1) image.

    ``fmt`` is 'jpeg' or 'png'; ``quality`` (1 to 100) sets the JPEG quality and is checked
    but unused for lossless png.  ``msg.format`` is written as image_transport does, e.g.
    'bgr8; jpeg compressed bgr8' or 'mono8; png compressed mono8'.

    :raises TypeError: if ``image`` is not a uint8 numpy array.
    :raises ValueError: for another format, a quality outside 1 to 100, or another shape.
    """
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    if (not isinstance(quality, numbers.Integral) or isinstance(quality, bool)
            or not 1 <= quality <= 100):
        raise ValueError(f'quality must be an integer from 1 to 100, got {quality!r}')
    image = as_hwc(image)
    encoding = {1: 'mono8', 3: 'bgr8'}.get(image.shape[2])
    if encoding is None:
        raise ValueError(f'expected a BGR (H, W, 3) or grey (H, W) image, got {image.shape}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode(f'.{fmt}', image, params)
    if not ok:
        raise ValueError(f'OpenCV could not encode a {image.shape} image as {fmt}')
    return CompressedImage(header=Header() if header is None else header,
                           format=f'{encoding}; {fmt} compressed {encoding}',
                           data=array('B', encoded.tobytes()))
