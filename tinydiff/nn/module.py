"""Parameter, Module, Sequential and ModuleList: the autograd-free layer contract.

A Module's forward computes its output and, in training mode, caches what its backward
needs; backward(grad_out) returns the gradient with respect to each forward input (a tuple
when forward took several) and adds the gradients of its parameters into their `.grad`.
Nothing records a graph: a model's backward calls its children's backward in reverse, by hand.
"""

from collections import OrderedDict

import numpy as np

from tinydiff.nn.checks import FLOAT_DTYPES, describe


class Parameter:
    """A trainable array and its accumulated gradient.

    Attributes
    ----------
    data : ndarray
        The values. Layers read it at call time, so `p.data[...] = new` changes the layer.
    grad : ndarray or None
        Same shape and dtype as `data`; backward adds into it, zero_grad() clears it. None
        while the parameter is frozen.
    requires_grad : bool
        True (the default): backward computes this parameter's gradient. False (frozen, as
        the base weights under a LoRA adapter): no gradient is computed, stored or allocated;
        layers skip the product that would give it, optimizers skip the parameter. Setting it
        back to True allocates a zero `.grad`.
    """

    def __init__(self, data, requires_grad=True):
        data = np.asarray(data)
        if data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Parameter: expected float32 or float64 data, got dtype {data.dtype}")
        self.data = np.array(data)  # own copy: a parameter never aliases the caller's array
        self.grad = None
        self.requires_grad = requires_grad

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"requires_grad: expected True or False, got {value!r}")
        self._requires_grad = bool(value)
        if not value:
            self.grad = None  # frozen: the gradient array is released, not just zeroed
        elif self.grad is None:
            self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


def needs_grads(params):
    """One bool per entry of params: a gradient is wanted (not None and not frozen)."""
    return tuple(p is not None and p.requires_grad for p in params)


class Module:
    """Base class of every layer and model.

    Children and parameters are found by walking the instance's attributes in the order
    they were assigned, as PyTorch does: a module's own parameters first, then each child's.
    """

    def __init__(self):
        self.training = True
        self._cache = None

    # ---- forward / backward -------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, *inputs, **options):
        return self.forward(*inputs, **options)

    def save_for_backward(self, *values):
        """Keep what backward needs, in training mode only (eval caches nothing)."""
        self._cache = values if self.training else None

    def saved(self):
        """Return (and release) what forward saved; a clear error if there is nothing."""
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward: no saved forward pass. Call forward in "
                f"training mode (module.train()) right before backward; eval mode caches "
                f"nothing and each forward's cache is released by its backward."
            )
        values, self._cache = self._cache, None
        return values

    def forward_with(self, forward_fn, *args):
        """y from the functional forward forward_fn(*args) -> (y, cache); the cache is kept for
        backward_with (in training mode)."""
        y, cache = forward_fn(*args)
        self.save_for_backward(cache)
        return y

    def backward_with(self, backward_fn, grad_out, params):
        """dx from the functional backward backward_fn(grad_out, cache, needs) -> (dx, *grads),
        with the cache forward_with kept. needs[i] says whether params[i] wants its gradient
        (False for a None parameter, a layer built without bias, and for a frozen one): the
        backward returns None there instead of computing it. The others are added into .grad."""
        (cache,) = self.saved()
        needs = needs_grads(params)
        dx, *grads = backward_fn(grad_out, cache, needs)
        for param, grad, need in zip(params, grads, needs):
            if need:
                param.grad += grad
        return dx

    # ---- structure ----------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return [child for _, child in self.named_children()]

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs: own parameters first, then each child's, in
        assignment order. Parameterless modules yield nothing."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield (f"{prefix}.{name}" if prefix else name), value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.data.size for p in self.parameters())

    # ---- state --------------------------------------------------------------------------
    def state_dict(self):
        """An ordered name -> array copy of every parameter."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters by name (cast to each parameter's dtype).

        strict=True: missing, unexpected and mis-shaped keys are all listed in one ValueError.
        strict=False: only keys present on both sides are loaded; shapes must still match.
        Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: state must be a mapping of name -> array, got {describe(state)}")
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        misshaped = [
            f"{k}: expected {own[k].data.shape}, got {np.shape(state[k])}"
            for k in own
            if k in state and np.shape(state[k]) != own[k].data.shape
        ]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if misshaped:
            problems.append(f"mis-shaped keys: {misshaped}")
        if problems:
            raise ValueError(f"load_state_dict ({type(self).__name__}): " + "; ".join(problems))
        for name, p in own.items():
            if name in state:
                p.data[...] = np.asarray(state[name])
        return missing, unexpected

    def zero_grad(self):
        for p in self.parameters():
            if p.grad is not None:  # frozen parameters have none
                p.grad.fill(0)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze (True) every parameter below this module; returns self.
        A frozen parameter's .grad is released (see Parameter.requires_grad)."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad_: expected True or False, got {requires_grad!r}")
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def trainable_parameters(self):
        """The parameters with requires_grad=True, in named_parameters() order."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
            if not mode:
                m._cache = None
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Cast every parameter and its gradient to float32 or float64, in place."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"to: dtype must be float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype)
        for m in self.modules():
            m._cache = None
            m.cast_buffers(dtype)
        return self

    def cast_buffers(self, dtype):
        """Called by to(dtype) on every module: a module with a non-parameter dtype of its own
        (e.g. the output dtype of a fixed embedding) overrides this."""

    def param_dtype(self):
        """The dtype this module computes in (its first parameter's), or None if it has none."""
        for p in self.parameters():
            return p.data.dtype
        return None

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()})"]
        for name, child in self.named_children():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines)

    def extra_repr(self):
        return ""


class ModuleList(Module):
    """A list of modules named '0', '1', ... (as diffusers' `down_blocks.0.resnets.1`)."""

    def __init__(self, modules=()):
        super().__init__()
        self._length = 0
        for module in modules:
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {describe(module)}")
        setattr(self, str(self._length), module)
        self._length += 1
        return self

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(self._length)[index]]
        if not -self._length <= index < self._length:
            raise IndexError(f"ModuleList index {index} out of range for length {self._length}")
        return getattr(self, str(index % self._length))

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._length))


class Sequential(ModuleList):
    """Modules applied one after another; backward walks them in reverse."""

    def forward(self, x):
        for module in self:
            x = module(x)
        return x

    def backward(self, grad_out):
        for module in reversed(list(self)):
            grad_out = module.backward(grad_out)
        return grad_out
