"""conv2d of any kernel size, stride and padding: Numba im2col/col2im around BLAS products.

How it works. A convolution is a matrix product once every input window is laid out as a
column (im2col): with cols[b] of shape (C*kH*kW, Ho*Wo) and W2 = w.reshape(O, C*kH*kW),

    forward          y[b]     = W2 @ cols[b]            one sgemm per image
    backward input   dcols[b] = W2^T @ dy[b]            one sgemm per image, then col2im
                                                        scatters dcols back onto dx
    backward weight  dW2^T    = COLS @ DY^T             one sgemm per chunk of images, whose
                                                        B*Ho*Wo columns join the reduction
                                                        (per-image sgemms summed, when the
                                                        output is small)

run over the batch split over threads or serially, a chunk of images at a time (batch.py).

What bounds it. The products carry all the FLOPs and run at what OpenBLAS reaches for these thin
shapes (M = C_out = 32-128 rows) on one core. im2col/col2im move C*kH*kW*B*Ho*Wo elements (75 MB
for 32 channels at 32x32, B=64, float32); in the serial way they took 15-20% of the time at 32
channels, on one core.

Reference: tinydiff.kernels.reference.conv2d_forward_ref and its backward twins.
"""

import numba
import numpy as np

from tinydiff.kernels.conv import batch

# dW is summed from per-image products when one has at most this many outputs (C*kH*kW * O),
# else computed as one product per chunk; the crossover measured with OpenBLAS on 2 cores.
PER_IMAGE_DW_MAX = 16384


@numba.njit(cache=True, nogil=True)
def im2col(x, k_h, k_w, stride, padding, h_out, w_out, cols, rows_first):
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
def col2im(dcols, k_h, k_w, stride, padding, h_out, w_out, dx):
    """Adjoint of im2col: dx[b, c, h, w] = sum of every dcols entry that im2col copied from it.

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


def forward(x, w, stride, padding, h_out, w_out):
    """y (B, O, Ho*Wo) = w * x, without bias; x (B, C, H, W) and w (O, C, kH, kW) contiguous."""
    n_b, n_c = x.shape[:2]
    n_o, _, k_h, k_w = w.shape
    rows = n_c * k_h * k_w
    w2 = w.reshape(n_o, rows)  # (O, C, kH, kW) -> (O, C*kH*kW)
    y = np.empty((n_b, n_o, h_out * w_out), dtype=x.dtype)

    def run_images(first, stop, chunk_bytes):
        chunk = batch.images_per_chunk(stop - first, rows * h_out * w_out * x.itemsize, chunk_bytes)
        cols = np.empty((chunk, rows, h_out * w_out), dtype=x.dtype)
        for b0 in range(first, stop, chunk):
            nb = min(chunk, stop - b0)
            im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols[:nb], False)
            # (O, C*kH*kW) @ (nb, C*kH*kW, Ho*Wo) -> (nb, O, Ho*Wo), one sgemm per image
            np.matmul(w2, cols[:nb], out=y[b0:b0 + nb])
    batch.over_images(n_b, run_images)
    return y


def backward_input(dy, w, input_hw, stride, padding):
    """dx (B, C, H, W) from dy (B, O, Ho, Wo) and w (O, C, kH, kW), both contiguous."""
    n_b, n_o, h_out, w_out = dy.shape
    n_c, k_h, k_w = w.shape[1:]
    rows = n_c * k_h * k_w
    w2_t = w.reshape(n_o, rows).T  # (O, C*kH*kW) -> (C*kH*kW, O), a view BLAS reads transposed
    dy3 = dy.reshape(n_b, n_o, h_out * w_out)  # (B, O, Ho, Wo) -> (B, O, Ho*Wo)
    dx = np.empty((n_b, n_c) + tuple(input_hw), dtype=dy.dtype)

    def run_images(first, stop, chunk_bytes):
        per_image = rows * h_out * w_out * dy.itemsize
        chunk = batch.images_per_chunk(stop - first, per_image, chunk_bytes)
        dcols = np.empty((chunk, rows, h_out * w_out), dtype=dy.dtype)
        for b0 in range(first, stop, chunk):
            nb = min(chunk, stop - b0)
            # (C*kH*kW, O) @ (nb, O, Ho*Wo) -> (nb, C*kH*kW, Ho*Wo)
            np.matmul(w2_t, dy3[b0:b0 + nb], out=dcols[:nb])
            col2im(dcols[:nb], k_h, k_w, stride, padding, h_out, w_out, dx[b0:b0 + nb])
    batch.over_images(n_b, run_images)
    return dx


def backward_weight(dy, x, kernel_hw, stride, padding):
    """dw (O, C, kH, kW) from dy (B, O, Ho, Wo) and x (B, C, H, W), both contiguous."""
    n_b, n_o, h_out, w_out = dy.shape
    n_c = x.shape[1]
    k_h, k_w = kernel_hw
    dy3 = dy.reshape(n_b, n_o, h_out * w_out)  # (B, O, Ho, Wo) -> (B, O, Ho*Wo)
    dw_t = batch.summed_over_images(n_b, lambda first, stop, chunk_bytes: _weight_grad_of_images(
        dy3, x, first, stop, k_h, k_w, stride, padding, h_out, w_out, chunk_bytes))  # (C*kH*kW, O)
    return np.ascontiguousarray(dw_t.T).reshape(n_o, n_c, k_h, k_w)


def _weight_grad_of_images(dy3, x, first, stop, k_h, k_w, stride, padding, h_out, w_out,
                           chunk_bytes):
    """The sum over images first..stop-1 of cols[b] @ dy3[b]^T, shape (C*kH*kW, O)."""
    n_o, n_pos = dy3.shape[1], dy3.shape[2]
    rows = x.shape[1] * k_h * k_w
    chunk = batch.images_per_chunk(stop - first, rows * n_pos * x.itemsize, chunk_bytes)
    dw_t = np.zeros((rows, n_o), dtype=dy3.dtype)
    if rows * n_o <= PER_IMAGE_DW_MAX:
        # few channels: OpenBLAS handles one long product with so small an output poorly
        # (about 40% of its speed on per-image products), so sum per-image products instead
        cols = np.empty((chunk, rows, n_pos), dtype=x.dtype)
        for b0 in range(first, stop, chunk):
            nb = min(chunk, stop - b0)
            im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols[:nb], False)
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
        im2col(x[b0:b0 + nb], k_h, k_w, stride, padding, h_out, w_out, cols, True)
        dy2 = dy_buf[:n_o * nb * n_pos].reshape(n_o, nb, n_pos)
        dy2[...] = dy3[b0:b0 + nb].transpose(1, 0, 2)  # (nb, O, Ho*Wo) -> (O, nb, Ho*Wo)
        # (C*kH*kW, nb*Ho*Wo) @ (nb*Ho*Wo, O): one sgemm per chunk; OpenBLAS runs this
        # orientation faster than dY2 @ cols^T when the output is this small and K this long
        dw_t += cols.reshape(rows, -1) @ dy2.reshape(n_o, -1).T
    return dw_t
