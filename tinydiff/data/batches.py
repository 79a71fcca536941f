"""Mini-batches from arrays (one epoch per call) or from an endless data set (forever).

    for x, y in iterate_batches((images, labels), 64, rng=rng):   # one shuffled epoch
    for x, y in iterate_batches(GlyphDataset(seed=0), 64):        # never ends; break yourself

An endless data set is any object with a `get(indices)` method returning a tuple of arrays
(GlyphDataset, ShapeDataset). Its images are already independent draws, so it is read in
index order, batch k holding images start + k*B ... start + (k+1)*B - 1: a training run that
resumes at step k passes start = k * B and sees exactly the images it would have seen.
"""

import numpy as np

from tinydiff.data.checks import check_int, check_rng


def _as_fields(data):
    """(fields, single): the arrays to batch together and whether data was a lone array."""
    single = not isinstance(data, (tuple, list))
    fields = [data] if single else list(data)
    if not fields:
        raise ValueError("data: expected an array or a tuple of arrays, got an empty tuple")
    lengths = []
    for k, f in enumerate(fields):
        if not hasattr(f, "__len__") or not hasattr(f, "__getitem__"):
            raise TypeError(f"data[{k}]: expected an array (or an object with len() and "
                            f"index-array selection), got {type(f).__name__}")
        lengths.append(len(f))
    if len(set(lengths)) != 1:
        raise ValueError(f"data: expected arrays of equal length, got lengths {lengths}")
    return fields, single, lengths[0]


def iterate_batches(data, batch_size, rng=None, drop_last=False, start=0):
    """Yield mini-batches.

    Parameters
    ----------
    data : ndarray, tuple of arrays, or endless data set
        Arrays are batched along their first axis, together (e.g. (images, labels); any
        object with len() and `obj[index_array]`, such as ShapeLabels, also works).
        An object with a `get(indices)` method is an endless data set.
    batch_size : int
    rng : numpy.random.Generator, optional
        Arrays: shuffle the epoch with `rng.permutation`; None keeps the stored order.
        Endless data: draw each batch's indices at random from [0, 2**62) instead of
        reading in order.
    drop_last : bool
        Arrays: skip a final batch smaller than batch_size. (Endless data has none.)
    start : int
        Endless data read in order: the index of the first image.

    Yields
    ------
    One array (data was one array) or a tuple of arrays, each with batch_size rows (the last
    array batch may be smaller unless drop_last).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    start = check_int(start, "start", minimum=0)
    if rng is not None:
        check_rng(rng)
    if hasattr(data, "get") and not isinstance(data, (np.ndarray, tuple, list, dict)):
        return _endless(data, batch_size, rng, start)
    if start:
        raise ValueError(f"start: only applies to endless data sets, got {start} for arrays")
    fields, single, n = _as_fields(data)  # checked now, not at the first next()
    return _epoch(fields, single, n, batch_size, rng, drop_last)


def _endless(dataset, batch_size, rng, start):
    while True:
        if rng is None:
            indices = np.arange(start, start + batch_size, dtype=np.int64)
            start += batch_size
        else:
            indices = rng.integers(0, 2**62, size=batch_size, dtype=np.int64)
        yield dataset.get(indices)


def _epoch(fields, single, n, batch_size, rng, drop_last):
    order = np.arange(n) if rng is None else rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for begin in range(0, stop, batch_size):
        idx = order[begin:begin + batch_size]
        batch = tuple(f[idx] for f in fields)
        yield batch[0] if single else batch
