"""Peak memory of one attention forward+backward, for benchmarks/bench_kernels.py: the growth
of a fresh process's peak resident memory (Linux), and the peak of NumPy's traced allocations."""

import subprocess
import sys
import tracemalloc

import numba


_RSS_PROBE = """
import sys
import numpy as np
impl, heads, tokens, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
shape = ({batch}, heads, tokens, d)
q, k, v, dout = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))
if impl == "torch":
    import torch, torch.nn.functional as F
    torch.set_num_threads({threads})
    tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
    run = lambda: F.scaled_dot_product_attention(tq, tk, tv).backward(torch.from_numpy(dout))
else:
    from tinydiff import kernels as K
    fwd, bwd = ((K.attention_forward, K.attention_backward) if impl == "numba"
                else (K.attention_forward_ref, K.attention_backward_ref))
    def run():
        out, lse = fwd(q, k, v)
        bwd(dout, q, k, v, out, lse)
    small = [a[:1, :1, :2] for a in (q, k, v, dout)]  # compile / load kernels before measuring
    if impl == "numba":
        out, lse = fwd(*small[:3]); bwd(small[3], *small[:3], out, lse)
def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
before = status_kb("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: reset the peak-RSS mark (VmHWM) to the current RSS
run()
print(status_kb("VmHWM:") - before)
"""


def rss_peak_mb(impl, heads, tokens, d, batch):
    """Growth of peak resident memory (MB) over one fwd+bwd, in a fresh process (Linux only).

    The peak mark is reset just before the call, so this is the call's peak above the memory
    the process already held. Same method for every column, so the columns compare; memory the
    allocator recycles from before the call is not counted, which makes it a lower bound.
    """
    code = _RSS_PROBE.format(batch=batch, threads=numba.get_num_threads())
    done = subprocess.run([sys.executable, "-c", code, impl, str(heads), str(tokens), str(d)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) / 1024  # ru_maxrss is in KB on Linux


def tracemalloc_peak_mb(fn):
    """Peak of NumPy-allocated memory during fn() (Numba's in-kernel scratch is not traced)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20
