"""Winograd F(2x2, 3x3)'s transforms, in Numba: the additions around the 16 products.

A 3x3, stride-1, padding-1 convolution with 2.25x fewer multiplications; winograd.py runs it
chunk by chunk of images, this file holds the transforms it calls.

Lavin & Gray 2016 ("Fast Algorithms for Convolutional Neural Networks", section 4.1) compute
each 2x2 block Y of outputs from the 4x4 input tile d around it as

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          Lavin & Gray 2016, eq. 8

(⊙ element-wise, g the 3x3 filter) with the constant matrices (written down once, as B_T, G and
A_T in kernels/reference/winograd.py, which computes the same tile by tile in einsum)

    B^T = [[1, 0, -1, 0],   G = [[1,    0,   0],     A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],        [1/2,  1/2, 1/2],          [0, 1, -1, -1]]
           [0, -1, 1, 0],        [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]       [0,    0,   1]]

Summed over input channels, the element-wise product becomes 16 matrix products, one per
position k = 4*p + q of the 4x4 transformed tile:

    M[k] = U[k] @ V[k]      U[k] (O, C): transformed filters, V[k] (C, T): transformed tiles

For each output value a direct convolution multiplies 9*C times; here 16*C per 4 outputs, so the
products (which carry nearly all the FLOPs) are 2.25x smaller than im2col's, at the price of
the four cheap transforms below, which only add and subtract.

The backward passes are the adjoints of the same linear maps (no new algorithm needed):

    dM = A dY A^T (per 2x2 output block)          output_adjoint
    dV[k] = U[k]^T @ dM[k],  dU[k] = dM[k] @ V[k]^T
    dx = sum over tiles of B dV B^T (tiles overlap by 2 rows/columns, so contributions add)
                                                   input_adjoint
    dw = G^T dU G                                  weights_adjoint

Names in the kernels, after the paper's: d_planes holds the input tiles d (as padded image
planes), bt_d = B^T d, v = V = B^T d B; u = U = G g G^T; m = M = U V; at_m = A^T M, y_planes =
A^T M A. Backward: a_dy = A dY, dm = dM = A dY A^T, dv = dV, dv_bt = dV B^T, dd_planes =
B dV B^T (the gradient of the tiles d, overlaps added).

Layout. Column (i*tw + j)*nb + b of V, M, dM and dV holds tile (i, j) of the b-th image of a
chunk of nb images: the batch is innermost. The kernels copy each image plane into a scratch
array in the same order, with its even and odd columns apart, so that a whole row of tiles of
all nb images, n = j*nb + b, is one unit-stride loop, which LLVM vectorises whatever the image
size (at 4x4 pixels an image has only 2 tiles to a row). That copy, a transposition, is about
half of the transforms' time. Images whose height or width is odd get a zero row or column of
tiles' padding; the outputs beyond the image are computed and dropped.

Rounding: the transforms are sums and differences with factors 1/2, so float32 results differ
from im2col's by a few units in the last place (tests/kernels/test_winograd.py measures it).

Why not F(4x4, 3x3), with 4x fewer multiplications than direct convolution (Lavin & Gray's
6x6 tiles)? Tried here, written the same way: its products ran twice as fast as these, but its
transforms (36 positions, constants 2, 4, 5, 8) took 1.5-2x as long, so that per image a whole
convolution cost the same as with F(2x2, 3x3) (within 3% at 32 channels 16x16, 64 at 8x8 and
128 at 4x4, one core), with about 10x the float32 error.
"""

import numba
import numpy as np

from tinydiff.kernels.reference.winograd import G  # the paper's matrices, written down once
from tinydiff.kernels.threads import FAST_MATH

TILE = 4  # an input tile d, and its transform V, is TILE x TILE; an output block Y is 2 x 2
POSITIONS = TILE * TILE  # the products per convolution, one per position of V


def tiles(input_hw):
    """(th, tw): the 2x2 output blocks covering an H x W image."""
    h, w = input_hw
    return (h + 1) // 2, (w + 1) // 2


# kron(G, G)[4*p + q, 3*a + b] = G[p, a] G[q, b], so that U = G g G^T of every filter at once is
# one product: (16, 9) @ (9, O*C)
G_KRON_G = np.kron(G, G)


def weights(w):
    """U (16, O, C): G g G^T of every 3x3 filter g = w[o, c], position k = 4*p + q."""
    n_o, n_c = w.shape[:2]
    return (G_KRON_G.astype(w.dtype) @ w.reshape(n_o * n_c, 9).T).reshape(POSITIONS, n_o, n_c)


def weights_adjoint(du):
    """dw (O, C, 3, 3) = G^T dU G for every (o, c), from dU (16, O, C)."""
    n_o, n_c = du.shape[1:]
    # (O*C, 16) @ (16, 9): dU read transposed, so that the product comes out in dw's layout
    return (du.reshape(POSITIONS, n_o * n_c).T @ G_KRON_G.astype(du.dtype)).reshape(n_o, n_c, 3, 3)


# How the kernels below are written, for speed (measured per image on one core: the four
# transforms together take 35-40% less time than written the obvious way):
# - each row they work on is taken as a 1-D view first (d_planes[k, r], v[k, c, a:b]), so that
#   every innermost loop is a plain unit-stride loop over 1-D arrays;
# - each innermost loop stores to one array only. The views are of the same array, and LLVM
#   does not vectorise a loop that stores to several of them (it cannot rule out that they
#   overlap), while it vectorises each single-store loop in full; reading the inputs again from
#   L1 in each loop costs less than that.
# The four helpers apply B^T, B, A^T and A along such rows, element by element over n values:
# each transform is the same matrix applied twice, down the columns and then along the rows.
_INLINE = dict(cache=True, nogil=True, fastmath=FAST_MATH, inline="always")


@numba.njit(**_INLINE)
def _times_bt(d0, d1, d2, d3, o0, o1, o2, o3, n):
    """(o0, o1, o2, o3) = B^T (d0, d1, d2, d3)."""
    for k in range(n):
        o0[k] = d0[k] - d2[k]
    for k in range(n):
        o1[k] = d1[k] + d2[k]
    for k in range(n):
        o2[k] = d2[k] - d1[k]
    for k in range(n):
        o3[k] = d1[k] - d3[k]


@numba.njit(**_INLINE)
def _times_b(d0, d1, d2, d3, o0, o1, o2, o3, n, add):
    """(o0, o1, o2, o3) = B (d0, d1, d2, d3), the adjoint of _times_bt; added to o if add."""
    if add:
        for k in range(n):
            o0[k] += d0[k]
        for k in range(n):
            o1[k] += d1[k] - d2[k] + d3[k]
        for k in range(n):
            o2[k] += d1[k] + d2[k] - d0[k]
        for k in range(n):
            o3[k] -= d3[k]
    else:
        for k in range(n):
            o0[k] = d0[k]
        for k in range(n):
            o1[k] = d1[k] - d2[k] + d3[k]
        for k in range(n):
            o2[k] = d1[k] + d2[k] - d0[k]
        for k in range(n):
            o3[k] = -d3[k]


@numba.njit(**_INLINE)
def _times_at(m0, m1, m2, m3, o0, o1, n):
    """(o0, o1) = A^T (m0, m1, m2, m3)."""
    for k in range(n):
        o0[k] = m0[k] + m1[k] + m2[k]
    for k in range(n):
        o1[k] = m1[k] - m2[k] - m3[k]


@numba.njit(**_INLINE)
def _times_a(y0, y1, o0, o1, o2, o3, n):
    """(o0, o1, o2, o3) = A (y0, y1), the adjoint of _times_at."""
    for k in range(n):
        o0[k] = y0[k]
    for k in range(n):
        o1[k] = y0[k] + y1[k]
    for k in range(n):
        o2[k] = y0[k] - y1[k]
    for k in range(n):
        o3[k] = -y1[k]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def input_forward(x, first, nb, v):
    """V = B^T d B for every 4x4 input tile d of images first..first+nb-1 of x (B, C, H, W).

    v: (16, C, th*tw*nb), overwritten. Tile (i, j) covers rows 2i-1..2i+2 and columns
    2j-1..2j+2 of the image (the padding of 1 reads as zeros).
    """
    n_c, h, w = x.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb  # one row of tiles, all images
    # The padded planes with even and odd columns apart: column 2j + k of the padding sits at
    # d_planes[k % 2, :, (j + k // 2) * nb + b], so every loop below runs over one row of tiles
    # as one unit-stride index n = j*nb + b. The border is never written, so stays zero.
    d_planes = np.zeros((2, 2 * th + 2, row + nb), dtype=x.dtype)
    bt_d = np.empty((2, 4, row + nb), dtype=x.dtype)  # B^T d, for one row of tiles
    for c in range(n_c):
        for b in range(nb):
            plane = x[first + b, c]
            for r in range(h):
                src, odd, even = plane[r], d_planes[1, r + 1], d_planes[0, r + 1]
                for s in range((w + 1) // 2):  # image column 2s is padded column 2s + 1 (odd)
                    odd[s * nb + b] = src[2 * s]
                for s in range(w // 2):  # image column 2s + 1 is padded column 2s + 2 (even)
                    even[(s + 1) * nb + b] = src[2 * s + 1]
        for i in range(th):
            for k in range(2):
                _times_bt(d_planes[k, 2 * i], d_planes[k, 2 * i + 1], d_planes[k, 2 * i + 2],
                          d_planes[k, 2 * i + 3], bt_d[k, 0], bt_d[k, 1], bt_d[k, 2], bt_d[k, 3],
                          row + nb)
            cols = slice(i * row, (i + 1) * row)
            for p in range(4):  # tile columns 2j..2j+3: even j, odd j, even j+1, odd j+1
                _times_bt(bt_d[0, p], bt_d[1, p], bt_d[0, p, nb:], bt_d[1, p, nb:],
                          v[4 * p, c, cols], v[4 * p + 1, c, cols], v[4 * p + 2, c, cols],
                          v[4 * p + 3, c, cols], row)


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def input_adjoint(dv, first, nb, dx):
    """Adjoint of input_forward: dx[first+b] = sum over tiles of B dV B^T, placed where the tile
    came from (overlapping tiles add); what lands on the padding is dropped.

    dv: (16, C, th*tw*nb); dx: (B, C, H, W), images first..first+nb-1 overwritten.
    """
    n_c, h, w = dx.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    # dL/d of the padded planes d, laid out like input_forward's d_planes
    dd_planes = np.empty((2, 2 * th + 2, row + nb), dtype=dx.dtype)
    dv_bt = np.empty((4, 4, row), dtype=dx.dtype)  # dV B^T
    for c in range(n_c):
        dd_planes[:] = 0
        for i in range(th):
            cols = slice(i * row, (i + 1) * row)
            for p in range(4):
                _times_b(dv[4 * p, c, cols], dv[4 * p + 1, c, cols], dv[4 * p + 2, c, cols],
                         dv[4 * p + 3, c, cols], dv_bt[p, 0], dv_bt[p, 1], dv_bt[p, 2], dv_bt[p, 3],
                         row, False)
            for s in range(4):  # tile column s is padded column 2j + s
                k, shift = s % 2, (s // 2) * nb
                _times_b(dv_bt[0, s], dv_bt[1, s], dv_bt[2, s], dv_bt[3, s],
                         dd_planes[k, 2 * i, shift:], dd_planes[k, 2 * i + 1, shift:],
                         dd_planes[k, 2 * i + 2, shift:], dd_planes[k, 2 * i + 3, shift:], row,
                         True)
        for b in range(nb):
            plane = dx[first + b, c]
            for r in range(h):
                dst, odd, even = plane[r], dd_planes[1, r + 1], dd_planes[0, r + 1]
                for s in range((w + 1) // 2):
                    dst[2 * s] = odd[s * nb + b]
                for s in range(w // 2):
                    dst[2 * s + 1] = even[(s + 1) * nb + b]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def output_forward(m, bias, first, nb, y):
    """Y = A^T M A + bias for every tile: writes images first..first+nb-1 of y (B, O, H, W) from
    m (16, O, th*tw*nb) and bias (O,) (the bias added as the planes are written out, as a
    separate y += bias would, in one pass over y fewer)."""
    n_o, h, w = y.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    at_m = np.empty((2, 4, row), dtype=y.dtype)  # A^T M
    y_planes = np.empty((2, 2 * th, row), dtype=y.dtype)  # [k, r, j*nb + b]: A^T M A, column 2j + k
    for o in range(n_o):
        for i in range(th):
            cols = slice(i * row, (i + 1) * row)
            for s in range(4):
                _times_at(m[s, o, cols], m[4 + s, o, cols], m[8 + s, o, cols], m[12 + s, o, cols],
                          at_m[0, s], at_m[1, s], row)
            for r in range(2):
                _times_at(at_m[r, 0], at_m[r, 1], at_m[r, 2], at_m[r, 3], y_planes[0, 2 * i + r],
                          y_planes[1, 2 * i + r], row)
        bias_o = bias[o]
        for b in range(nb):
            plane = y[first + b, o]
            for r in range(h):
                dst, even, odd = plane[r], y_planes[0, r], y_planes[1, r]
                for s in range((w + 1) // 2):
                    dst[2 * s] = even[s * nb + b] + bias_o
                for s in range(w // 2):
                    dst[2 * s + 1] = odd[s * nb + b] + bias_o


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def output_adjoint(dy, first, nb, dm, db):
    """Adjoint of output_forward: dM = A dY A^T for every 2x2 block of dy (B, O, H, W), images
    first..first+nb-1 (blocks beyond the image read zeros); dm: (16, O, th*tw*nb), overwritten.
    Adds the sum of each channel's dy over these images, the bias gradient, to db (O,)
    (float64: the sums of a whole batch are long)."""
    n_o, h, w = dy.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    dy_planes = np.zeros((2, 2 * th, row), dtype=dy.dtype)  # like output_forward's y_planes
    a_dy = np.empty((4, 2, row), dtype=dy.dtype)  # A dY
    for o in range(n_o):
        total = 0.0
        for b in range(nb):
            plane = dy[first + b, o]
            for r in range(h):
                src, even, odd = plane[r], dy_planes[0, r], dy_planes[1, r]
                for s in range((w + 1) // 2):
                    even[s * nb + b] = src[2 * s]
                for s in range(w // 2):
                    odd[s * nb + b] = src[2 * s + 1]
                for s in range(w):
                    total += src[s]
        db[o] += total
        for i in range(th):
            cols = slice(i * row, (i + 1) * row)
            for k in range(2):
                _times_a(dy_planes[k, 2 * i], dy_planes[k, 2 * i + 1], a_dy[0, k], a_dy[1, k],
                         a_dy[2, k], a_dy[3, k], row)
            for p in range(4):
                _times_a(a_dy[p, 0], a_dy[p, 1], dm[4 * p, o, cols], dm[4 * p + 1, o, cols],
                         dm[4 * p + 2, o, cols], dm[4 * p + 3, o, cols], row)
