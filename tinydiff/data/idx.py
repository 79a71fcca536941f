"""MNIST and Fashion-MNIST from the user's own idx files (plain or gzip), parsed by hand.

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
    0x00 0x00 <dtype code> <number of dimensions>
then one big-endian uint32 per dimension, then the values in C order, big-endian.
Nothing here downloads anything: point `load_mnist` at the folder holding the four files.
"""

import gzip
import math
import os
import zlib

import numpy as np

from tinydiff.data.checks import to_signed_unit

IDX_DTYPES = {  # dtype code -> big-endian numpy dtype
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
MNIST_FILES = {  # split -> (images, labels), the names Fashion-MNIST uses too
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path):
    """The file's bytes, un-gzipped if it starts with the gzip magic (whatever its name)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"idx file not found: {path!r} (expected an idx file, "
                                f"optionally gzipped)")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path!r}: gzip data is truncated or corrupt ({err})") from None


def parse_idx(raw, source="idx data"):
    """Decode idx bytes into an array in native byte order; `source` names it in errors."""
    if len(raw) < 4:
        raise ValueError(f"{source}: truncated, expected a 4-byte idx header, got {len(raw)} bytes")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise ValueError(
            f"{source}: bad magic number {raw[:4].hex()}; expected 0000 followed by a dtype "
            f"code in {sorted(hex(c) for c in IDX_DTYPES)} and the number of dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{source}: truncated, the header declares {ndim} dimensions "
                         f"({header} bytes) but the file has {len(raw)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    # Python ints: a header claiming dimensions of 2^31 each must not wrap around in int64
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"{source}: truncated, the header claims shape {dims} of {dtype.name}, which "
                         f"needs {expected} data bytes, but the file has {found} after the header")
    if found > expected:
        raise ValueError(f"{source}: {found - expected} bytes after the data that the header "
                         f"(shape {dims} of {dtype.name}) does not account for")
    values = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return values.reshape(dims).astype(dtype.newbyteorder("="))  # big-endian -> native copy


def load_idx(path):
    """Read one idx file (gzip-compressed or not) into a numpy array of its own shape."""
    return parse_idx(_read_bytes(path), source=repr(os.fspath(path)))


def save_idx(path, array, compress=None):
    """Write `array` as an idx file; gzip it if `compress` (default: path ends in .gz).

    Supports the idx dtypes: uint8, int8, int16, int32, float32, float64.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"array: expected one of the idx dtypes uint8, int8, int16, int32, "
                        f"float32, float64, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array: expected 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, codes[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    body = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(body, mtime=0) if compress else body)


def _find(root, name):
    for candidate in (name, name + ".gz", name.replace("-idx", ".idx")):
        full = os.path.join(root, candidate)
        if os.path.isfile(full):
            return full
    raise FileNotFoundError(
        f"{root!r}: expected the file {name!r} or {name + '.gz'!r} (MNIST / Fashion-MNIST "
        f"naming); found {sorted(os.listdir(root))[:10]}"
    )


def load_mnist(root, split="train", pad_to=None):
    """Load MNIST or Fashion-MNIST from a local folder holding the standard idx files.

    Parameters
    ----------
    root : str or path
        Folder with `train-images-idx3-ubyte(.gz)`, `train-labels-idx1-ubyte(.gz)` and/or
        the `t10k-...` pair, as distributed.
    split : {"train", "test"}
    pad_to : int, optional
        Pad the 28x28 images with background to this side (e.g. 32, as LeNet-5 did, so
        that a UNet can halve the resolution three times).

    Returns
    -------
    images : ndarray, shape (N, 1, H, W), float32 in [-1, 1] (background -1)
    labels : ndarray, shape (N,), int64
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"MNIST folder not found: {root!r}")
    image_path, label_path = (_find(root, name) for name in MNIST_FILES[split])
    pixels, labels = load_idx(image_path), load_idx(label_path)
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"{image_path!r}: expected uint8 images of shape (N, H, W), got "
                         f"{pixels.dtype} of shape {pixels.shape}")
    if labels.shape != (len(pixels),):
        raise ValueError(f"{label_path!r}: expected {len(pixels)} labels to match the images, "
                         f"got shape {labels.shape}")
    images = to_signed_unit(pixels)[:, None]  # (N, H, W) -> (N, 1, H, W)
    if pad_to is not None:
        h, w = images.shape[2:]
        if not isinstance(pad_to, int) or pad_to < max(h, w):
            raise ValueError(f"pad_to: expected an int >= {max(h, w)}, got {pad_to!r}")
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        images = np.pad(images, ((0, 0), (0, 0), (top, pad_to - h - top),
                                 (left, pad_to - w - left)), constant_values=-1.0)
    return images, labels.astype(np.int64)
