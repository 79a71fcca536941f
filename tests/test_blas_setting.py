"""Importing tinydiff before NumPy lets OpenBLAS's idle worker threads sleep at once
(OPENBLAS_THREAD_TIMEOUT=16); a value the user exported is kept."""

import os
import subprocess
import sys

SHOW = "import tinydiff, numpy, os; from tinydiff.runtime import process_settings; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), process_settings.blas_thread_timeout())"


def run(code, **env):
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                            check=True)
    return result.stdout.split()


def test_tinydiff_first_sets_the_openblas_thread_timeout():
    assert run(SHOW)[:2] == ["16", "16"]


def test_a_users_openblas_thread_timeout_wins():
    assert run(SHOW, OPENBLAS_THREAD_TIMEOUT="20")[:2] == ["20", "20"]


def test_numpy_first_leaves_the_environment_alone_and_says_so():
    words = run("import numpy; " + SHOW)
    assert words[0] == "None" and words[1] == "28,"
