"""Data parallelism over processes: each process runs the whole model on a slice of the batch.

Why processes. Inside one process, tinydiff splits each kernel (a convolution, a group norm)
over threads, and the Python between kernels runs on one thread while the other cores wait:
on 2 cores a glyph UNet training step keeps about 1.75 cores busy. Running the two halves of
the batch through the model on two threads of one process instead made each thread 25-30%
slower than alone: both threads' layers take turns at Python's interpreter lock (the GIL), and
every hand-over wakes a sleeping thread. Two processes have a GIL each: measured on 2 cores,
two processes running half a batch each at once took 232-244 ms a step each, as long as one
process running its half alone (243 ms), so the pair does a whole batch in that time.

How. DataParallel(model, processes=2) starts processes-1 worker processes (the "spawn" way:
a fresh interpreter that imports tinydiff; a few seconds), each building the same model from
its config. The parameters move into shared memory, so the workers compute with the very arrays
the optimiser updates in place; each worker's gradients go to a shared block of their own.

    parallel = DataParallel(model)                 # model.parameters() now live in shared memory
    out = parallel(x, t, labels)                   # slice i of every batched input -> process i
    parallel.backward(dout)                        # model's .grad: the whole batch's gradients
    optimizer.step()                               # the workers see the new weights
    parallel.close()                               # (or `with DataParallel(model) as parallel:`)

The calling process runs the first slice itself, with its kernels on one thread; the results
are the model's own up to float32 rounding (the gradient sums over the batch are added in two
parts: the first slice's, then each worker's, in worker order, so a seed still gives the same
result). Arrays travel between the processes as raw bytes with a JSON header (no pickle).
Batches smaller than the number of processes run in the calling process alone.

Ctrl-C: the workers ignore SIGINT (the terminal sends it to every process of the job); the
calling process gets KeyboardInterrupt, closes this object and says where the run stopped. A
worker whose calling process died (its pipe closed) exits quietly.

Limits: the model must be one tinydiff builds from its config (tinydiff.pipelines.checkpoint
.model_from_config: UNet2DModel, UNet2DConditionModel (whose encoder_hidden_states (B, N, D) are
sliced like any batched input), MLPDenoiser, ConvClassifier; not AutoencoderKL, whose loss
reads the whole batch's posterior off the model), with all parameters of one dtype, and its
forward must treat the samples of a batch independently (no batch statistics). After close()
(also after an error, which closes the object), arrays taken from the parameters inside the
block no longer point at valid memory: take copies. A worker's dropout draws from its own generator (seeded from the
model's own dropout generator at each step), so dropout masks differ from a single-process
run's, but a seed (and a resumed checkpoint) still gives the same run.
"""

import contextlib
import json
import multiprocessing
import signal
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from tinydiff import kernels
# the worker's half, and the helpers both halves use (status_kib and reset_peak_rss are also
# benchmarks/bench_train_memory.py's)
from tinydiff.runtime.parallel_worker import (_dropouts, _Layout, _receive, _send, _single_threaded,  # noqa: F401
                                              _worker_main, reset_peak_rss, status_kib)

_START_TIMEOUT_S = 300  # a worker imports tinydiff and loads Numba's compiled kernels


def default_processes(batch_size=None):
    """One process per core tinydiff may use (numba.get_num_threads(), so NUMBA_NUM_THREADS
    limits it too), but no more than batch_size // 2 (each slice of a batch then has 2 images
    or more)."""
    import numba

    count = numba.get_num_threads()
    if batch_size is not None:
        count = min(count, max(1, batch_size // 2))
    return max(1, count)


class ParallelRunner:
    """How a Trainer spreads each batch over processes: handed to the Trainer by its caller (the
    CLI, the scripts that trained the shipped models), so that the training loop never reaches
    up to this module.

        parallel = ParallelRunner(default_processes(config.batch_size))
        Trainer(model, scheduler, data, config, out_dir, parallel=parallel).run()

    With processes >= 2 the Trainer's run() opens a DataParallel over the model for the steps it
    runs (so a finished or already resumed-to-the-end run starts no worker) and closes it after;
    with 1 the model runs in this process, as with none at all. The count is not one of the
    run's settings: a run may resume with another (it changes only the rounding of the gradient
    sums, as the thread count does).

    Parameters
    ----------
    processes : int, >= 1
        Processes in all, the calling one included; at most the cores you have.
    """

    def __init__(self, processes):
        if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)):
            raise TypeError(f"processes: expected an integer >= 1, got {processes!r} (a {type(processes).__name__})")
        if processes < 1:
            raise ValueError(f"processes: expected an integer >= 1, got {processes!r}")
        self.processes = int(processes)

    @contextlib.contextmanager
    def running(self, model):
        """Within the block, the object to call (forward) and .backward for `model`: the model
        itself in one process, else a DataParallel over it, closed on the way out."""
        if self.processes == 1:
            yield model
            return
        with DataParallel(model, self.processes) as parallel:
            yield parallel

    def __repr__(self):
        return f"ParallelRunner(processes={self.processes})"


# ---- the calling process ----------------------------------------------------------------------

def _slices(n_items, parts):
    edges = [n_items * i // parts for i in range(parts + 1)]
    return [slice(edges[i], edges[i + 1]) for i in range(parts)]


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while the workers start: a process started with SIGINT ignored keeps it
    ignored (Python installs its KeyboardInterrupt handler only over the default), so a Ctrl-C
    reaches the calling process alone, even while a worker is still importing tinydiff."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; _worker_main ignores SIGINT itself
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)



def _drain_until_exit(process, conn, timeout):
    """Wait for a worker to exit, reading (and dropping) what it still sends: after Ctrl-C or
    an error it may be finishing a reply nobody reads, which must not block it on a full pipe."""
    deadline = time.monotonic() + timeout
    while process.is_alive() and time.monotonic() < deadline:
        try:
            if conn.poll(0.05):
                conn.recv_bytes()
        except (EOFError, OSError):
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            return


class DataParallel:
    """Run `model` on `processes` processes, each taking a slice of every batch (see above).

    Parameters
    ----------
    model : Module
        A model with a `config` (model_from_config must rebuild it). Its parameters are moved
        into shared memory for as long as this object is open, and back out by close().
    processes : int, >= 2
        Processes in all, the calling one included; at most the cores you have.
    """

    def __init__(self, model, processes=2):
        from tinydiff.pipelines.checkpoint import model_config

        if not isinstance(processes, (int, np.integer)) or isinstance(processes, bool) or processes < 2:
            raise ValueError(f"DataParallel: processes must be an int >= 2, got {processes!r}")
        if not hasattr(model, "config"):
            raise TypeError(f"DataParallel: model must have a `config` to be rebuilt in each process, "
                            f"got {type(model).__name__}")
        if type(model).__name__ == "AutoencoderKL":
            raise TypeError("DataParallel: an AutoencoderKL's loss reads the whole batch's posterior off "
                            "the model; train it in one process")
        params = model.parameters()
        if not all(p.requires_grad for p in params):
            raise TypeError("DataParallel: the model has frozen parameters (LoRA adapters, or "
                            "requires_grad_(False)); the worker processes rebuild it from its config "
                            "without them: train it in one process")
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"DataParallel: parameters must share one dtype, got {sorted(map(str, dtypes))}")
        self.model = model
        self.processes = int(processes)
        self._params = params
        self._parts = None
        self._layout = _Layout([p.data.shape for p in params], dtypes.pop())
        self._workers = []
        self._shms = []
        try:
            self._data_shm = self._new_block()
            for p, view in zip(params, self._layout.views(self._data_shm.buf)):
                view[...] = p.data
                p.data = view
            config_json = json.dumps(model_config(model))
            context = multiprocessing.get_context("spawn")
            for i in range(1, self.processes):
                grad_shm = self._new_block()
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_worker_main, name=f"tinydiff-data-parallel-{i}", daemon=True,
                    args=(theirs, config_json, self._layout.shapes, self._layout.dtype.str,
                          self._data_shm.name, grad_shm.name))
                with _sigint_ignored():
                    process.start()
                theirs.close()
                self._workers.append((process, ours, self._layout.views(grad_shm.buf)))
            for i in range(len(self._workers)):
                self._expect(i, "ready", timeout=_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def _new_block(self):
        shm = shared_memory.SharedMemory(create=True, size=self._layout.nbytes)
        self._shms.append(shm)
        return shm

    def _expect(self, i, tag, timeout=None):
        """The next message of worker i, which must carry `tag`; a worker's error is re-raised."""
        process, conn, _ = self._workers[i]
        if timeout is not None and not conn.poll(timeout):
            raise RuntimeError(f"DataParallel: worker {i + 1} did not start within {timeout} s")
        try:
            header, arrays = _receive(conn)
        except (EOFError, OSError):
            process.join(timeout=1)
            raise RuntimeError(f"DataParallel: worker {i + 1} died (exit code {process.exitcode})") from None
        if header["tag"] == "error":
            raise RuntimeError(f"DataParallel: worker {i + 1} failed:\n{header['message']}")
        if header["tag"] != tag:
            raise RuntimeError(f"DataParallel: worker {i + 1} answered {header['tag']!r}, expected {tag!r}")
        return arrays

    def _check_open(self):
        if self._data_shm is None:
            raise RuntimeError("DataParallel: used after close()")

    def __call__(self, *inputs):
        """model(*inputs) over the whole batch: inputs with the batch's length along axis 0 are
        sliced, others (None, a scalar timestep) go to every process as they are."""
        self._check_open()
        return self._closing_on_error(self._forward, inputs)

    def _closing_on_error(self, step, *args):
        """step(*args); any exception closes this object first (a worker's reply may be left
        unread in its pipe, so the next call could not trust what it reads)."""
        try:
            return step(*args)
        except BaseException:
            self.close()
            raise

    def _forward(self, inputs):
        n_b = len(inputs[0])
        if n_b < self.processes:
            self._parts = None
            return self.model(*inputs)
        self._parts = _slices(n_b, self.processes)

        def part(inputs, s):
            return [a[s] if isinstance(a, np.ndarray) and a.ndim and len(a) == n_b else a for a in inputs]
        # each worker's dropout masks from a seed drawn from the model's own dropout generator
        # (so a checkpoint, which keeps those generators' states, resumes the same masks)
        dropouts = _dropouts(self.model) if self.model.training else []
        for (_, conn, _), s in zip(self._workers, self._parts[1:]):
            sliced = part(inputs, s)
            if not all(a is None or isinstance(a, np.ndarray) or np.isscalar(a) for a in sliced):
                raise TypeError("DataParallel: inputs must be arrays, scalars or None")
            _send(conn, "forward", [None if a is None else np.asarray(a) for a in sliced],
                  training=bool(self.model.training), n_inputs=len(sliced),
                  dropout_seeds=[int(m.rng.integers(2**63)) for m in dropouts],
                  backend=kernels.current_backend())
        with _single_threaded():
            first = self.model(*part(inputs, self._parts[0]))
        outputs = [first] + [self._expect(i, "output")[0] for i in range(len(self._workers))]
        return np.concatenate(outputs)

    def backward(self, grad_out):
        """model.backward over the whole batch: adds the batch's parameter gradients into the
        model's .grad (the first slice's, then each worker's) and returns the gradient with
        respect to the first input."""
        self._check_open()
        return self._closing_on_error(self._backward, grad_out)

    def _backward(self, grad_out):
        if self._parts is None:
            return self.model.backward(grad_out)
        for (_, conn, _), s in zip(self._workers, self._parts[1:]):
            _send(conn, "backward", [grad_out[s]], backend=kernels.current_backend())
        with _single_threaded():
            first = self.model.backward(grad_out[self._parts[0]])
        if isinstance(first, tuple):  # (d sample, d encoder_hidden_states) of a UNet2DConditionModel
            first = first[0]
        rest = [self._expect(i, "done")[0] for i in range(len(self._workers))]
        for _, _, grads in self._workers:
            for p, g in zip(self._params, grads):
                p.grad += g
        self._parts = None
        return np.concatenate([first] + rest)

    # ---- memory, for benchmarks (Linux) ------------------------------------------------------
    def reset_worker_peaks(self):
        """Reset each worker's peak RSS (as /proc/self/clear_refs does) to its RSS now."""
        for i, (_, conn, _) in enumerate(self._workers):
            _send(conn, "memory_mark")
            self._expect(i, "marked")

    def worker_peak_rises_mib(self):
        """Each worker's peak RSS since reset_worker_peaks(), minus its RSS then, in MiB."""
        rises = []
        for i, (_, conn, _) in enumerate(self._workers):
            _send(conn, "memory_peak")
            rises.append(float(self._expect(i, "peak")[0][0]) / 1024)
        return rises

    # ---- the model's own interface, for callers that hold this in its place -----------------
    def train(self, mode=True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def parameters(self):
        return self.model.parameters()

    def zero_grad(self):
        self.model.zero_grad()

    @property
    def config(self):
        return self.model.config

    def close(self):
        """Stop the workers and move the parameters back into ordinary arrays."""
        for process, conn, _ in self._workers:
            with contextlib.suppress(Exception):
                _send(conn, "close")
        for process, conn, _ in self._workers:
            _drain_until_exit(process, conn, timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            conn.close()
        self._workers = []
        if getattr(self, "_data_shm", None) is not None:
            for p in self._params:
                p.data = np.array(p.data)  # out of shared memory, before the block goes
            for module in self.model.modules():
                module._cache = None  # saved forward passes may hold the shared arrays
            self._data_shm = None
        for shm in self._shms:
            with contextlib.suppress(Exception):
                shm.close()
            with contextlib.suppress(Exception):
                shm.unlink()
        self._shms = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
