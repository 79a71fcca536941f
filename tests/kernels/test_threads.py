"""split_run shares a range out over Numba's thread count and reports failures."""

import numba
import pytest

from tinydiff.kernels.threads import split_run


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
