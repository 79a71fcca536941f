"""The `tinydiff` command line.

    tinydiff --version
    tinydiff info          versions, Numba threading and the BLAS NumPy uses
"""

import argparse
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

    from tinydiff.kernels.probe import parallel_sum

    parallel_sum(np.ones(64))
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    return layer, numba.get_num_threads()


def cmd_info(args):
    import numba
    import numpy as np

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
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinydiff",
        description="Diffusion models from scratch in NumPy and Numba, made to teach.",
    )
    parser.add_argument("--version", action="version", version=f"tinydiff {tinydiff.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="print versions, Numba threading and the BLAS in use")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return args.func(args)
