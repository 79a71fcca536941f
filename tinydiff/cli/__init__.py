"""The `tinydiff` command line, one module a command (`tinydiff --help` lists them).

    main.py        the parser and main(): `tinydiff` and `python -m tinydiff` run it
    train.py       tinydiff train, tinydiff train-vae
    run.py         what the two share: the run folder checked first, one-line endings
    sample.py      tinydiff sample
    export.py      tinydiff export --diffusers DIR
    info.py        tinydiff info
    flag_types.py  the argparse type= functions that read and check each flag
"""

from tinydiff.cli.main import main

__all__ = ["main"]
