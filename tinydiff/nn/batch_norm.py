"""Batch normalisation over (B, H, W) for each channel (Ioffe & Szegedy 2015), as PyTorch's
BatchNorm2d.

Notation (per channel c, over the m = B*H*W elements of the batch in that channel):
    mu_B      batch mean                          sigma_B^2  biased batch variance (divides by m)
    x_hat     (x - mu_B) / sqrt(sigma_B^2 + eps)  gamma, beta  `weight` and `bias`

Training mode (Ioffe & Szegedy 2015, Algorithm 1):
    y = gamma * x_hat + beta
and the running statistics that eval mode uses move toward the batch's (PyTorch's convention:
`momentum` weights the NEW value, the opposite of an optimizer's momentum; the running
variance takes the UNBIASED batch variance, m / (m - 1) * sigma_B^2, Algorithm 2 step 10):
    running_mean <- (1 - momentum) * running_mean + momentum * mu_B
    running_var  <- (1 - momentum) * running_var  + momentum * m / (m - 1) * sigma_B^2
With momentum=None they are the plain average of every batch seen so far.

Eval mode: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, a fixed affine map.

Backward (training mode; the batch statistics depend on every x, so each gradient mixes the
whole channel: Ioffe & Szegedy 2015, sec. 3, the chain rule through mu_B and sigma_B^2):
    g = dy * gamma
    dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(sigma_B^2 + eps)
    dgamma = sum(dy * x_hat),  dbeta = sum(dy)
(the same closed form as LayerNorm's, over the batch axes instead of the feature axes).

The running statistics are buffers, not parameters: no gradient, no optimizer step. Module's
state_dict holds parameters only, so a model with BatchNorm2d layers adds them with
`buffers_state` / `load_buffers_state` (tinydiff.models.gan does), under PyTorch's names
`running_mean`, `running_var` and `num_batches_tracked`.
"""

import numpy as np

from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.module import Module, Parameter

BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")


def batch_norm_forward(x, weight, bias, eps):
    """x (B, C, H, W) normalised per channel with the batch's statistics -> (y, cache, mean, var),
    var the biased variance (Ioffe & Szegedy 2015, Algorithm 1)."""
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)  # mu_B, (1, C, 1, 1)
    xc = x - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)  # sigma_B^2, biased
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    y = xhat * weight[None, :, None, None] + bias[None, :, None, None]
    return y, (xhat, rstd, weight), mean.reshape(-1), var.reshape(-1)


def batch_norm_backward(dy, cache):
    """dy (B, C, H, W) -> (dx, dweight (C,), dbias (C,)); see the module docstring."""
    xhat, rstd, weight = cache
    axes = (0, 2, 3)
    dweight = (dy * xhat).sum(axis=axes)
    dbias = dy.sum(axis=axes)
    g = dy * weight[None, :, None, None]
    dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, dweight, dbias


class BatchNorm2d(Module):
    """Normalise each channel over the batch and spatial positions (training mode) or with the
    running statistics (eval mode), as PyTorch's BatchNorm2d.

    Reference: batch_norm_forward and batch_norm_backward above, in NumPy (no fast kernel: the
    same code runs on both kernel backends).

    Parameters
    ----------
    num_features : int
        C, the channels.
    eps : float, > 0
    momentum : float in [0, 1], or None
        Weight of the new batch statistic in the running averages (PyTorch's default 0.1); None
        averages all batches equally.
    affine : bool
        With affine=False there are no `weight` (ones) and `bias` (zeros) parameters.

    Buffers: running_mean (C,) starts at 0, running_var (C,) at 1, num_batches_tracked at 0.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        if not eps > 0:
            raise ValueError(f"BatchNorm2d: eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1] or None, got {momentum}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.weight = Parameter(np.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32)) if affine else None
        self.running_mean = np.zeros(num_features, dtype=np.float32)
        self.running_var = np.ones(num_features, dtype=np.float32)
        self.num_batches_tracked = 0

    def scale_and_shift(self, dtype):
        """(gamma, beta): the parameters, or ones and zeros without affine."""
        if self.affine:
            return self.weight.data, self.bias.data
        return np.ones(self.num_features, dtype=dtype), np.zeros(self.num_features, dtype=dtype)

    def forward(self, x):
        """x (B, C, H, W) -> same shape."""
        dtype = self.weight.dtype if self.affine else self.running_mean.dtype
        check_float_array(x, "x", ndim=4, dtype=dtype)
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: x must have num_features={self.num_features} channels (axis 1), "
                             f"got shape {x.shape}")
        gamma, beta = self.scale_and_shift(x.dtype)
        if not self.training:
            rstd = 1.0 / np.sqrt(self.running_var + self.eps)
            scale = gamma * rstd
            self.save_for_backward(None)  # eval caches nothing: backward raises, as for every layer
            return x * scale[None, :, None, None] + (beta - self.running_mean * scale)[None, :, None, None]
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise ValueError(f"BatchNorm2d: training mode needs more than 1 value per channel, got x of "
                             f"shape {x.shape} (use a batch of 2 or more, or eval mode)")
        y, cache, mean, var = batch_norm_forward(x, gamma, beta, self.eps)
        self.update_running_stats(mean, var, count)
        self.save_for_backward(cache)
        return y

    def update_running_stats(self, mean, var, count):
        """Ioffe & Szegedy 2015, Algorithm 2, step 10 (unbiased variance), with PyTorch's momentum."""
        self.num_batches_tracked += 1
        factor = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean = ((1.0 - factor) * self.running_mean + factor * mean).astype(self.running_mean.dtype)
        self.running_var = ((1.0 - factor) * self.running_var + factor * unbiased).astype(self.running_var.dtype)

    def backward(self, grad_out):
        """dx; dweight and dbias are added into weight.grad and bias.grad (training mode only)."""
        (cache,) = self.saved()
        dx, dweight, dbias = batch_norm_backward(grad_out, cache)
        # dweight and dbias come from the pass that gives dx; a frozen parameter skips storing them
        if self.affine and self.weight.requires_grad:
            self.weight.grad += dweight
        if self.affine and self.bias.requires_grad:
            self.bias.grad += dbias
        return dx

    def cast_buffers(self, dtype):
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


def buffers_state(model):
    """name -> array of every BatchNorm2d buffer in `model`, named as PyTorch's state_dict
    (`conv.1.running_mean`, ...); num_batches_tracked as a 0-d float array (safetensors files
    hold floats here)."""
    state = {}
    for prefix, module in model.named_modules():
        if isinstance(module, BatchNorm2d):
            for name in BUFFER_NAMES:
                value = np.array(getattr(module, name), dtype=module.running_mean.dtype)
                state[f"{prefix}.{name}" if prefix else name] = value.copy()
    return state


def load_buffers_state(model, state):
    """Copy buffers from `state` (as buffers_state names them) into `model`'s BatchNorm2d layers;
    returns the names it did not find, for the caller's missing-keys report."""
    missing = []
    for prefix, module in model.named_modules():
        if isinstance(module, BatchNorm2d):
            for name in BUFFER_NAMES:
                key = f"{prefix}.{name}" if prefix else name
                if key not in state:
                    missing.append(key)
                    continue
                value = np.asarray(state[key])
                if name == "num_batches_tracked":
                    module.num_batches_tracked = int(value)
                elif value.shape != (module.num_features,):
                    raise ValueError(f"load_buffers_state: {key} must have shape ({module.num_features},), "
                                     f"got {value.shape}")
                else:
                    setattr(module, name, value.astype(module.running_mean.dtype))
    return missing
