"""exp for float32 arrays in plain arithmetic, so that LLVM vectorises the loops that need it.

Why. Numba turns np.exp into one call of the C library's exp per element: LLVM cannot vectorise
a loop around a function call unless Numba was built with Intel's SVML (pip's llvmlite is not),
and a float32 value met with a float64 constant (1.0 + np.exp(-v)) is even computed in float64.
SiLU, applied to every activation of the UNet twice per step (forward and backward), spent about
7.5 ns per element that way, 30 times the cost of copying the element.

How. The textbook range reduction (e.g. Muller, "Elementary Functions", ch. 11):

    exp(x) = 2^n * exp(r),   n = round(x / ln 2),   r = x - n ln 2,   |r| <= ln(2) / 2

r is computed in two steps, with ln 2 split into LN2_HI, whose 16 significant bits make n * LN2_HI
exact for |n| < 256, and the small rest LN2_LO (Cody & Waite 1980). exp(r) is its Taylor
polynomial of degree 7 in Horner form: the first term left out, r^8 / 8!, is at most 5e-9 of
the result on |r| <= 0.347, below float32's resolution (6e-8). 2^n is built from its bit
pattern ((n + 127) << 23 is the float32 with exponent n), in two halves n1 + n2 = n so that
each is a normal float even when 2^n is not: the two multiplications then round to a subnormal,
to 0 or to inf exactly as exp would. Inputs are clamped to [-104, 89] first (beyond that exp is
0 or inf in float32 anyway); a NaN stays NaN.

attention.py's _exp_rows uses the same idea (ln 2 as one constant, a degree-6 polynomial),
specialised to softmax's arguments, which are never positive, fused with the row sums, and in
float64 too; this one covers the whole float32 range for any caller.

Accuracy: within 1 unit in the last place of the correctly rounded result (tested against
float64 np.exp over the whole float32 range). Compiled without "reassoc": fast-math
reassociation would merge the two subtractions of the range reduction and undo its care.
"""

import numba
import numpy as np

BLOCK = 512  # elements per pass: the scratch arrays stay in the L1 cache

LOG2_E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693145751953125)  # 0x3F317200
LN2_LO = np.float32(1.4286067653e-06)  # ln 2 - LN2_HI
X_LOW, X_HIGH = np.float32(-104.0), np.float32(89.0)  # exp underflows to 0 / overflows below / above
C2, C3, C4 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
C5, C6, C7 = np.float32(1 / 120), np.float32(1 / 720), np.float32(1 / 5040)
ONE, HALF = np.float32(1.0), np.float32(0.5)


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def exp_into(a, sign, out, bits1, bits2):
    """out[i] = exp(sign * a[i]) for float32 1-D arrays a and out of equal length.

    bits1, bits2: int32 scratch arrays at least as long (callers reuse them from block to block).
    """
    pow1 = bits1.view(np.float32)
    pow2 = bits2.view(np.float32)
    for i in range(a.size):
        x = sign * a[i]
        if not (x <= X_HIGH):  # also NaN, put right below
            x = X_HIGH
        if x < X_LOW:
            x = X_LOW
        n = np.floor(x * LOG2_E + HALF)
        r = (x - n * LN2_HI) - n * LN2_LO
        out[i] = ONE + r * (ONE + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))
        k = np.int32(n)
        k1 = k >> 1
        bits1[i] = (k1 + 127) << 23
        bits2[i] = (k - k1 + 127) << 23
    for i in range(a.size):
        x = sign * a[i]
        value = out[i] * pow1[i] * pow2[i]
        out[i] = value if x == x else x


@numba.njit(cache=True, nogil=True)
def exp_f32(a, out):
    """out = exp(a) for float32 1-D arrays (a test and benchmark entry point)."""
    bits1 = np.empty(BLOCK, np.int32)
    bits2 = np.empty(BLOCK, np.int32)
    for start in range(0, a.size, BLOCK):
        stop = min(start + BLOCK, a.size)
        exp_into(a[start:stop], ONE, out[start:stop], bits1, bits2)
