"""`transformers-prune run SCRIPT ARGS`: a stock HF script (run_glue.py, run_qa.py) with our model types registered.

Importing the package registers the model types and the keep-ratio callback in this process; the script then
runs unchanged, as if started with `python SCRIPT ARGS`.
"""

from __future__ import annotations

import argparse
import runpy
import sys


def run(args: argparse.Namespace) -> None:
    import transformers_prune  # noqa: F401  (the registration is the point of this command)

    sys.argv = [args.script, *args.script_args]
    runpy.run_path(args.script, run_name="__main__")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script")
    parser.add_argument("script_args", nargs=argparse.REMAINDER)


__all__ = ["add_arguments", "run"]
