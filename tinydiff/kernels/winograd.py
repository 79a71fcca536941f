"""Winograd F(2x2, 3x3): a 3x3, stride-1, padding-1 convolution with 2.25x fewer multiplications.

Lavin & Gray 2016 ("Fast Algorithms for Convolutional Neural Networks", section 4) compute each
2x2 block of outputs from the 4x4 block of inputs around it as

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise, g the 3x3 filter)

with the constant matrices

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

Layout. Column (i*tw + j)*nb + b of V, M, dM and dV holds tile (i, j) of the b-th image of a
chunk of nb images: the batch is innermost, so every transform loop runs over nb contiguous
values, which LLVM vectorises whatever the image size (at 4x4 pixels an image has only 4 tiles).
Images whose height or width is odd get a zero row or column of tiles' padding; the outputs
beyond the image are computed and dropped.

Rounding: the transforms are sums and differences with factors 1/2, so float32 results differ
from im2col's by a few units in the last place (tests/kernels/test_winograd.py measures it).
"""

import numba
import numpy as np

from tinydiff.kernels.threads import FAST_MATH


def tiles(input_hw):
    """(th, tw): the 2x2 output blocks covering an H x W image."""
    h, w = input_hw
    return (h + 1) // 2, (w + 1) // 2


def weights(w):
    """U (16, O, C): G g G^T of every 3x3 filter g = w[o, c], position k = 4*p + q."""
    u = np.empty((16,) + w.shape[:2], dtype=w.dtype)
    _weights_forward(np.ascontiguousarray(w), u)
    return u


def weights_adjoint(du):
    """dw (O, C, 3, 3) = G^T dU G for every (o, c), from dU (16, O, C)."""
    dw = np.empty(du.shape[1:] + (3, 3), dtype=du.dtype)
    _weights_adjoint(np.ascontiguousarray(du), dw)
    return dw


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def _weights_forward(w, u):
    n_o, n_c = w.shape[:2]
    t = np.empty((4, 3), dtype=w.dtype)  # G g
    for o in range(n_o):
        for c in range(n_c):
            g = w[o, c]
            for q in range(3):
                t[0, q] = g[0, q]
                t[1, q] = 0.5 * (g[0, q] + g[1, q] + g[2, q])
                t[2, q] = 0.5 * (g[0, q] - g[1, q] + g[2, q])
                t[3, q] = g[2, q]
            for p in range(4):  # (G g) G^T, row p
                u[4 * p, o, c] = t[p, 0]
                u[4 * p + 1, o, c] = 0.5 * (t[p, 0] + t[p, 1] + t[p, 2])
                u[4 * p + 2, o, c] = 0.5 * (t[p, 0] - t[p, 1] + t[p, 2])
                u[4 * p + 3, o, c] = t[p, 2]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def _weights_adjoint(du, dw):
    n_o, n_c = du.shape[1:]
    e = np.empty((3, 4), dtype=du.dtype)  # G^T dU
    for o in range(n_o):
        for c in range(n_c):
            for q in range(4):
                d0, d1, d2, d3 = du[q, o, c], du[4 + q, o, c], du[8 + q, o, c], du[12 + q, o, c]
                e[0, q] = d0 + 0.5 * (d1 + d2)
                e[1, q] = 0.5 * (d1 - d2)
                e[2, q] = 0.5 * (d1 + d2) + d3
            for a in range(3):  # (G^T dU) G, row a
                e0, e1, e2, e3 = e[a, 0], e[a, 1], e[a, 2], e[a, 3]
                dw[o, c, a, 0] = e0 + 0.5 * (e1 + e2)
                dw[o, c, a, 1] = 0.5 * (e1 - e2)
                dw[o, c, a, 2] = 0.5 * (e1 + e2) + e3


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
    # xp[k % 2, :, (j + k // 2) * nb + b], so every loop below runs over one row of tiles as
    # one unit-stride index n = j*nb + b. The border is never written, so stays zero.
    xp = np.zeros((2, 2 * th + 2, row + nb), dtype=x.dtype)
    t = np.empty((2, 4, row + nb), dtype=x.dtype)  # B^T d, for one row of tiles
    for c in range(n_c):
        for b in range(nb):
            plane = x[first + b, c]
            for r in range(h):
                for s in range((w + 1) // 2):  # image column 2s is padded column 2s + 1 (odd)
                    xp[1, r + 1, s * nb + b] = plane[r, 2 * s]
                for s in range(w // 2):  # image column 2s + 1 is padded column 2s + 2 (even)
                    xp[0, r + 1, (s + 1) * nb + b] = plane[r, 2 * s + 1]
        for i in range(th):
            for k in range(2):
                for n in range(row + nb):
                    a0, a1 = xp[k, 2 * i, n], xp[k, 2 * i + 1, n]
                    a2, a3 = xp[k, 2 * i + 2, n], xp[k, 2 * i + 3, n]
                    t[k, 0, n] = a0 - a2
                    t[k, 1, n] = a1 + a2
                    t[k, 2, n] = a2 - a1
                    t[k, 3, n] = a1 - a3
            base = i * row
            for p in range(4):
                for n in range(row):
                    a0, a1 = t[0, p, n], t[1, p, n]
                    a2, a3 = t[0, p, n + nb], t[1, p, n + nb]
                    v[4 * p, c, base + n] = a0 - a2
                    v[4 * p + 1, c, base + n] = a1 + a2
                    v[4 * p + 2, c, base + n] = a2 - a1
                    v[4 * p + 3, c, base + n] = a1 - a3


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def input_adjoint(dv, first, nb, dx):
    """Adjoint of input_forward: dx[first+b] = sum over tiles of B dV B^T, placed where the tile
    came from (overlapping tiles add); what lands on the padding is dropped.

    dv: (16, C, th*tw*nb); dx: (B, C, H, W), images first..first+nb-1 overwritten.
    """
    n_c, h, w = dx.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    grad = np.empty((2, 2 * th + 2, row + nb), dtype=dx.dtype)  # laid out like input_forward's xp
    e = np.empty((4, 4, row), dtype=dx.dtype)  # dV B^T
    for c in range(n_c):
        grad[:] = 0
        for i in range(th):
            base = i * row
            for p in range(4):
                for n in range(row):
                    d0, d1 = dv[4 * p, c, base + n], dv[4 * p + 1, c, base + n]
                    d2, d3 = dv[4 * p + 2, c, base + n], dv[4 * p + 3, c, base + n]
                    e[p, 0, n] = d0
                    e[p, 1, n] = d1 - d2 + d3
                    e[p, 2, n] = d1 + d2 - d0
                    e[p, 3, n] = -d3
            for s in range(4):  # tile column s is padded column 2j + s
                k, shift = s % 2, (s // 2) * nb
                for n in range(row):
                    e0, e1, e2, e3 = e[0, s, n], e[1, s, n], e[2, s, n], e[3, s, n]
                    grad[k, 2 * i, shift + n] += e0
                    grad[k, 2 * i + 1, shift + n] += e1 - e2 + e3
                    grad[k, 2 * i + 2, shift + n] += e1 + e2 - e0
                    grad[k, 2 * i + 3, shift + n] -= e3
        for b in range(nb):
            for r in range(h):
                for s in range((w + 1) // 2):
                    dx[first + b, c, r, 2 * s] = grad[1, r + 1, s * nb + b]
                for s in range(w // 2):
                    dx[first + b, c, r, 2 * s + 1] = grad[0, r + 1, (s + 1) * nb + b]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def output_forward(m, first, nb, y):
    """Y = A^T M A for every tile: writes images first..first+nb-1 of y (B, O, H, W) from
    m (16, O, th*tw*nb)."""
    n_o, h, w = y.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    q = np.empty((2, 4, row), dtype=y.dtype)  # A^T M
    out = np.empty((2, 2 * th, row), dtype=y.dtype)  # out[k, r, j*nb + b]: column 2j + k
    for o in range(n_o):
        for i in range(th):
            base = i * row
            for s in range(4):
                for n in range(row):
                    a0, a1 = m[s, o, base + n], m[4 + s, o, base + n]
                    a2, a3 = m[8 + s, o, base + n], m[12 + s, o, base + n]
                    q[0, s, n] = a0 + a1 + a2
                    q[1, s, n] = a1 - a2 - a3
            for r in range(2):
                for n in range(row):
                    out[0, 2 * i + r, n] = q[r, 0, n] + q[r, 1, n] + q[r, 2, n]
                    out[1, 2 * i + r, n] = q[r, 1, n] - q[r, 2, n] - q[r, 3, n]
        for b in range(nb):
            for r in range(h):
                for s in range((w + 1) // 2):
                    y[first + b, o, r, 2 * s] = out[0, r, s * nb + b]
                for s in range(w // 2):
                    y[first + b, o, r, 2 * s + 1] = out[1, r, s * nb + b]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH)
def output_adjoint(dy, first, nb, dm):
    """Adjoint of output_forward: dM = A dY A^T for every 2x2 block of dy (B, O, H, W), images
    first..first+nb-1 (blocks beyond the image read zeros); dm: (16, O, th*tw*nb), overwritten."""
    n_o, h, w = dy.shape[1:]
    th, tw = (h + 1) // 2, (w + 1) // 2
    row = tw * nb
    dyp = np.zeros((2, 2 * th, row), dtype=dy.dtype)  # like output_forward's out; padding stays 0
    e = np.empty((4, 2, row), dtype=dy.dtype)  # A dY
    for o in range(n_o):
        for b in range(nb):
            plane = dy[first + b, o]
            for r in range(h):
                for s in range((w + 1) // 2):
                    dyp[0, r, s * nb + b] = plane[r, 2 * s]
                for s in range(w // 2):
                    dyp[1, r, s * nb + b] = plane[r, 2 * s + 1]
        for i in range(th):
            base = i * row
            for k in range(2):
                for n in range(row):
                    y0, y1 = dyp[k, 2 * i, n], dyp[k, 2 * i + 1, n]
                    e[0, k, n] = y0
                    e[1, k, n] = y0 + y1
                    e[2, k, n] = y0 - y1
                    e[3, k, n] = -y1
            for p in range(4):
                for n in range(row):
                    e0, e1 = e[p, 0, n], e[p, 1, n]
                    dm[4 * p, o, base + n] = e0
                    dm[4 * p + 1, o, base + n] = e0 + e1
                    dm[4 * p + 2, o, base + n] = e0 - e1
                    dm[4 * p + 3, o, base + n] = -e1
