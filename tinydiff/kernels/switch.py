"""The one switch: every layer runs on the fast Numba kernels, or on their NumPy reference twins.

    from tinydiff import kernels
    kernels.use("reference")             # from here on, every layer runs on kernels/reference/
    with kernels.use("fast"):            # within the block only; then back to what it was
        ...
    kernels.current_backend()            # "fast" or "reference"

The reference backend is for reading and checking, not for speed: a student can step through a
whole UNet, forward and backward, in code written straight from the definitions (kernels/
reference/), and compare its outputs and gradients with the fast path's. Layers ask at every
call (pick(fast, reference)), so switching between a forward and its backward is allowed: each
call uses the backend current at that call. DataParallel's worker processes run each request
on the calling process's backend.

This is the only global state tinydiff keeps (STYLE.md allows exactly this one).
"""

BACKENDS = ("fast", "reference")

_backend = "fast"


def current_backend():
    """The backend the layers run on now: "fast" (the default) or "reference"."""
    return _backend


class use:
    """Run every layer on `backend` ("fast" or "reference"): at once, and when used as a context
    manager (`with kernels.use("reference"): ...`) only until the block ends, whichever way it
    ends, when the backend before it comes back."""

    def __init__(self, backend):
        global _backend
        if backend not in BACKENDS:
            raise ValueError(f"kernels.use: backend must be one of {BACKENDS}, got {backend!r}")
        self.previous = _backend
        _backend = backend

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _backend
        _backend = self.previous
        return False


def pick(fast, reference):
    """`fast` on the fast backend, `reference` on the reference backend: a layer calls
    pick(kernel, its twin)(...) so that the code names both functions it may run."""
    return reference if _backend == "reference" else fast
