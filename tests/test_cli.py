import subprocess
import sys

import tinydiff
from tinydiff.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert tinydiff.__version__ in capsys.readouterr().out


def test_info_reports_versions_threads_and_blas(capsys):
    import numba
    import numpy as np

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert np.__version__ in out
    assert numba.__version__ in out
    assert "numba threading layer" in out
    assert f"numba threads          {numba.get_num_threads()}" in out
    assert "numpy BLAS" in out


def test_console_entry_point_runs_as_module():
    done = subprocess.run(
        [sys.executable, "-m", "tinydiff", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"tinydiff {tinydiff.__version__}"
