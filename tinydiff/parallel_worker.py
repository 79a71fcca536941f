"""The worker side of tinydiff.parallel.DataParallel: the pipe protocol (arrays as raw bytes
after a JSON header, no pickle), the shared-memory layout of the parameters, and the loop a
worker process runs. Read tinydiff/parallel.py first; this is its other half.
"""

import contextlib
import json
import signal
import sys
import traceback
from multiprocessing import shared_memory

import numpy as np

from tinydiff import kernels
from tinydiff.kernels import blas, threads


# ---- arrays over a pipe, without pickle ------------------------------------------------------

def _send(conn, tag, arrays=(), **extra):
    """A JSON header (tag, dtypes and shapes, extra fields), then each array's bytes."""
    arrays = [None if a is None else np.ascontiguousarray(a) for a in arrays]
    header = {"tag": tag, "arrays": [None if a is None else [a.dtype.str, list(a.shape)] for a in arrays],
              **extra}
    conn.send_bytes(json.dumps(header).encode())
    for a in arrays:
        if a is not None:
            conn.send_bytes(memoryview(a).cast("B"))


def _receive(conn):
    """(header dict, list of arrays or None) as _send sent them."""
    header = json.loads(conn.recv_bytes().decode())
    arrays = []
    for spec in header["arrays"]:
        if spec is None:
            arrays.append(None)
            continue
        dtype, shape = spec
        arrays.append(np.frombuffer(conn.recv_bytes(), dtype=dtype).reshape(shape).copy())
    return header, arrays


def status_kib(field):
    """A field of /proc/self/status (Linux), in KiB: the workers' memory report, and
    benchmarks/bench_train.py's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss():
    """Reset the kernel's high-water mark of this process's RSS to the current RSS (Linux);
    returns that RSS in KiB."""
    rss = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return rss


def _dropouts(model):
    """The model's Dropout modules that draw (p > 0), in module order."""
    from tinydiff.nn import Dropout

    return [m for m in model.modules() if isinstance(m, Dropout) and m.p > 0]


@contextlib.contextmanager
def _single_threaded():
    """Within the block this thread's kernels run serially (threads.split_run runs its parts in
    turn) and BLAS on one thread: each process keeps to its own core."""
    with threads.serial(), blas.single_threaded():
        yield


class _Layout:
    """Where each parameter sits in one flat shared block."""

    def __init__(self, shapes, dtype):
        self.shapes = [tuple(s) for s in shapes]
        self.dtype = np.dtype(dtype)
        self.offsets = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes]).tolist()
        self.nbytes = max(1, self.offsets[-1] * self.dtype.itemsize)

    def views(self, buffer):
        flat = np.ndarray((self.offsets[-1],), dtype=self.dtype, buffer=buffer)
        return [flat[a:b].reshape(s) for a, b, s in zip(self.offsets, self.offsets[1:], self.shapes)]


# ---- the worker process -----------------------------------------------------------------------

# the calling process went away: its end of the pipe closed
_PARENT_GONE = (EOFError, BrokenPipeError, ConnectionResetError)


def _attach(name):
    """Open the calling process's shared block `name` (its resource tracker, which the spawned
    worker shares, already knows the block: the calling process creates and removes it)."""
    return shared_memory.SharedMemory(name=name)


def _worker_main(conn, config_json, shapes, dtype, data_name, grad_name):
    """A worker: build the model, map its parameters and gradients onto the shared blocks, then
    answer "forward" and "backward" requests until "close" (or the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the calling process's to handle
    data_shm = grad_shm = model = None
    rss_at_mark = None
    try:
        from tinydiff.pipelines.checkpoint import model_from_config

        layout = _Layout(shapes, dtype)
        data_shm = _attach(data_name)
        grad_shm = _attach(grad_name)
        model = model_from_config(json.loads(config_json), source="DataParallel")
        for p, data, grad in zip(model.parameters(), layout.views(data_shm.buf), layout.views(grad_shm.buf)):
            p.data, p.grad = data, grad
        dropouts = _dropouts(model)
        _send(conn, "ready")
        with _single_threaded():
            while True:
                header, arrays = _receive(conn)
                if header["tag"] == "close":
                    break
                if header["tag"] == "forward":
                    model.train(header["training"])
                    for module, seed in zip(dropouts, header["dropout_seeds"]):
                        module.rng = np.random.default_rng(seed)
                    with kernels.use(header["backend"]):  # the calling process's backend
                        _send(conn, "output", [model(*arrays[:header["n_inputs"]])])
                elif header["tag"] == "backward":
                    model.zero_grad()
                    with kernels.use(header["backend"]):
                        grads = model.backward(arrays[0])
                    _send(conn, "done", grads if isinstance(grads, tuple) else [grads])
                elif header["tag"] == "memory_mark":
                    rss_at_mark = reset_peak_rss()
                    _send(conn, "marked")
                elif header["tag"] == "memory_peak":
                    if rss_at_mark is None:
                        raise RuntimeError("memory_peak before memory_mark")
                    _send(conn, "peak", [np.array([status_kib("VmHWM") - rss_at_mark])])
    except _PARENT_GONE:  # the calling process went away (killed, or it stopped listening): exit quietly
        pass
    except BaseException:
        message = traceback.format_exc()
        try:
            _send(conn, "error", message=message)
        except _PARENT_GONE:
            pass
        except Exception:  # the parent is not listening: leave the traceback on stderr
            sys.stderr.write(message)
            raise SystemExit(1)
    finally:
        for p in model.parameters() if model is not None else []:
            p.data = p.grad = None  # drop the views before the blocks close
        for shm in (data_shm, grad_shm):
            if shm is not None:
                with contextlib.suppress(Exception):
                    shm.close()
