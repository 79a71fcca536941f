"""idx files (MNIST / Fashion-MNIST): hand-built bytes, round trips, .gz, and clear errors."""

import gzip
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.data import load_idx, load_mnist, parse_idx, save_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def test_parse_hand_built_bytes():
    # magic 00 00 08 (uint8) 02 (dims), dims 2 and 3 big-endian, then 6 values
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 5, 6])
    np.testing.assert_array_equal(parse_idx(raw), [[1, 2, 3], [250, 5, 6]])
    # int16 big-endian: 0x0102 = 258, 0xFFFE = -2
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    values = parse_idx(raw)
    assert values.dtype == np.int16 and values.dtype.isnative
    np.testing.assert_array_equal(values, [258, -2])


@given(dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       gz=st.booleans(), seed=st.integers(0, 2**32))
def test_round_trip(tmp_path_factory, dtype, shape, gz, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is None:
        array = rng.standard_normal(shape).astype(dtype)
    else:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    save_idx(path, array)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == gz
    loaded = load_idx(path)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "no-extension"
    save_idx(path, array, compress=True)
    np.testing.assert_array_equal(load_idx(path), array)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def test_clear_errors(tmp_path):
    good = bytes([0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2, 3, 4])
    missing = str(tmp_path / "nothing-here.idx")
    with pytest.raises(FileNotFoundError, match="nothing-here.idx"):
        load_idx(missing)
    with pytest.raises(ValueError, match=r"truncated.*needs 4 data bytes, but the file has 2 after the header"):
        load_idx(_write(tmp_path / "short.idx", good[:-2]))
    with pytest.raises(ValueError, match="short-header.*truncated"):
        load_idx(_write(tmp_path / "short-header.idx", good[:6]))
    with pytest.raises(ValueError, match="tiny.*truncated"):
        load_idx(_write(tmp_path / "tiny.idx", b"\x00\x00"))
    with pytest.raises(ValueError, match="bad magic number 89504e47"):
        load_idx(_write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n" + bytes(20)))
    with pytest.raises(ValueError, match="bad magic number 00000701"):
        load_idx(_write(tmp_path / "code.idx", bytes([0, 0, 7, 1]) + good[4:]))
    with pytest.raises(ValueError, match="2 bytes after the data"):
        load_idx(_write(tmp_path / "long.idx", good + b"xx"))
    broken_gz = gzip.compress(good)[:-6]
    with pytest.raises(ValueError, match="broken.gz.*gzip data is truncated or corrupt"):
        load_idx(_write(tmp_path / "broken.gz", broken_gz))


def _mnist_folder(root, n=5, gz=True, split="train"):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    save_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte{ext}"), pixels)
    save_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
    return pixels, labels


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist(tmp_path, gz):
    pixels, labels = _mnist_folder(tmp_path, gz=gz, split="test")
    images, got = load_mnist(tmp_path, split="test")
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.float32
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_allclose(images[:, 0], pixels / 127.5 - 1.0, atol=1e-6)
    padded, _ = load_mnist(tmp_path, split="test", pad_to=32)
    assert padded.shape == (5, 1, 32, 32)
    np.testing.assert_array_equal(padded[:, :, 2:30, 2:30], images)
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert np.all(padded[:, 0][:, border] == -1.0)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        load_mnist(tmp_path / "no-such-folder")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _mnist_folder(tmp_path, n=5)
    save_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 5 labels"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="validation")
    _mnist_folder(tmp_path, n=5)
    with pytest.raises(ValueError, match="pad_to"):
        load_mnist(tmp_path, pad_to=20)


@pytest.mark.parametrize("dims", [(2**31, 2**31, 2**31), (2**32 - 1,) * 4, (2**31, 2**31)])
def test_overflowing_header_says_truncated_with_the_true_size(tmp_path, dims):
    # the product of the dimensions overflows int64 (or nearly): the message must give what the
    # header claims and the file's size, never a wrapped (negative or small) byte count
    body = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(10)
    with pytest.raises(ValueError) as err:
        load_idx(_write(tmp_path / "huge.idx", body))
    message = str(err.value)
    assert "huge.idx" in message and "truncated" in message and str(dims) in message
    assert f"needs {math.prod(dims)} data bytes" in message and "has 10 after the header" in message
