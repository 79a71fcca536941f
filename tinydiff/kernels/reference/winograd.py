"""Winograd F(2x2, 3x3) written from the paper, every 4x4 tile at once in einsum.

Lavin & Gray 2016 ("Fast Algorithms for Convolutional Neural Networks", section 4.1) compute each
2x2 block Y of a 3x3, stride-1 convolution's output from the 4x4 input tile d around it:

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          Lavin & Gray 2016, eq. 8

with g the 3x3 filter, ⊙ the element-wise product, and the constant matrices B^T, G, A^T below.
Tiles overlap by 2 rows and columns (a 4x4 window every 2 pixels). Notation, as in the paper:

    d  (4, 4)  an input tile          V = B^T d B   its transform
    g  (3, 3)  a filter               U = G g G^T   its transform
    M  (4, 4)  sum over input channels of U ⊙ V,    Y = A^T M A   the 2x2 output block

The backward pass applies the adjoint (transpose) of each linear map in reverse order:
dM = A dY A^T, dU = sum over tiles of dM ⊙ V, dV = sum over output channels of dM ⊙ U,
dd = B dV B^T (added where tiles overlap), dg = G^T dU G.

The fast kernels (kernels/conv/winograd.py, winograd_transforms.py) compute the same, with the
16 positions of ⊙ as 16 matrix products over channels.

Shapes: B batch, C input channels, O output channels, H/W image height/width, th/tw tiles down
and across ((H + 1) // 2, (W + 1) // 2).
"""

import numpy as np

# Lavin & Gray 2016, section 4.1: F(2x2, 3x3)
B_T = np.array([[1, 0, -1, 0],
                [0, 1, 1, 0],
                [0, -1, 1, 0],
                [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0],
                [0, 1, -1, -1]], dtype=np.float64)


def winograd_tiles_ref(x):
    """The 4x4 input tiles d: (B, C, H, W) -> (B, C, th, tw, 4, 4).

    Tile (i, j) covers rows 2i-1..2i+2 and columns 2j-1..2j+2 of the image: x padded by 1 (the
    convolution's padding), and by one more row or column of zeros when H or W is odd.
    """
    B, C, H, W = x.shape
    th, tw = (H + 1) // 2, (W + 1) // 2
    xp = np.zeros((B, C, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    xp[:, :, 1:H + 1, 1:W + 1] = x
    d = np.empty((B, C, th, tw, 4, 4), dtype=x.dtype)
    for i in range(th):
        for j in range(tw):
            d[:, :, i, j] = xp[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4]
    return d


def winograd_tiles_adjoint_ref(dd, input_hw):
    """The adjoint of winograd_tiles_ref: (B, C, th, tw, 4, 4) -> (B, C, H, W), each tile's
    values added back where it was read (overlapping tiles add; the padding is dropped)."""
    B, C, th, tw = dd.shape[:4]
    H, W = input_hw
    dxp = np.zeros((B, C, 2 * th + 2, 2 * tw + 2), dtype=dd.dtype)
    for i in range(th):
        for j in range(tw):
            dxp[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += dd[:, :, i, j]
    return dxp[:, :, 1:H + 1, 1:W + 1].copy()


def winograd_filter_transform_ref(w):
    """U = G g G^T for every filter g = w[o, c]: (O, C, 3, 3) -> (O, C, 4, 4)."""
    return np.einsum("pa,ocab,qb->ocpq", G.astype(w.dtype), w, G.astype(w.dtype))


def winograd_input_transform_ref(d):
    """V = B^T d B for every tile: (B, C, th, tw, 4, 4) -> the same shape."""
    return np.einsum("pr,bcijrs,qs->bcijpq", B_T.astype(d.dtype), d, B_T.astype(d.dtype))


def winograd_output_transform_ref(m):
    """Y = A^T M A for every tile: (B, O, th, tw, 4, 4) -> 2x2 blocks (B, O, th, tw, 2, 2)."""
    return np.einsum("rp,boijpq,sq->boijrs", A_T.astype(m.dtype), m, A_T.astype(m.dtype))


def winograd_conv2d_forward_ref(x, w, b):
    """3x3, stride-1, padding-1 conv2d by eq. 8; equals conv2d_forward_ref(x, w, b, 1, 1).

    Parameters
    ----------
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, 3, 3)
    b : ndarray of shape (O,) or None

    Returns
    -------
    y : ndarray, shape (B, O, H, W)
    """
    B, C, H, W = x.shape
    U = winograd_filter_transform_ref(w)  # (O, C, 4, 4)
    V = winograd_input_transform_ref(winograd_tiles_ref(x))  # (B, C, th, tw, 4, 4)
    M = np.einsum("ocpq,bcijpq->boijpq", U, V)  # U ⊙ V, summed over input channels c
    Y = winograd_output_transform_ref(M)  # (B, O, th, tw, 2, 2)
    th, tw = Y.shape[2:4]
    # the blocks side by side: (B, O, th, tw, 2, 2) -> (B, O, th, 2, tw, 2) -> (B, O, 2th, 2tw)
    y = Y.transpose(0, 1, 2, 4, 3, 5).reshape(B, w.shape[0], 2 * th, 2 * tw)
    y = y[:, :, :H, :W].copy()  # the blocks beyond an odd image's edge are dropped
    if b is not None:
        y += b[None, :, None, None]
    return y


def winograd_conv2d_backward_ref(dy, x, w):
    """Gradients of winograd_conv2d_forward_ref -> (dx, dw, db), from the adjoints of its maps;
    they equal conv2d_backward_ref(dy, x, w, 1, 1).

    Parameters
    ----------
    dy : ndarray, shape (B, O, H, W)
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, 3, 3)

    Returns
    -------
    dx : ndarray, shape (B, C, H, W)
    dw : ndarray, shape (O, C, 3, 3)
    db : ndarray, shape (O,)
    """
    B, O, H, W = dy.shape
    th, tw = (H + 1) // 2, (W + 1) // 2
    U = winograd_filter_transform_ref(w)  # (O, C, 4, 4)
    V = winograd_input_transform_ref(winograd_tiles_ref(x))  # (B, C, th, tw, 4, 4)
    dyp = np.zeros((B, O, 2 * th, 2 * tw), dtype=dy.dtype)  # zero beyond an odd image's edge
    dyp[:, :, :H, :W] = dy
    # (B, O, 2th, 2tw) -> (B, O, th, 2, tw, 2) -> the 2x2 blocks dY (B, O, th, tw, 2, 2)
    dY = dyp.reshape(B, O, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)
    at = A_T.astype(dy.dtype)
    dM = np.einsum("rp,boijrs,sq->boijpq", at, dY, at)  # A dY A^T
    dU = np.einsum("boijpq,bcijpq->ocpq", dM, V)  # summed over images and tiles
    dV = np.einsum("boijpq,ocpq->bcijpq", dM, U)  # summed over output channels
    bt = B_T.astype(dy.dtype)
    dd = np.einsum("pr,bcijpq,qs->bcijrs", bt, dV, bt)  # B dV B^T
    dx = winograd_tiles_adjoint_ref(dd, (H, W))
    g = G.astype(dy.dtype)
    dw = np.einsum("pa,ocpq,qb->ocab", g, dU, g)  # G^T dU G
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
