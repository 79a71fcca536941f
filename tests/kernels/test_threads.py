"""split_run shares a range out over Numba's thread count and reports failures; share_out hands
tasks to the threads as they come free."""

import multiprocessing
import threading
import time

import numba
import pytest

from tinydiff.kernels.threads import serial, share_out, split_run


@pytest.mark.parametrize("n_items", [0, 1, 2, 7, 64])
def test_split_run_covers_every_item_once(n_items):
    seen = []
    split_run(n_items, lambda start, stop: seen.extend(range(start, stop)))
    assert sorted(seen) == list(range(n_items))


def test_split_run_uses_numba_thread_count():
    parts = []
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        split_run(10, lambda start, stop: parts.append((start, stop)))
    finally:
        numba.set_num_threads(previous)
    assert parts == [(0, 10)]
    parts.clear()
    split_run(10, lambda start, stop: parts.append((start, stop)))
    assert len(parts) == min(previous, 10)


def test_split_run_reraises_errors_from_any_part():
    def fail_late(start, stop):
        if stop == 10:
            raise RuntimeError("last part failed")

    with pytest.raises(RuntimeError, match="last part failed"):
        split_run(10, fail_late)


def test_split_run_called_from_a_part_runs_its_parts_in_turn():
    seen = []
    lock = threading.Lock()

    def outer(start, stop):
        for i in range(start, stop):
            def inner(a, b, i=i):
                with lock:
                    seen.extend((i, j) for j in range(a, b))
            split_run(3, inner)
    split_run(4, outer)
    assert sorted(seen) == [(i, j) for i in range(4) for j in range(3)]


def test_split_run_keeps_its_helper_threads_between_calls():
    if numba.get_num_threads() < 2:
        pytest.skip("needs 2 or more Numba threads")

    def helpers_of_one_call():
        idents = set()
        split_run(8, lambda start, stop: idents.add(threading.get_ident()))
        return idents - {threading.get_ident()}
    first = helpers_of_one_call()
    assert first and helpers_of_one_call() == first


def _split_in_child(results):
    seen = []
    split_run(10, lambda start, stop: seen.extend(range(start, stop)))
    results.put(sorted(seen))


def test_split_run_works_in_a_forked_child():
    # the parent's helper threads do not exist in a forked child: it must start its own
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    split_run(4, lambda start, stop: None)  # the parent has helpers now
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_split_in_child, args=(results,))
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        pytest.fail("split_run hung in a forked child")
    assert child.exitcode == 0 and results.get(timeout=5) == list(range(10))


@pytest.mark.parametrize("n_tasks", [0, 1, 2, 5, 33])
def test_share_out_runs_every_task_once_with_one_state_per_thread(n_tasks):
    done, states = [], []
    lock = threading.Lock()

    def make_state():
        state = {"thread": threading.get_ident(), "tasks": []}
        with lock:
            states.append(state)
        return state

    def run(state, k):
        assert state["thread"] == threading.get_ident()  # a thread keeps its own state
        state["tasks"].append(k)
        with lock:
            done.append(k)
    share_out(n_tasks, run, make_state)
    assert sorted(done) == list(range(n_tasks))
    assert len(states) == min(n_tasks, numba.get_num_threads())
    assert len({s["thread"] for s in states}) == len(states)


def test_share_out_gives_a_slow_thread_fewer_tasks():
    if numba.get_num_threads() < 2:
        pytest.skip("needs 2 or more Numba threads")
    main = threading.get_ident()
    ran = {"main": 0, "helper": 0}

    def run(state, k):
        if threading.get_ident() == main:
            ran["main"] += 1
            time.sleep(0.02)  # the calling thread is the slow one here
        else:
            ran["helper"] += 1
            time.sleep(0.001)
    share_out(40, run)
    assert ran["main"] + ran["helper"] == 40 and ran["helper"] > 2 * ran["main"]


def test_share_out_reraises_a_tasks_error():
    def run(state, k):
        if k == 3:
            raise ValueError("task 3 failed")
    with pytest.raises(ValueError, match="task 3 failed"):
        share_out(8, run)


def test_serial_runs_parts_and_tasks_on_this_thread_and_restores():
    here = threading.get_ident()
    seen = []
    with serial():
        split_run(8, lambda start, stop: seen.append(threading.get_ident()))
        share_out(5, lambda state, k: seen.append(threading.get_ident()))
    assert set(seen) == {here} and len(seen) == min(8, numba.get_num_threads()) + 5
    if numba.get_num_threads() > 1:
        after = []
        split_run(8, lambda start, stop: after.append(threading.get_ident()))
        assert len(set(after)) > 1  # outside the block, the helpers take parts again
