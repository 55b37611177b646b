"""`transformers-prune`: convert checkpoints, fine-tune, compute saliencies, compress, run stock HF scripts with our
models, run the demo, benchmark."""

from __future__ import annotations

import argparse
import importlib
import json
import runpy
import sys


def parse_json_or_text(text: str):
    """A command-line value as JSON (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _convert(args: argparse.Namespace) -> None:
    from .convert import convert_bert_checkpoint

    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = parse_json_or_text(value)
    print(convert_bert_checkpoint(args.source, args.model_type, args.output_dir, **overrides))


def _run_script(args: argparse.Namespace) -> None:
    # Importing the package registers the model types and the keep-ratio callback in this process; the stock
    # script then runs unchanged, as if started with `python script.py ...`.
    import transformers_prune  # noqa: F401

    sys.argv = [args.script, *args.script_args]
    runpy.run_path(args.script, run_name="__main__")


# Commands whose module provides `__doc__` (the description), `add_arguments(parser)` and `run(args)`; the command
# is the module name with dashes.
MODULE_COMMANDS = {
    "demo": "fine-tune MiniLM dense and Transkimmer on SST-2, then time inference",
    "finetune": "train a checkpoint on a text classification file with the stock Trainer",
    "saliency": "gradient-x-input saliency targets for adapler-bert from fine-tuned classifiers",
    "autobert_targets": "imitation scores and teacher logits for autobert from a fine-tuned classifier",
    "compress": "compress a trained BERT's weights offline into a compressed-bert checkpoint",
    "bench": "quality, FLOPs, tokens and latency of checkpoints against their baselines",
    "export": "a checkpoint as an ONNX graph (and int8) that runs with onnxruntime alone",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transformers-prune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="turn a BERT checkpoint folder into one of our model types")
    convert.add_argument("source", help="BERT checkpoint folder (config.json + weights + tokenizer), any head")
    convert.add_argument("output_dir")
    convert.add_argument("--to", required=True, dest="model_type", help="target model type, e.g. transkimmer-bert or ltp")
    convert.add_argument("--set", action="append", metavar="KEY=VALUE", help="config field to set (JSON value)")
    convert.set_defaults(handler=_convert)

    run = commands.add_parser("run", help="run a stock HF script (run_glue.py, run_qa.py) with our models registered")
    run.add_argument("script")
    run.add_argument("script_args", nargs=argparse.REMAINDER)
    run.set_defaults(handler=_run_script)

    for name, summary in MODULE_COMMANDS.items():
        module = importlib.import_module(f".{name}", __package__)
        command = commands.add_parser(
            name.replace("_", "-"), help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"transformers-prune {args.command}: {error}") from error


if __name__ == "__main__":
    main()
