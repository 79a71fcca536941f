"""`tinydiff info`: the versions, Numba's threading and the BLAS NumPy uses, for bug reports
and for reading a benchmark's numbers."""

import platform
import sys

import tinydiff


def blas_description():
    """Name and version of the BLAS NumPy was built against, as NumPy reports it."""
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 has no mode argument
        return "unknown (numpy < 1.26 does not report it)"
    blas = config.get("Build Dependencies", {}).get("blas", {})
    name = blas.get("name", "unknown")
    version = blas.get("version", "")
    return f"{name} {version}".strip()


def numba_threading():
    """(threading layer, thread count). The layer is only chosen once a parallel kernel runs,
    so run a tiny one first."""
    import numba
    import numpy as np

    from tinydiff.kernels.probe import start_threading_layer

    start_threading_layer(np.ones(64))
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    return layer, numba.get_num_threads()


def cmd_info(args):
    import numba
    import numpy as np

    from tinydiff.kernels import blas as kernel_blas
    from tinydiff.kernels.conv import describe_path as conv_path

    layer, threads = numba_threading()
    rows = [
        ("tinydiff", tinydiff.__version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("numba threading layer", layer),
        ("numba threads", str(threads)),
        ("numpy BLAS", blas_description()),
        ("BLAS thread timeout", f"OPENBLAS_THREAD_TIMEOUT={tinydiff.blas_thread_timeout()}"),
        ("BLAS threads", kernel_blas.describe()),
        ("malloc", tinydiff.malloc_setting()),
        ("conv2d 3x3", conv_path((3, 3), 1, 1)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
