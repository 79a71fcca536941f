"""On Linux with glibc, importing tinydiff keeps freed array memory in malloc's heap, so that a
training step's arrays reuse it instead of faulting fresh pages in every step; the user can opt
out, and a MALLOC_*_ setting of their own is left alone."""

import ctypes
import os
import subprocess
import sys

import pytest

# As a training step does: allocate and write 16 arrays of 6 MB (UNet activations at batch 64),
# then free them all; 5 such rounds. Prints the minor page faults of the last 3 rounds and
# tinydiff's malloc setting.
PROBE = """
import resource, tinydiff, numpy as np
from tinydiff.runtime import process_settings
def rounds(n):
    for _ in range(n):
        alive = [np.full(6 * 2**20 // 4, 1.0, dtype=np.float32) for _ in range(16)]
        del alive
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(3)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "|", process_settings.malloc_setting())
"""


def glibc():
    try:
        ctypes.CDLL(None).gnu_get_libc_version
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


def probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if not (k.startswith("MALLOC_") or k in ("TINYDIFF_MALLOC", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, check=True).stdout
    faults, setting = out.split("|")
    return int(faults), setting.strip()


pytestmark = pytest.mark.skipif(not glibc(), reason="the malloc setting is for Linux with glibc")


def test_freed_arrays_are_reused_without_page_faults():
    faults, setting = probe()
    assert "32 MiB" in setting
    assert faults < 1000  # a round that faulted its 96 MB in afresh would take 24,000


def test_opting_out_keeps_glibcs_behaviour():
    faults, setting = probe(TINYDIFF_MALLOC="default")
    assert "TINYDIFF_MALLOC=default" in setting
    assert faults > 10000  # the control: without the setting most of each round faults again


def test_a_users_malloc_variable_wins():
    _, setting = probe(MALLOC_TRIM_THRESHOLD_="131072")
    assert "environment" in setting
