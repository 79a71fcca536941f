"""The fast-math flags of the kernels' loops (norms, attention, Winograd: fastmath=FAST_MATH)."""

# LLVM fast-math flags for the kernels' loops: reassociation (so sums vectorise), contraction
# into fused multiply-adds, reciprocal approximations and signed-zero freedom -- but not
# "no NaNs / no infs": a NaN in the input must come out as NaN (and a loss check then names it),
# not be assumed away into undefined results. With error_model="numpy", x / 0 gives inf/NaN as
# in NumPy instead of raising ZeroDivisionError from inside a kernel.
FAST_MATH = {"reassoc", "contract", "arcp", "nsz"}
