"""Check a module's hand-written backward against central finite differences, in float64.

With a random upstream gradient g, the scalar L(inputs, params) = sum(g * module(inputs))
has dL/dx = module.backward(g) for every input x and dL/dp = p.grad for every parameter p.
Each is compared, element by element, with (L(x + e) - L(x - e)) / (2 e) (central
differences: error O(e^2) from truncation plus O(|L| * 1e-16 / e) from round-off).

It checks the module on the kernel backend in use (tinydiff.kernels.use): the tests run it on
both, so that the fast kernels and their NumPy reference twins are each held to the definition.
"""

import numpy as np


def as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def checked_indices(size, max_elements, rng):
    """All flat indices, or a reproducible random subset of max_elements of them."""
    if size <= max_elements:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_elements, replace=False))


def numerical_gradient(loss, array, indices, eps):
    """d loss / d array at the given flat indices, perturbing `array` in place (restored)."""
    flat = array.reshape(-1)  # a view: perturbing it perturbs what forward reads
    grad = np.empty(len(indices))
    for j, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = loss()
        flat[i] = original - eps
        minus = loss()
        flat[i] = original
        grad[j] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(module, inputs, rng, eps=1e-6, rtol=1e-5, atol=1e-8, max_elements=300):
    """Compare every input and parameter gradient of `module` with finite differences.

    Parameters
    ----------
    module : Module
        Cast to float64 and put in training mode here.
    inputs : tuple
        Forward inputs; float arrays are cast to float64 and checked, others (integer
        indices, None) are passed through unchecked.
    rng : numpy.random.Generator
        Draws the upstream gradient and, for large arrays, which elements to check.
    max_elements : int
        At most this many elements of each array are checked.

    Returns
    -------
    dict name -> max abs error, for reporting. Raises AssertionError naming the first array
    whose gradient disagrees, with the worst element.
    """
    module.to(np.float64).train()
    inputs = tuple(
        np.array(x, dtype=np.float64) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x
        for x in inputs
    )
    out = module(*inputs)
    g = rng.standard_normal(np.shape(out))
    module.zero_grad()
    analytic_inputs = as_tuple(module.backward(g.copy()))

    def loss():
        return float(np.sum(g * module(*inputs)))

    targets = []
    for k, x in enumerate(inputs):
        if isinstance(x, np.ndarray) and x.dtype == np.float64:
            if analytic_inputs[k] is None:
                raise AssertionError(f"input {k}: backward returned None for a float input")
            targets.append((f"input {k}", x, analytic_inputs[k]))
    for name, p in module.named_parameters():
        if p.requires_grad:  # a frozen parameter has no gradient to check
            targets.append((name, p.data, p.grad.copy()))

    report = {}
    for name, array, analytic in targets:
        if analytic.shape != array.shape:
            raise AssertionError(f"{name}: gradient shape {analytic.shape} != array shape {array.shape}")
        idx = checked_indices(array.size, max_elements, rng)
        numeric = numerical_gradient(loss, array, idx, eps)
        picked = analytic.reshape(-1)[idx]
        err = np.abs(picked - numeric)
        tol = atol + rtol * np.maximum(np.abs(numeric), np.abs(picked)).max(initial=1.0)
        report[name] = float(err.max(initial=0.0))
        if np.any(err > tol):
            worst = int(np.argmax(err))
            raise AssertionError(
                f"{name}: analytic and numerical gradients differ at flat index {idx[worst]}: "
                f"{picked[worst]!r} vs {numeric[worst]!r} (max abs error {err.max():.3e}, tolerance {tol:.3e})"
            )
    return report
