"""What every command shares on the command line: option values, the common options, and input errors reported
as one line with exit status 2 (`--debug` shows the traceback instead)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from huggingface_hub.errors import StrictDataclassError, StrictDataclassFieldValidationError

# What a user's input can raise: bad values, missing or unwritable files, mistyped config values.
INPUT_ERRORS = (ValueError, OSError, StrictDataclassError)
INPUT_ERROR_STATUS = 2  # as argparse's own usage errors
INTERRUPTED_STATUS = 130  # the shell's status of a process stopped by Ctrl-C
TERMINATED_STATUS = 143  # the shell's status of a process stopped by SIGTERM (timeout, docker stop, schedulers)


def parse_assignments(items: list[str] | None, option: str = "--set") -> dict:
    """`["a=1", "b=x"]` -> `{"a": 1, "b": "x"}` (values as `parse_json_or_text`)."""
    from transformers_prune.text_values import parse_json_or_text

    assignments = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        assignments[key.strip()] = parse_json_or_text(value)
    return assignments


def _positive(convert, kind: str):
    """An argparse type: `convert(text)`, which must be finite and > 0 (a count of 0 never means "all")."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} > 0, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {kind} > 0, got {text}")
        return value

    parse.__name__ = f"positive_{convert.__name__}"
    return parse


positive_int = _positive(int, "an integer")  # counts and sizes
positive_float = _positive(float, "a finite number")  # amounts: epochs, learning rates


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="on an input error, show the full traceback")


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str = "the output folder") -> None:
    parser.add_argument(
        "--overwrite", action="store_true",
        help=f"replace {what} whole if it exists and is not empty (by default that is refused)",
    )


def add_training_arguments(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """The `Trainer` settings every fine-tuning command takes, with its default batch size."""
    parser.add_argument("--epochs", type=positive_float, default=1.0)
    parser.add_argument("--batch-size", type=positive_int, default=batch_size)
    parser.add_argument("--learning-rate", type=positive_float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--logging-steps", type=positive_int, default=50)
    parser.add_argument("--seed", type=int, default=42)


def add_labelled_rows_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """The options of a command that reads labelled rows (`data_files.read_labelled_rows`) and writes them back
    with new columns (`data_files.write_rows_with_columns`)."""
    parser.add_argument("--data-file", required=True, help="CSV or JSON lines with the text and label columns")
    parser.add_argument("--output-file", required=True, help=output_help)
    add_overwrite_argument(parser, "the output file")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-length", type=positive_int, default=128, help="the truncation length training will use")
    parser.add_argument("--max-samples", type=positive_int, default=None, help="the first N rows (default: all)")


class CommandError(SystemExit):
    """Exit status 2 after an input error; its text is the one-line message (already printed to stderr)."""

    def __init__(self, message: str):
        super().__init__(INPUT_ERROR_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Terminated(BaseException):
    """SIGTERM, raised in the main thread (a BaseException, like KeyboardInterrupt: no `except Exception` swallows it)."""


def one_line(error: BaseException) -> str:
    """The error's message on one line; a strict-dataclass type error by its cause ("Field 'x' with value True
    doesn't match any type in ..."), without the repeated per-type details."""
    if isinstance(error, StrictDataclassFieldValidationError) and error.__cause__ is not None:
        error = str(error.__cause__).split(". Errors:")[0]
    return " ".join(str(error).split())


def run_command(name: str, handler: Callable[[argparse.Namespace], object], args: argparse.Namespace):
    """`handler(args)`; an input error becomes `CommandError` (one line on stderr, exit status 2) unless
    `args.debug`, Ctrl-C exits with status 130 and SIGTERM with 143, without a traceback (the commands stage their
    outputs, so an interrupted one leaves its target as it was and removes its staging)."""
    def terminate(signum, frame):
        raise Terminated()

    # SIGTERM ends the process without unwinding by default; as an exception the staged outputs are cleaned up
    # (`finally` blocks) exactly as on Ctrl-C.
    previous_handler = signal.signal(signal.SIGTERM, terminate)
    try:
        return handler(args)
    except Terminated:
        print(f"{name}: terminated", file=sys.stderr)
        raise SystemExit(TERMINATED_STATUS) from None
    except INPUT_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        message = f"{name}: {one_line(error)}"
        print(message, file=sys.stderr)
        raise CommandError(message) from error
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print(f"{name}: interrupted", file=sys.stderr)
        raise SystemExit(INTERRUPTED_STATUS) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


__all__ = [
    "INPUT_ERRORS",
    "CommandError",
    "add_common_arguments",
    "add_labelled_rows_arguments",
    "add_overwrite_argument",
    "add_training_arguments",
    "one_line",
    "parse_assignments",
    "positive_float",
    "positive_int",
    "run_command",
]
