"""conv2d 3x3, stride 1, padding 1 by Winograd F(2x2, 3x3), chunk by chunk of images.

How it works. Lavin & Gray 2016 (eq. 8) compute each 2x2 block of outputs as
Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A; summed over input channels, the element-wise product
becomes 16 matrix products, M[k] = U[k] @ V[k], one per position k of the 4x4 transformed tile
(winograd_transforms.py has the matrices and the Numba transforms). Per chunk of images:

    forward          V = B^T d B (input_forward);  M = U V;  y = A^T M A + bias (output_forward)
    backward         dM = A dY A^T (output_adjoint), then
                       input:  dV = U^T dM;  dx = B dV B^T, overlapping tiles added (input_adjoint)
                       weight: V again;  dU = dM V^T, summed over chunks;  dw = G^T dU G

Both backward passes share one dM per chunk when a layer asks for both (backward()).

The products have 2.25x fewer FLOPs than im2col's, between transforms that only add and
subtract. The chunks are handed to the threads as they come free (batch.over_chunks), so that a
thread that starts late or runs slower takes fewer (on a 2-core VM the helper thread's share of
a step ran 10-15% longer than the calling thread's, and the caller waited for it). Measured on 2
cores, forward + both backward passes at batch 64, against im2col in the same process: 1.2-1.7x
on the UNet's shapes, 32 to 256 channels at 4x4 to 32x32.

What bounds it. The 16 products reach 90-100 GFLOP/s on one core while a chunk's V and M stay
in its L2 cache; the transforms take about 40% of the time (benchmarks/bench_kernels.py prints
the current figures).

Reference: tinydiff.kernels.reference.winograd_conv2d_forward_ref and
winograd_conv2d_backward_ref (the same equations, every tile at once in einsum), and
conv2d_forward_ref, which any convolution equals.
"""

import numpy as np

from tinydiff.kernels.conv import batch
from tinydiff.kernels.conv import winograd_transforms as transforms

# Each buffer (transformed tiles V, products M) holds the same chunk sizes as im2col's column
# buffer, but at least this many images, so that the transforms' loops, which run over the
# images of a chunk, stay long enough to vectorise. Measured on 2 cores: 1 MB and 2 images beat
# 2-8 MB (the 16 products run at 90-100 GFLOP/s on one core while V and M stay in L2, at 40-60
# beyond) and 4-16 images (too large a chunk at 32x32).
MIN_IMAGES = 2


def filter_transform(w):
    """U (16, O, C) = G g G^T of every 3x3 filter g of w (O, C, 3, 3)."""
    return transforms.weights(np.ascontiguousarray(w))


def _chunks(n_b, n_rows, n_tiles, itemsize):
    """Chunks (b0, nb) of the batch for the buffers, and the largest nb.

    In the split way a chunk is about batch.SPLIT_CHUNK_BYTES, at least MIN_IMAGES images, but
    never more than a thread's share of the batch (so a batch of 2 still uses 2 threads); in the
    serial way about batch.CHUNK_BYTES.
    """
    per_image = transforms.POSITIONS * n_rows * n_tiles * itemsize
    if batch.takes_split(n_b):
        share = -(-n_b // batch.split_threads())
        most = min(share, max(MIN_IMAGES, batch.SPLIT_CHUNK_BYTES // per_image))
    else:
        most = min(n_b, max(1, batch.CHUNK_BYTES // per_image))
    return [(b0, min(most, n_b - b0)) for b0 in range(0, n_b, most)], int(most)


def _chunk_buffers(n_b, image_hw, dtype, rows_a, rows_b):
    """The chunks of a batch of n_b images of size image_hw (H, W), as (n_chunks, make_scratch,
    views) for batch.over_chunks:
    make_scratch() allocates two flat buffers for the largest chunk (a thread's scratch), and
    views(scratch, k) -> (b0, nb, a, b) gives chunk k's first image, its image count and the
    buffers viewed as (16, rows_a, tiles*nb) and (16, rows_b, tiles*nb) (a shorter last chunk
    stays one contiguous block)."""
    th, tw = transforms.tiles(image_hw)
    n_tiles = th * tw
    chunks, most = _chunks(n_b, max(rows_a, rows_b), n_tiles, np.dtype(dtype).itemsize)
    size = transforms.POSITIONS * n_tiles

    def make_scratch():
        return [np.empty(size * rows * most, dtype=dtype) for rows in (rows_a, rows_b)]

    def views(scratch, k):
        b0, nb = chunks[k]
        return (b0, nb) + tuple(
            buffer[:size * rows * nb].reshape(transforms.POSITIONS, rows, n_tiles * nb)
            for buffer, rows in zip(scratch, (rows_a, rows_b)))
    return len(chunks), make_scratch, views


def forward(x, u, b):
    """y (B, O, H, W) = the 3x3 padding-1 convolution of x (B, C, H, W) with the filters whose
    transform is u (16, O, C), plus the bias b (O,)."""
    n_b, n_c = x.shape[:2]
    n_o = u.shape[1]
    y = np.empty((n_b, n_o) + x.shape[2:], dtype=x.dtype)
    bias = np.ascontiguousarray(b, dtype=y.dtype)
    n_chunks, make_scratch, views = _chunk_buffers(n_b, x.shape[2:], x.dtype, n_c, n_o)

    def run_chunk(scratch, k):
        b0, nb, v, m = views(scratch, k)
        transforms.input_forward(x, b0, nb, v)  # V = B^T d B
        np.matmul(u, v, out=m)  # M = U V: 16 products (O, C) @ (C, tiles*nb)
        transforms.output_forward(m, bias, b0, nb, y)  # Y = A^T M A + bias
    batch.over_chunks(n_b, n_chunks, make_scratch, run_chunk)
    return y


def backward_input(dy, u):
    """dx (B, C, H, W) from dy (B, O, H, W) and the transformed filters u (16, O, C)."""
    dx, _, _ = _backward(dy, None, u, u.shape[2], input_grad=True, filter_grad=False)
    return dx


def backward_weight(dy, x):
    """(dw (O, C, 3, 3), db (O,)) from dy (B, O, H, W) and x (B, C, H, W)."""
    _, du, db = _backward(dy, x, None, x.shape[1], input_grad=False, filter_grad=True)
    return _summed_filter_grad(du, db, dy.dtype)


def backward(dy, x, u):
    """(dx, dw, db) as backward_input and backward_weight give them, from one dM per chunk."""
    dx, du, db = _backward(dy, x, u, x.shape[1], input_grad=True, filter_grad=True)
    return (dx,) + _summed_filter_grad(du, db, dy.dtype)


def _backward(dy, x, u, n_c, input_grad, filter_grad):
    """The backward pass over chunks of images: each chunk's dM = A dY A^T, then from it dx's
    products (input_grad, with the transformed filters u) and dU's (filter_grad, with the
    input x). Returns (dx (B, C, H, W) or None, dU per chunk (n_chunks, 16, O, C) or None,
    bias sums per chunk (n_chunks, O), float64)."""
    n_b, n_o = dy.shape[:2]
    n_chunks, make_scratch, views = _chunk_buffers(n_b, dy.shape[2:], dy.dtype, n_o, n_c)
    u_t = u.transpose(0, 2, 1) if input_grad else None  # (16, C, O), a view BLAS reads transposed
    dx = np.empty((n_b, n_c) + dy.shape[2:], dtype=dy.dtype) if input_grad else None
    # each chunk's dU and bias sums, added up in chunk order below whichever thread ran it
    du = np.empty((n_chunks, transforms.POSITIONS, n_o, n_c), dtype=dy.dtype) if filter_grad else None
    db = np.zeros((n_chunks, n_o))  # float64, filled by output_adjoint

    def run_chunk(scratch, k):
        b0, nb, dm, dv = views(scratch, k)
        transforms.output_adjoint(dy, b0, nb, dm, db[k])  # dM = A dY A^T
        if input_grad:
            _input_grad_of_chunk(u_t, dm, dv, b0, nb, dx)
        if filter_grad:
            _filter_grad_of_chunk(x, dm, dv, b0, nb, du[k])  # dV is spent: its buffer now takes V
    batch.over_chunks(n_b, n_chunks, make_scratch, run_chunk)
    return dx, du, db


def _input_grad_of_chunk(u_t, dm, dv, b0, nb, dx):
    """dV = U^T dM, then dx = B dV B^T for the chunk's images (overlapping tiles add)."""
    np.matmul(u_t, dm, out=dv)  # 16 products (C, O) @ (O, tiles*nb)
    transforms.input_adjoint(dv, b0, nb, dx)


def _filter_grad_of_chunk(x, dm, v, b0, nb, du_k):
    """du_k (16, O, C) = dM V^T, with V = B^T d B of the chunk's images written into v."""
    transforms.input_forward(x, b0, nb, v)
    np.matmul(dm, v.transpose(0, 2, 1), out=du_k)  # 16 products (O, tiles*nb) @ (tiles*nb, C)


def _summed_filter_grad(du, db, dtype):
    """(dw (O, C, 3, 3) = G^T dU G with dU the chunks' sum, db (O,)), summed in chunk order."""
    du_sum = du[0]
    for k in range(1, len(du)):
        du_sum += du[k]
    return transforms.weights_adjoint(du_sum), db.sum(axis=0).astype(dtype)
