"""conv2d forward and backward: Numba im2col/col2im (or Winograd transforms) around BLAS products.

How it works. A convolution is a matrix product once every input window is laid out as a
column (im2col): with cols[b] of shape (C*kH*kW, Ho*Wo) and W2 = w.reshape(O, C*kH*kW),

    forward          y[b]     = W2 @ cols[b]            one sgemm per image
    backward input   dcols[b] = W2^T @ dy[b]            one sgemm per image, then col2im
                                                        scatters dcols back onto dx
    backward weight  dW2^T    = COLS @ DY^T             one sgemm per chunk of images, whose
                                                        B*Ho*Wo columns join the reduction
                                                        (per-image sgemms summed, when the
                                                        output is small)

Two ways to run that over the batch:

- split (the default, when blas.py can set OpenBLAS's thread count): the batch is divided over
  numba.get_num_threads() plain threads (threads.py), each running im2col for a few images at
  a time into its own buffer of about _SPLIT_CHUNK_BYTES, which stays in that core's L2 cache,
  and the products on its own thread, OpenBLAS set to one thread meanwhile. Every part of the
  convolution then runs on every core. Measured on 2 cores against the serial way, forward +
  both backward passes at batch 64: 1.5x faster for 32 channels at 16x16, 1.8x at 32x32, 2.0x
  for 64 channels at 16x16 (benchmarks/bench_kernels.py prints the current figures).
- serial (NumPy's BLAS is not an OpenBLAS tinydiff can steer, or one thread): im2col on the
  calling thread in chunks of about _CHUNK_BYTES, which stay in the shared L3 cache, and the
  products in the BLAS's own threads. Threads of two runtimes then take turns, and each keeps
  spinning for a while after its turn: OpenBLAS's workers after every product hold the second
  core (for 2^28 cycles by default; importing tinydiff first shortens that to 2^16, see
  tinydiff/runtime/process_settings.py), and Numba's OpenMP workers after a prange region would too (which
  made the whole convolution about three times slower on 2 cores, see threads.py).

Winograd. A 3x3, stride-1, padding-1 convolution with 8 or more input and output channels (all
of the UNet's but the first and last, and the stride-2 downsamplers) takes winograd.py instead:
F(2x2, 3x3) (Lavin & Gray 2016) turns it into 16 products with 2.25x fewer FLOPs than im2col's,
between transforms that only add and subtract, chunk by chunk; the chunks are handed to the
threads as they come free (threads.share_out), so that a thread that starts late or runs slower
takes fewer (on a 2-core VM the helper thread's share of a step ran 10-15% longer than the
calling thread's, and the caller waited for it). Measured on 2 cores, forward + both backward
passes at batch 64, against im2col in the same process: 1.2-1.7x on the UNet's shapes, 32 to 256 channels at 4x4 to 32x32 (the 16 products reach
90-100 GFLOP/s on one core while a chunk's V and M stay in its L2 cache, and the transforms take
about 40% of the time; benchmarks/bench_kernels.py prints the current figures).

A 1x1, stride-1, unpadded convolution needs no im2col at all: the input already is the column
matrix. It too splits the batch over threads where it can (2-3x faster than the products in
OpenBLAS's threads, measured for the UNet's skip-connection shortcuts on 2 cores).

What bounds it. The products carry all the FLOPs and run at what OpenBLAS reaches for these thin
shapes (M = C_out = 32-128 rows) on one core. im2col/col2im move C*kH*kW*B*Ho*Wo elements (75 MB
for 32 channels at 32x32, B=64, float32); in the serial way they took 15-20% of the time at 32
channels, on one core.
"""

import contextlib

import numba
import numpy as np

from tinydiff.kernels import winograd
from tinydiff.kernels.reference import conv_output_size
from tinydiff.kernels.threads import blas, share_out, split_run

# The column matrix is built and consumed a few images at a time. A buffer of 16 MB stays in the
# shared L3 cache (32 MB here) between im2col writing it and BLAS reading it, and is reused by
# malloc from call to call (the whole-batch matrix, 75 MB for 32 channels at 32x32, would be
# mmap-ed and page-faulted afresh on every call).
_CHUNK_BYTES = 16 * 2**20
# In the split way each thread's column buffer is about this large: within one core's L2 cache
# (256 KB-4 MB measured the same; at least one image's columns are always taken).
_SPLIT_CHUNK_BYTES = 2**20
# dW is summed from per-image products when one has at most this many outputs (C*kH*kW * O),
# else computed as one product per chunk; the crossover measured with OpenBLAS on 2 cores.
_PER_IMAGE_DW_MAX = 16384
# 3x3, stride-1, padding-1 convolutions with at least this many input and output channels take
# Winograd F(2x2, 3x3) (winograd.py) instead of im2col: with fewer, the products are too thin
# for the 2.25x fewer FLOPs to pay for the transforms.
_WINOGRAD_MIN_CHANNELS = 8
# Each Winograd buffer (transformed tiles V, products M) holds the same chunk sizes as im2col's
# column buffer, but at least this many images, so that the transforms' loops, which run over
# the images of a chunk, stay long enough to vectorise. Measured on 2 cores: 1 MB and 2 images
# beat 2-8 MB (the 16 products run at 90-100 GFLOP/s on one core while V and M stay in L2, at
# 40-60 beyond) and 4-16 images (too large a chunk at 32x32).
_WINOGRAD_MIN_IMAGES = 2
_use_winograd = True


@contextlib.contextmanager
def winograd_enabled(enabled):
    """Within the block, 3x3 stride-1 padding-1 convolutions use Winograd (True, the default)
    or im2col (False); benchmarks compare the two this way."""
    global _use_winograd
    before, _use_winograd = _use_winograd, bool(enabled)
    try:
        yield
    finally:
        _use_winograd = before


def _takes_winograd(kernel_hw, stride, padding, n_c, n_o):
    return (_use_winograd and tuple(kernel_hw) == (3, 3) and stride == 1 and padding == 1
            and min(n_c, n_o) >= _WINOGRAD_MIN_CHANNELS)


def describe_path(kernel_hw, stride, padding, n_c=64, n_o=64):
    """Which fast path conv2d_* takes for this geometry and these channel counts, in words
    (benchmarks and `tinydiff info` print it)."""
    if _takes_winograd(kernel_hw, stride, padding, n_c, n_o):
        way = (f"batch split over {_split_threads()} threads, each: " if _split_threads() > 1
               else "serial: ")
        return ("Winograd F(2x2,3x3): " + way + "Numba tile transforms, 16 BLAS sgemms per "
                f"chunk of images (im2col below {_WINOGRAD_MIN_CHANNELS} channels)")
    if _is_pointwise(kernel_hw, stride, padding):
        if _split_threads() > 1:
            return (f"pointwise: no im2col; batch split over {_split_threads()} threads, each: "
                    "single-threaded BLAS sgemm per image (y, dx, dW)")
        return "pointwise: no im2col; BLAS sgemm per image (y, dx), one over the batch (dW)"
    if _split_threads() > 1:
        return (f"batch split over {_split_threads()} threads, each: Numba im2col/col2im in "
                f"{_SPLIT_CHUNK_BYTES >> 10} KB chunks, single-threaded BLAS sgemm per image (y, dcols), "
                "per chunk or per image (dW)")
    return (f"serial Numba im2col/col2im in {_CHUNK_BYTES >> 20} MB chunks; "
            "BLAS sgemm per image (y, dcols), per chunk or per image (dW)")


def _split_threads():
    """Threads the split way uses, 1 when it is not available."""
    return numba.get_num_threads() if blas.available() else 1


def _splits(n_b):
    """True when a batch of n_b images takes the split way."""
    return n_b > 1 and _split_threads() > 1


def _over_images(n_b, part):
    """Run part(first, stop, chunk_bytes) over the batch: split over threads (each part its own
    images, single-threaded BLAS) when _splits(n_b), else once on the calling thread with the
    serial way's chunk size."""
    if _splits(n_b):
        with blas.single_threaded():
            split_run(n_b, lambda first, stop: part(first, stop, _SPLIT_CHUNK_BYTES))
    else:
        part(0, n_b, _CHUNK_BYTES)


def _summed_over_images(n_b, part):
    """The sum of the arrays part(first, stop, chunk_bytes) returns over _over_images' parts,
    added in image order (not in the order the threads finish), so that a seed gives the same
    sums."""
    sums = {}

    def keep(first, stop, chunk_bytes):
        sums[first] = part(first, stop, chunk_bytes)
    _over_images(n_b, keep)
    firsts = sorted(sums)
    total = sums[firsts[0]]
    for first in firsts[1:]:
        total += sums[first]
    return total


def _is_pointwise(kernel_hw, stride, padding):
    return tuple(kernel_hw) == (1, 1) and stride == 1 and padding == 0


@numba.njit(cache=True, nogil=True)
def _im2col(x, k_h, k_w, stride, padding, h_out, w_out, cols, rows_first):
    """Fill column (c*kH + p)*kW + q, position i*Wo + j, of image b with
    xpad[b, c, i*stride + p, j*stride + q].

    x: (B, C, H, W); cols: (B, C*kH*kW, Ho*Wo), or (C*kH*kW, B, Ho*Wo) if rows_first. Each (b, c)
    plane is copied into one zero-bordered buffer first (its border is never written, so stays
    zero), because per-row bounds tests cost more than the copy itself on rows only 8-32 pixels
    long; planes are visited in the order their columns lie in memory.
    """
    n_b, n_c, h_in, w_in = x.shape
    xpad = np.zeros((h_in + 2 * padding, w_in + 2 * padding), dtype=x.dtype)
    for bc in range(n_b * n_c):
        if rows_first:
            c, b = bc // n_b, bc % n_b
        else:
            b, c = bc // n_c, bc % n_c
        plane = x[b, c]
        for h in range(h_in):
            for w in range(w_in):
                xpad[h + padding, w + padding] = plane[h, w]
        for p in range(k_h):
            for q in range(k_w):
                row = (c * k_h + p) * k_w + q
                dst = cols[row, b] if rows_first else cols[b, row]  # (Ho*Wo,)
                if stride == 1:  # unit-stride copies, which LLVM vectorises
                    for i in range(h_out):
                        for j in range(w_out):
                            dst[i * w_out + j] = xpad[i + p, j + q]
                else:
                    for i in range(h_out):
                        for j in range(w_out):
                            dst[i * w_out + j] = xpad[i * stride + p, j * stride + q]


@numba.njit(cache=True, nogil=True)
def _col2im(dcols, k_h, k_w, stride, padding, h_out, w_out, dx):
    """Adjoint of _im2col: dx[b, c, h, w] = sum of every dcols entry that im2col copied from it.

    dcols: (B, C*kH*kW, Ho*Wo); dx: (B, C, H, W), overwritten; gradient landing on the padding
    is dropped.
    """
    n_b, n_c, h_in, w_in = dx.shape
    dxpad = np.empty((h_in + 2 * padding, w_in + 2 * padding), dtype=dx.dtype)
    for bc in range(n_b * n_c):
        b = bc // n_c
        c = bc % n_c
        dxpad[:] = 0
        for p in range(k_h):
            for q in range(k_w):
                src = dcols[b, (c * k_h + p) * k_w + q]  # (Ho*Wo,)
                if stride == 1:
                    for i in range(h_out):
                        for j in range(w_out):
                            dxpad[i + p, j + q] += src[i * w_out + j]
                else:
                    for i in range(h_out):
                        for j in range(w_out):
                            dxpad[i * stride + p, j * stride + q] += src[i * w_out + j]
        for h in range(h_in):
            for w in range(w_in):
                dx[b, c, h, w] = dxpad[h + padding, w + padding]


def _images_per_chunk(n_b, bytes_per_image, chunk_bytes):
    """Images per im2col chunk: the column buffer stays near chunk_bytes."""
    return int(min(n_b, max(1, chunk_bytes // bytes_per_image)))


def winograd_weights(w, stride, padding):
    """The transformed filters U = G w G^T (winograd.weights) when a convolution with weight w
    takes the Winograd path, else None. A layer computes them once per forward and passes them
    to conv2d_forward and conv2d_backward (winograd_weights=...), which would each compute them
    again otherwise."""
    w = np.ascontiguousarray(w)
    if _takes_winograd(w.shape[2:], stride, padding, w.shape[1], w.shape[0]):
        return winograd.weights(w)
    return None


def conv2d_forward(x, w, b, stride, padding, winograd_weights=None):
    """Fast conv2d forward; same contract as reference.conv2d_forward_ref.

    Parameters
    ----------
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, kH, kW)
    b : ndarray of shape (O,) or None
    stride, padding : int
    winograd_weights : ndarray of shape (16, O, C), optional
        winograd_weights(w, stride, padding) of this w, if the caller has it; used only on the
        Winograd path.

    Returns
    -------
    y : ndarray, shape (B, O, Ho, Wo)
    """
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    n_b, n_c = x.shape[:2]
    n_o, _, k_h, k_w = w.shape
    h_out = conv_output_size(x.shape[2], k_h, stride, padding)
    w_out = conv_output_size(x.shape[3], k_w, stride, padding)
    w2 = w.reshape(n_o, -1)  # (O, C, kH, kW) -> (O, C*kH*kW)
    y = np.empty((n_b, n_o, h_out * w_out), dtype=x.dtype)
    if _takes_winograd((k_h, k_w), stride, padding, n_c, n_o):
        _winograd_forward(x, w, b, y.reshape(n_b, n_o, h_out, w_out), winograd_weights)
        return y.reshape(n_b, n_o, h_out, w_out)  # the bias is added as y is written
    if _is_pointwise((k_h, k_w), stride, padding):
        x3 = x.reshape(n_b, n_c, -1)

        def part(first, stop, chunk_bytes):
            np.matmul(w2, x3[first:stop], out=y[first:stop])  # (O, C) @ (n, C, H*W) -> (n, O, H*W)
        _over_images(n_b, part)
    else:
        rows = n_c * k_h * k_w

        def part(first, stop, chunk_bytes):
            chunk = _images_per_chunk(stop - first, rows * h_out * w_out * x.itemsize, chunk_bytes)
            cols = np.empty((chunk, rows, h_out * w_out), dtype=x.dtype)
            for b0 in range(first, stop, chunk):
                nb = min(chunk, stop - b0)
                _im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols[:nb], False)
                # (O, C*kH*kW) @ (nb, C*kH*kW, Ho*Wo) -> (nb, O, Ho*Wo), one sgemm per image
                np.matmul(w2, cols[:nb], out=y[b0:b0 + nb])
        _over_images(n_b, part)
    if b is not None:
        y += np.ascontiguousarray(b)[None, :, None]
    return y.reshape(n_b, n_o, h_out, w_out)


def conv2d_backward_input(dy, w, input_hw, stride, padding):
    """Fast gradient of conv2d w.r.t. its input; same contract as the reference.

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    w : ndarray, shape (O, C, kH, kW)
    input_hw : tuple (H, W) of the forward input
    stride, padding : int

    Returns
    -------
    dx : ndarray, shape (B, C, H, W)
    """
    dy = np.ascontiguousarray(dy)
    w = np.ascontiguousarray(w)
    n_b, n_o, h_out, w_out = dy.shape
    n_c, k_h, k_w = w.shape[1:]
    h_in, w_in = input_hw
    w2_t = w.reshape(n_o, -1).T  # (O, C*kH*kW) -> (C*kH*kW, O), a view BLAS reads transposed
    dy3 = dy.reshape(n_b, n_o, h_out * w_out)  # (B, O, Ho, Wo) -> (B, O, Ho*Wo)
    rows = n_c * k_h * k_w
    dx = np.empty((n_b, n_c, h_in, w_in), dtype=dy.dtype)
    if _takes_winograd((k_h, k_w), stride, padding, n_c, n_o):
        _winograd_backward(dy, None, w, dx)
        return dx
    if _is_pointwise((k_h, k_w), stride, padding):
        dx3 = dx.reshape(n_b, n_c, -1)

        def part(first, stop, chunk_bytes):
            np.matmul(w2_t, dy3[first:stop], out=dx3[first:stop])  # (C, O) @ (n, O, H*W) -> (n, C, H*W)
        _over_images(n_b, part)
        return dx

    def part(first, stop, chunk_bytes):
        chunk = _images_per_chunk(stop - first, rows * h_out * w_out * dy.itemsize, chunk_bytes)
        dcols = np.empty((chunk, rows, h_out * w_out), dtype=dy.dtype)
        for b0 in range(first, stop, chunk):
            nb = min(chunk, stop - b0)
            # (C*kH*kW, O) @ (nb, O, Ho*Wo) -> (nb, C*kH*kW, Ho*Wo)
            np.matmul(w2_t, dy3[b0:b0 + nb], out=dcols[:nb])
            _col2im(dcols[:nb], k_h, k_w, stride, padding, h_out, w_out, dx[b0:b0 + nb])
    _over_images(n_b, part)
    return dx


def conv2d_backward_weight(dy, x, kernel_hw, stride, padding):
    """Fast gradient of conv2d w.r.t. weight and bias; same contract as the reference.

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    x : ndarray, shape (B, C, H, W)
    kernel_hw : tuple (kH, kW)
    stride, padding : int

    Returns
    -------
    dw : ndarray, shape (O, C, kH, kW)
    db : ndarray, shape (O,)
    """
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    n_b, n_o, h_out, w_out = dy.shape
    n_c = x.shape[1]
    k_h, k_w = kernel_hw
    if _takes_winograd(kernel_hw, stride, padding, n_c, n_o):
        return _winograd_backward(dy, x, None, None)
    dy3 = dy.reshape(n_b, n_o, h_out * w_out)  # (B, O, Ho, Wo) -> (B, O, Ho*Wo)
    db = dy3.sum(axis=(0, 2))
    if _is_pointwise(kernel_hw, stride, padding) and _splits(n_b):
        # per thread, the sum over its images of dy[b] @ x[b]^T
        x3 = x.reshape(n_b, n_c, -1)
        dw = _summed_over_images(n_b, lambda first, stop, chunk_bytes: np.matmul(
            dy3[first:stop], x3[first:stop].transpose(0, 2, 1)).sum(axis=0))
        return dw.reshape(n_o, n_c, 1, 1), db
    if _is_pointwise(kernel_hw, stride, padding):
        # sum over images of dy[b] @ x[b]^T as one product: batch joins the reduction
        dy2 = dy3.transpose(1, 0, 2).reshape(n_o, -1)  # (B, O, HW) -> (O, B*HW)
        x2 = x.reshape(n_b, n_c, -1).transpose(1, 0, 2).reshape(n_c, -1)  # -> (C, B*HW)
        return (dy2 @ x2.T).reshape(n_o, n_c, 1, 1), db
    dw_t = _summed_over_images(n_b, lambda first, stop, chunk_bytes: _weight_grad_part(
        dy3, x, first, stop, k_h, k_w, stride, padding, h_out, w_out, chunk_bytes))  # (C*kH*kW, O)
    return np.ascontiguousarray(dw_t.T).reshape(n_o, n_c, k_h, k_w), db


def conv2d_backward(dy, x, w, stride, padding, winograd_weights=None):
    """Both gradients of conv2d in one call: (dx, dw, db), equal to conv2d_backward_input's and
    conv2d_backward_weight's. Layers call this: on the Winograd path each chunk's transformed
    output gradient dM then serves both products (one transform fewer per convolution).

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, kH, kW)
    stride, padding : int
    winograd_weights : ndarray of shape (16, O, C), optional
        As for conv2d_forward.
    """
    n_b, n_c = x.shape[:2]
    n_o = w.shape[0]
    if not _takes_winograd(w.shape[2:], stride, padding, n_c, n_o):
        dx = conv2d_backward_input(dy, w, x.shape[2:], stride, padding)
        return (dx,) + conv2d_backward_weight(dy, x, w.shape[2:], stride, padding)
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    dx = np.empty(x.shape, dtype=dy.dtype)
    dw, db = _winograd_backward(dy, x, np.ascontiguousarray(w), dx, winograd_weights)
    return dx, dw, db


def _weight_grad_part(dy3, x, first, stop, k_h, k_w, stride, padding, h_out, w_out, chunk_bytes):
    """sum over images first..stop-1 of cols[b] @ dy3[b]^T, shape (C*kH*kW, O)."""
    n_o, n_pos = dy3.shape[1], dy3.shape[2]
    rows = x.shape[1] * k_h * k_w
    chunk = _images_per_chunk(stop - first, rows * n_pos * x.itemsize, chunk_bytes)
    dw_t = np.zeros((rows, n_o), dtype=dy3.dtype)
    if rows * n_o <= _PER_IMAGE_DW_MAX:
        # few channels: OpenBLAS handles one long product with so small an output poorly
        # (about 40% of its speed on per-image products), so sum per-image products instead
        cols = np.empty((chunk, rows, n_pos), dtype=x.dtype)
        for b0 in range(first, stop, chunk):
            nb = min(chunk, stop - b0)
            _im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols[:nb], False)
            # (nb, C*kH*kW, Ho*Wo) @ (nb, Ho*Wo, O) -> (nb, C*kH*kW, O), summed over images
            dw_t += np.matmul(cols[:nb], dy3[b0:b0 + nb].transpose(0, 2, 1)).sum(axis=0)
        return dw_t
    # flat buffers, so that a shorter last chunk is still one contiguous block
    cols_buf = np.empty(rows * chunk * n_pos, dtype=x.dtype)
    dy_buf = np.empty(n_o * chunk * n_pos, dtype=dy3.dtype)
    for b0 in range(first, stop, chunk):
        nb = min(chunk, stop - b0)
        # rows first, so that the chunk's images join the reduction of one product
        cols = cols_buf[:rows * nb * n_pos].reshape(rows, nb, n_pos)
        _im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols, True)
        dy2 = dy_buf[:n_o * nb * n_pos].reshape(n_o, nb, n_pos)
        dy2[...] = dy3[b0:b0 + nb].transpose(1, 0, 2)  # (nb, O, Ho*Wo) -> (O, nb, Ho*Wo)
        # (C*kH*kW, nb*Ho*Wo) @ (nb*Ho*Wo, O): one sgemm per chunk; OpenBLAS runs this
        # orientation faster than dY2 @ cols^T when the output is this small and K this long
        dw_t += cols.reshape(rows, -1) @ dy2.reshape(n_o, -1).T
    return dw_t


def _winograd_chunks(n_b, n_rows, n_tiles, itemsize):
    """Chunks (b0, nb) of the batch for the Winograd buffers, and the largest nb.

    In the split way a chunk is about _SPLIT_CHUNK_BYTES, at least _WINOGRAD_MIN_IMAGES images,
    but never more than a thread's share of the batch (so a batch of 2 still uses 2 threads);
    in the serial way about _CHUNK_BYTES.
    """
    per_image = winograd.POSITIONS * n_rows * n_tiles * itemsize
    if _splits(n_b):
        share = -(-n_b // _split_threads())
        most = min(share, max(_WINOGRAD_MIN_IMAGES, _SPLIT_CHUNK_BYTES // per_image))
    else:
        most = min(n_b, max(1, _CHUNK_BYTES // per_image))
    return [(b0, min(most, n_b - b0)) for b0 in range(0, n_b, most)], int(most)


def _over_chunks(n_b, n_chunks, make_state, run_chunk):
    """run_chunk(state, k) for every chunk k: shared out over the threads as they come free
    (threads.share_out, single-threaded BLAS) when the batch takes the split way, else in turn
    on this thread; state = make_state() once per thread."""
    if _splits(n_b) and n_chunks > 1:
        with blas.single_threaded():
            share_out(n_chunks, run_chunk, make_state)
    else:
        state = make_state()
        for k in range(n_chunks):
            run_chunk(state, k)


def _winograd_chunk_views(n_b, n_tiles, dtype, rows_a, rows_b):
    """The batch's Winograd chunks, as (n_chunks, make_state, views) for _over_chunks:
    make_state() allocates two flat buffers for the largest chunk (a thread's scratch), and
    views(state, k) -> (b0, nb, a, b) gives chunk k's first image, its image count and the
    buffers viewed as (16, rows_a, tiles*nb) and (16, rows_b, tiles*nb) (a shorter last chunk
    stays one contiguous block)."""
    chunks, most = _winograd_chunks(n_b, max(rows_a, rows_b), n_tiles, np.dtype(dtype).itemsize)
    size = winograd.POSITIONS * n_tiles

    def make_state():
        return [np.empty(size * rows * most, dtype=dtype) for rows in (rows_a, rows_b)]

    def views(state, k):
        b0, nb = chunks[k]
        return (b0, nb) + tuple(buffer[:size * rows * nb].reshape(winograd.POSITIONS, rows, n_tiles * nb)
                                for buffer, rows in zip(state, (rows_a, rows_b)))
    return len(chunks), make_state, views


def _winograd_forward(x, w, b, y, u=None):
    """y (B, O, H, W) = the 3x3 padding-1 convolution of x with w, plus the bias b (O,) unless
    it is None (winograd.py); u: w's transformed filters, computed here if None."""
    n_b, n_c = x.shape[:2]
    n_o = w.shape[0]
    th, tw = winograd.tiles(x.shape[2:])
    u = winograd.weights(w) if u is None else u  # (16, O, C)
    bias = np.zeros(n_o, dtype=y.dtype) if b is None else np.ascontiguousarray(b, dtype=y.dtype)
    n_chunks, buffers, views = _winograd_chunk_views(n_b, th * tw, x.dtype, n_c, n_o)

    def run(state, k):
        b0, nb, v, m = views(state, k)
        winograd.input_forward(x, b0, nb, v)
        np.matmul(u, v, out=m)  # 16 products (O, C) @ (C, tiles*nb)
        winograd.output_forward(m, bias, b0, nb, y)
    _over_chunks(n_b, n_chunks, buffers, run)


def _winograd_backward(dy, x, w, dx, u=None):
    """The gradients of _winograd_forward from one output transform dM per chunk: fills dx
    (B, C, H, W) unless it is None, and returns (dw (O, C, 3, 3), db (O,)) unless x is None
    (then None). w (or its transformed filters u) is needed for dx only."""
    n_b, n_o = dy.shape[:2]
    n_c = dx.shape[1] if x is None else x.shape[1]
    th, tw = winograd.tiles(dy.shape[2:])
    # (16, C, O), a view BLAS reads transposed
    if dx is not None and u is None:
        u = winograd.weights(w)
    u_t = None if dx is None else u.transpose(0, 2, 1)
    n_chunks, buffers, views = _winograd_chunk_views(n_b, th * tw, dy.dtype, n_o, n_c)
    # each chunk's dU and bias sums, added up in chunk order below whichever thread ran it
    du = None if x is None else np.empty((n_chunks, winograd.POSITIONS, n_o, n_c), dtype=dy.dtype)
    db = np.zeros((n_chunks, n_o))  # float64, filled by output_adjoint

    def run(state, k):
        b0, nb, dm, dv = views(state, k)
        winograd.output_adjoint(dy, b0, nb, dm, db[k])
        if dx is not None:
            np.matmul(u_t, dm, out=dv)  # 16 products (C, O) @ (O, tiles*nb)
            winograd.input_adjoint(dv, b0, nb, dx)
        if x is not None:
            v = dv  # dV is spent: its buffer now takes V, the chunk's transformed input
            winograd.input_forward(x, b0, nb, v)
            np.matmul(dm, v.transpose(0, 2, 1), out=du[k])  # 16 products (O, tiles*nb) @ (tiles*nb, C)
    _over_chunks(n_b, n_chunks, buffers, run)
    if x is None:
        return None
    du_sum = du[0]
    for k in range(1, n_chunks):
        du_sum += du[k]
    return winograd.weights_adjoint(du_sum), db.sum(axis=0).astype(dy.dtype)
