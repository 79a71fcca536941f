"""Two ways every convolution algorithm here runs over the batch: split over threads, or serial.

- split (when blas.py can set OpenBLAS's thread count, and more than one thread): the batch is
  divided over numba.get_num_threads() plain threads (threads.py), each running its
  data movement (im2col, the Winograd transforms) for a few images at a time into its own
  buffer of about SPLIT_CHUNK_BYTES, which stays in that core's L2 cache, and the products on
  its own thread, OpenBLAS set to one thread meanwhile. Every part of the convolution then runs
  on every core. Measured on 2 cores against the serial way, forward + both backward passes at
  batch 64: 1.5x faster for 32 channels at 16x16, 1.8x at 32x32, 2.0x for 64 channels at 16x16
  (benchmarks/bench_kernels.py prints the current figures).
- serial (NumPy's BLAS is not an OpenBLAS tinydiff can steer, or one thread): the data movement
  on the calling thread in chunks of about CHUNK_BYTES, which stay in the shared L3 cache, and
  the products in the BLAS's own threads. Threads of two runtimes then take turns, and each
  keeps spinning for a while after its turn: OpenBLAS's workers after every product hold the
  second core (for 2^28 cycles by default; importing tinydiff first shortens that to 2^16, see
  tinydiff/__init__.py), and Numba's OpenMP workers after a prange region would too (which made
  the whole convolution about three times slower on 2 cores, see threads.py).
"""

import numba

from tinydiff.kernels import blas
from tinydiff.kernels.threads import share_out, split_run

# The serial way builds and consumes its buffers a few images at a time. A buffer of 16 MB stays
# in the shared L3 cache (32 MB here) between the data movement writing it and BLAS reading it,
# and is reused by malloc from call to call (the whole-batch matrix, 75 MB for 32 channels at
# 32x32, would be mmap-ed and page-faulted afresh on every call).
CHUNK_BYTES = 16 * 2**20
# In the split way each thread's buffer is about this large: within one core's L2 cache
# (256 KB-4 MB measured the same; at least one image is always taken).
SPLIT_CHUNK_BYTES = 2**20


def split_threads():
    """Threads the split way uses, 1 when it is not available."""
    return numba.get_num_threads() if blas.available() else 1


def takes_split(n_b):
    """True when a batch of n_b images takes the split way."""
    return n_b > 1 and split_threads() > 1


def images_per_chunk(n_b, bytes_per_image, chunk_bytes):
    """Images per chunk, so that a buffer of bytes_per_image per image stays near chunk_bytes."""
    return int(min(n_b, max(1, chunk_bytes // bytes_per_image)))


def over_images(n_b, run_images):
    """Call run_images(first, stop, chunk_bytes) over the batch: once per thread on its own
    images (single-threaded BLAS) in the split way, else once on the calling thread."""
    if takes_split(n_b):
        with blas.single_threaded():
            split_run(n_b, lambda first, stop: run_images(first, stop, SPLIT_CHUNK_BYTES))
    else:
        run_images(0, n_b, CHUNK_BYTES)


def summed_over_images(n_b, sum_images):
    """The sum over over_images' parts of the arrays sum_images(first, stop, chunk_bytes)
    returns, added in image order (not in the order the threads finish), so that a seed gives
    the same sums."""
    sums = {}

    def keep(first, stop, chunk_bytes):
        sums[first] = sum_images(first, stop, chunk_bytes)
    over_images(n_b, keep)
    firsts = sorted(sums)
    total = sums[firsts[0]]
    for first in firsts[1:]:
        total += sums[first]
    return total


def over_chunks(n_b, n_chunks, make_scratch, run_chunk):
    """run_chunk(scratch, k) for every chunk k of the batch: shared out over the threads as they
    come free (threads.share_out, single-threaded BLAS) in the split way, else in turn on this
    thread; scratch = make_scratch() once per thread."""
    if takes_split(n_b) and n_chunks > 1:
        with blas.single_threaded():
            share_out(n_chunks, run_chunk, make_scratch)
    else:
        scratch = make_scratch()
        for k in range(n_chunks):
            run_chunk(scratch, k)
