"""`transformers-prune`: convert checkpoints, fine-tune, compute saliencies, compress, run stock HF scripts with our
models, run the demo, benchmark.

An input error (a missing or malformed file, a bad option or config value) ends the command with one line on
stderr and exit status 2; `--debug` shows the traceback instead.

The command line is a package of its own, beside the library it drives, because importing any part of
`transformers_prune` registers its model types (torch and transformers: seconds of CPU); here `--help` imports
neither, and each command imports the library when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import add_common_arguments, run_command

# Command -> (its module, a summary). Each module provides `__doc__` (the description), `add_arguments(parser)`
# and `run(args)`; it is imported only when its command runs, so `transformers-prune --help` stays fast.
COMMANDS = {
    "convert": ("convert", "turn a BERT checkpoint folder into one of our model types"),
    "finetune": ("finetune", "train a checkpoint on a text classification file with the stock Trainer"),
    "finetune-qa": ("finetune_qa", "train a checkpoint on SQuAD-format question answering with the stock Trainer"),
    "saliency": ("saliency", "gradient-x-input saliency targets for adapler-bert from fine-tuned classifiers"),
    "autobert-targets": ("autobert_targets", "imitation scores and teacher logits for autobert from a fine-tuned classifier"),
    "compress": ("compress", "compress a trained BERT's weights offline into a compressed-bert checkpoint"),
    "bench": ("bench", "quality, FLOPs, tokens and latency of checkpoints against their baselines"),
    "demo": ("demo", "fine-tune MiniLM on SST-2, prune it with LTP, then time inference"),
    "export": ("export", "a checkpoint as an ONNX graph (and int8) that runs with onnxruntime alone"),
    "run": ("run", "run a stock HF script (run_glue.py, run_qa.py) with our models registered"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `load`, only that command's options are defined (the others list their
    summary), so only its module is imported."""
    parser = argparse.ArgumentParser(
        prog="transformers-prune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        if load is not None and name != load:
            commands.add_parser(name, help=summary)
            continue
        module = importlib.import_module(f".{module_name}", __package__)
        command = commands.add_parser(
            name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command)
        add_common_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(load=chosen if chosen in COMMANDS else "").parse_args(argv)
    run_command(f"transformers-prune {args.command}", args.handler, args)


if __name__ == "__main__":
    main()
