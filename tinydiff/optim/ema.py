"""Exponential moving average (EMA) of model weights, the weights diffusion models sample with.

Each update k = 0, 1, 2, ... moves every shadow weight towards the current one:

    shadow <- d_k shadow + (1 - d_k) theta                          (Polyak-style averaging)
    d_k = decay                                  without warm-up
    d_k = min(decay, (1 + k) / (10 + k))         with warm-up (TensorFlow's
                                                 ExponentialMovingAverage with num_updates)

With warm-up, the first updates average over few steps (d_0 = 0.1, d_10 = 0.55), so an EMA of
a short CPU run is not stuck near the random initial weights; after about
10 / (1 - decay) updates the constant decay takes over. Closed forms the tests check: for
weights held at theta after the shadow started at theta_0, after K updates
shadow = P theta_0 + (1 - P) theta with P = decay^K, or, during warm-up,
P = prod_{k<K} (1 + k) / (10 + k) = 1 / binomial(K + 9, 9).
Ho et al. 2020 sample with an EMA of decay 0.9999.
"""

from contextlib import contextmanager

import numpy as np

from tinydiff.optim.checks import check_count, check_keys, check_number, check_params
from tinydiff.optim.checks import check_state_arrays


class EMA:
    """Shadow copies of parameters, averaged by `update()` and swapped in for sampling.

    Parameters
    ----------
    params : iterable of Parameter
        The weights to follow (their `.data`); the shadow starts as a copy of them.
    decay : float
        In [0, 1]; 0 copies the weights, 1 freezes the shadow.
    warmup : bool
        Use d_k = min(decay, (1 + k) / (10 + k)) (see the module docstring).

    Usage, in a training loop::

        ema = EMA(model.parameters(), decay=0.999)
        ...                              # each step: optimizer.step(); ema.update()
        with ema.swap_in():              # the model now holds the averaged weights
            samples = sample(model)      # and gets its training weights back afterwards
    """

    def __init__(self, params, decay=0.999, warmup=True):
        self.params = check_params(params, "EMA", need_grad=False)
        self.decay = check_number(decay, "decay", 0.0, 1.0)
        if not isinstance(warmup, (bool, np.bool_)):
            raise TypeError(f"warmup: expected True or False, got {warmup!r}")
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = [p.data.copy() for p in self.params]
        self._stored = None

    def current_decay(self):
        """The d_k the next update() will use."""
        k = self.num_updates
        if self.warmup:
            return min(self.decay, (1.0 + k) / (10.0 + k))
        return self.decay

    def update(self):
        """shadow <- d_k shadow + (1 - d_k) theta, for every parameter."""
        one_minus_d = 1.0 - self.current_decay()
        for s, p in zip(self.shadow, self.params):
            s -= one_minus_d * (s - p.data)  # = d s + (1 - d) theta; d = 1 leaves s exact
        self.num_updates += 1

    def copy_to(self, params=None):
        """Write the averaged weights into `params` (default: the followed ones)."""
        targets = self.params
        if params is not None:
            targets = check_params(params, "EMA.copy_to", need_grad=False)
        if len(targets) != len(self.shadow):
            raise ValueError(f"EMA.copy_to: expected {len(self.shadow)} parameters, got "
                             f"{len(targets)}")
        for i, (s, p) in enumerate(zip(self.shadow, targets)):
            if p.data.shape != s.shape:
                raise ValueError(f"EMA.copy_to: parameter {i} has shape {p.data.shape}, "
                                 f"its average has shape {s.shape}")
            p.data[...] = s

    def store(self):
        """Keep a copy of the current (training) weights, to restore() after sampling."""
        self._stored = [p.data.copy() for p in self.params]

    def restore(self):
        """Put back the weights saved by store()."""
        if self._stored is None:
            raise RuntimeError("EMA.restore: nothing stored; call store() first")
        for p, saved in zip(self.params, self._stored):
            p.data[...] = saved
        self._stored = None

    @contextmanager
    def swap_in(self):
        """Within the block the parameters hold the averages; afterwards (even after an
        exception) their training values again."""
        self.store()
        self.copy_to()
        try:
            yield self
        finally:
            self.restore()

    def state_dict(self):
        """Numbers decay, warmup, num_updates and arrays shadow.i (copies), flat."""
        state = {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates}
        for i, s in enumerate(self.shadow):
            state[f"shadow.{i}"] = s.copy()
        return state

    def load_state_dict(self, state):
        """Restore from `state_dict()` output; ValueError on missing, extra or misshapen."""
        check_keys(state, ("decay", "warmup", "num_updates"), "EMA")
        shadow = check_state_arrays(state, "shadow", self.params, "EMA")
        known = {"decay", "warmup", "num_updates"} | {f"shadow.{i}" for i in range(len(shadow))}
        unexpected = sorted(set(state) - known)
        if unexpected:
            raise ValueError(f"EMA.load_state_dict: unexpected keys {unexpected[:8]}")
        decay = check_number(state["decay"], "decay", 0.0, 1.0)
        count = check_count(state["num_updates"], "num_updates", "EMA")
        if not isinstance(state["warmup"], (bool, np.bool_)):
            raise ValueError(f"EMA.load_state_dict: warmup must be True or False, got "
                             f"{state['warmup']!r}")
        self.decay, self.warmup, self.num_updates = decay, bool(state["warmup"]), count
        self.shadow = shadow

    def __repr__(self):
        return (f"EMA({len(self.params)} parameters, decay={self.decay}, warmup={self.warmup}, "
                f"num_updates={self.num_updates})")
