"""What one forward pass costs, counted rather than guessed: multiply-accumulates (MACs) of
every convolution, linear layer and attention product. FLOPs are about 2 x MACs; a training
step (forward + backward, whose two gradient products each cost about one forward) is about
3 x the forward's.

The count runs the model once in eval mode while Conv2d, Linear and ScaledDotProductAttention
report their shapes; element-wise layers (norms, activations) are left out: they move memory
but do few multiplications.
"""

from contextlib import contextmanager

import numpy as np

from tinydiff.nn import Conv2d, Linear, ScaledDotProductAttention


@contextmanager
def counting(tally):
    """Within the block, the three layer types add their MACs to tally["macs"]."""
    originals = {cls: cls.forward for cls in (Conv2d, Linear, ScaledDotProductAttention)}

    def conv(self, x):
        y = originals[Conv2d](self, x)
        kh, kw = self.kernel_size
        tally["macs"] += y.size * self.in_channels * kh * kw  # every output sums C_in kH kW products
        return y

    def linear(self, x):
        y = originals[Linear](self, x)
        tally["macs"] += y.size * self.in_features
        return y

    def attention(self, q, k, v):
        y = originals[ScaledDotProductAttention](self, q, k, v)
        B, h, N, d = q.shape
        tally["macs"] += B * h * N * k.shape[2] * (d + v.shape[3])  # q k^T, then softmax(.) v
        return y

    Conv2d.forward, Linear.forward, ScaledDotProductAttention.forward = conv, linear, attention
    try:
        yield tally
    finally:
        for cls, forward in originals.items():
            cls.forward = forward


def count_macs(fn, *inputs):
    """MACs of fn(*inputs) (e.g. a model, or a bound method such as vae.decode), per call.

    Parameters
    ----------
    fn : callable running tinydiff layers
    inputs : its arguments (their batch size is included in the count: divide by it for a
        per-sample figure)

    Returns
    -------
    int
    """
    model = getattr(fn, "__self__", fn)
    if hasattr(model, "eval"):
        model.eval()
    tally = {"macs": 0}
    with counting(tally):
        fn(*inputs)
    return int(tally["macs"])


def conv_macs_reference(c_in, c_out, k, h_out, w_out):
    """MACs of one k x k convolution producing (c_out, h_out, w_out), for checking by hand."""
    return int(np.prod([c_in, c_out, k, k, h_out, w_out]))
