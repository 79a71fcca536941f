"""What every lesson script (lessons/NN_topic.py) starts with: its flags and its output folder.

    from tinydiff.lesson import LessonParser  # before NumPy (see below)
    import numpy as np
    ...
    args = LessonParser("01_forward_noising", "Lesson 01: forward noising",
                        fast_help="smaller image, for smoke tests").parse()
    OUT = args.out  # a Path: created, and printed for the student

Every lesson has --out DIR (default outputs/<lesson>, relative to the working directory) and
--fast (smaller sizes, for the test suite's smoke runs); add a lesson's own flags with
parser.add_argument before parse(). In a notebook, where flags cannot be passed,
TINYDIFF_LESSON_OUT=DIR (figures in DIR/<lesson>) and TINYDIFF_LESSON_FAST=1 stand in for
them; arguments the parser does not know (a notebook kernel's own) are ignored.

--backend reference (or TINYDIFF_LESSON_BACKEND=reference) runs the whole lesson on the NumPy
reference kernels through tinydiff.kernels.use, the library's one documented switch: slower,
the same numbers to rounding, and every layer's arithmetic readable (the test suite smoke-runs
lessons this way too). Only this module reads these three variables, and only to set a
lesson's flags.

Why a lesson imports this before NumPy: importing tinydiff first lets it set up the process
before NumPy's OpenBLAS loads (tinydiff/runtime/process_settings.py says what and why; a
training step on 2 cores is about 25% faster). Any tinydiff import does that; this one is
simply the first a lesson needs.
"""

import argparse
import os
from pathlib import Path

from tinydiff.kernels.switch import BACKENDS


class LessonParser(argparse.ArgumentParser):
    """The argument parser of lesson `name` (its file name without .py): --out and --fast.

    Parameters
    ----------
    name : str
        The lesson's file name without ".py"; its default output folder is outputs/<name>.
    description : str
        One line for --help.
    fast_help : str
        What --fast makes smaller, for --help.
    """

    def __init__(self, name, description, fast_help):
        for arg, value in (("name", name), ("description", description), ("fast_help", fast_help)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"LessonParser: {arg} must be a non-empty str, got {value!r}")
        super().__init__(description=description)
        self.name = name
        self.add_argument("--out", type=Path, help="folder for the figures (default: outputs/" + name + ")",
                          default=Path(os.environ.get("TINYDIFF_LESSON_OUT", "outputs")) / name)
        self.add_argument("--fast", action="store_true", default=os.environ.get("TINYDIFF_LESSON_FAST") == "1",
                          help=f"{fast_help} (or TINYDIFF_LESSON_FAST=1)")
        self.add_argument("--backend", choices=BACKENDS, default=os.environ.get("TINYDIFF_LESSON_BACKEND", "fast"),
                          help="kernels every layer runs on: fast (Numba) or reference (plain NumPy, slower); "
                               "default fast (or TINYDIFF_LESSON_BACKEND)")

    def parse(self):
        """The parsed flags; args.out exists afterwards and the lesson has said where it is."""
        args, _ = self.parse_known_args()  # tolerate the extra arguments a notebook kernel passes
        if args.backend not in BACKENDS:  # from the environment, which argparse does not check
            self.error(f"--backend: expected one of {BACKENDS} (or TINYDIFF_LESSON_BACKEND), got {args.backend!r}")
        args.out.mkdir(parents=True, exist_ok=True)
        print(f"figures go to {os.path.abspath(args.out)}")
        if args.backend != "fast":
            from tinydiff.kernels import use

            use(args.backend)
            print(f"every layer runs on the {args.backend} kernels (tinydiff.kernels.use)")
        return args
