"""Run a nogil Numba loop on numba.get_num_threads() plain threads.

Why not prange: with Numba's OpenMP threading layer, worker threads keep spinning for
milliseconds after each parallel region. In a network, NumPy's multi-threaded BLAS (the
convolutions) runs right after Numba kernels (norms, attention), and the spinning workers then
compete with the BLAS threads for the same cores; on 2 cores a convolution whose im2col ran in
a prange loop was about three times slower than with a serial im2col. Plain helper threads
sleep on a queue as soon as their part is done.
"""

import contextlib
import itertools
import os
import queue
import threading

import numba

# LLVM fast-math flags for the kernels' loops: reassociation (so sums vectorise), contraction
# into fused multiply-adds, reciprocal approximations and signed-zero freedom -- but not
# "no NaNs / no infs": a NaN in the input must come out as NaN (and a loss check then names it),
# not be assumed away into undefined results. With error_model="numpy", x / 0 gives inf/NaN as
# in NumPy instead of raising ZeroDivisionError from inside a kernel.
FAST_MATH = {"reassoc", "contract", "arcp", "nsz"}


def split_run(n_items, run_part):
    """Call run_part(start, stop) for contiguous parts of range(n_items), one per thread.

    Uses numba.get_num_threads() threads (so NUMBA_NUM_THREADS is respected), the calling
    thread taking the first part and helper threads kept between calls (_Helpers) the others;
    run_part must release the GIL (a nogil Numba function) for the parts to run at once. An
    exception raised in any part is re-raised here. Called from inside a part, it runs its parts
    one after another on that thread.
    """
    n_parts = max(1, min(numba.get_num_threads(), n_items))
    bounds = [n_items * i // n_parts for i in range(n_parts + 1)]
    errors = []

    def guarded(start, stop):
        try:
            run_part(start, stop)
        except BaseException as error:  # handed to the caller below
            errors.append(error)

    if n_parts == 1 or getattr(_this_thread, "in_part", False):
        for i in range(n_parts):
            guarded(bounds[i], bounds[i + 1])
    else:
        finished = [threading.Event() for _ in range(1, n_parts)]

        def job(i):
            guarded(bounds[i], bounds[i + 1])
            finished[i - 1].set()
        for i, jobs in enumerate(_helpers.queues(n_parts - 1), start=1):
            jobs.put(lambda i=i: job(i))
        _this_thread.in_part = True
        try:
            guarded(bounds[0], bounds[1])
        finally:
            _this_thread.in_part = False
        for event in finished:
            event.wait()
    if errors:
        raise errors[0]


def share_out(n_tasks, run_task, make_state=dict):
    """Run run_task(state, k) for k in range(n_tasks) on numba.get_num_threads() threads, each
    thread taking the next task nobody has taken yet, so that a thread that runs slower (or
    starts later) takes fewer. state = make_state() once per thread (its scratch buffers).
    Called from inside a part (or with one thread), it runs the tasks in turn on this thread.

    Which thread runs which task varies from call to call, so a task must write its own results
    (keep a sum per task and add them up afterwards in task order, if the sums must not depend
    on the timing). An exception raised in any task is re-raised here, as in split_run.
    """
    n_tasks = int(n_tasks)
    if n_tasks <= 0:
        return
    if getattr(_this_thread, "in_part", False) or numba.get_num_threads() == 1:
        state = make_state()  # one thread: one set of scratch buffers
        for k in range(n_tasks):
            run_task(state, k)
        return
    taken = itertools.count()  # next() on it is atomic under the GIL

    def worker(start, stop):
        state = make_state()
        while (k := next(taken)) < n_tasks:
            run_task(state, k)
    split_run(min(n_tasks, numba.get_num_threads()), worker)


_this_thread = threading.local()


@contextlib.contextmanager
def serial():
    """Within the block, split_run and share_out called from this thread run their parts in
    turn on it (as they do inside a part): a process that keeps to one core (tinydiff.parallel)."""
    before = getattr(_this_thread, "in_part", False)
    _this_thread.in_part = True
    try:
        yield
    finally:
        _this_thread.in_part = before


class _Helpers:
    """Helper threads that wait on a queue each and run the jobs put on it.

    Starting a thread per call cost about 60 microseconds, and a glyph UNet training step makes
    some 200 calls. The helpers sleep on their queue between calls (no spinning: the next BLAS
    product or Numba kernel gets the core). A forked child starts with none (the threads are not
    copied into it).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._queues = []

    def queues(self, n):
        """The job queues of n helpers, started on first use."""
        with self._lock:
            while len(self._queues) < n:
                jobs = queue.SimpleQueue()
                threading.Thread(target=_helper_loop, args=(jobs,), daemon=True,
                                 name=f"tinydiff-helper-{len(self._queues) + 1}").start()
                self._queues.append(jobs)
            return self._queues[:n]


def _helper_loop(jobs):
    """A helper thread: run the jobs split_run and share_out queue for it, forever."""
    _this_thread.in_part = True
    while True:
        jobs.get()()


_helpers = _Helpers()
os.register_at_fork(after_in_child=_helpers.__init__)
