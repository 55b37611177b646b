"""`transformers-prune`: convert checkpoints, fine-tune, run stock HF scripts with our models, run the demo, benchmark."""

from __future__ import annotations

import argparse
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


def _demo(args: argparse.Namespace) -> None:
    from .demo import run

    run(args)


def _finetune(args: argparse.Namespace) -> None:
    from .finetune import run

    run(args)


def _saliency(args: argparse.Namespace) -> None:
    from .saliency import run

    run(args)


def _compress(args: argparse.Namespace) -> None:
    from .compress import run

    run(args)


def _bench(args: argparse.Namespace) -> None:
    from .bench import run

    run(args)


def build_parser() -> argparse.ArgumentParser:
    from .bench import __doc__ as bench_description
    from .bench import add_arguments as add_bench_arguments
    from .demo import add_arguments
    from .finetune import __doc__ as finetune_description
    from .finetune import add_arguments as add_finetune_arguments
    from .compress import __doc__ as compress_description
    from .compress import add_arguments as add_compress_arguments
    from .saliency import __doc__ as saliency_description
    from .saliency import add_arguments as add_saliency_arguments

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

    demo = commands.add_parser("demo", help="fine-tune MiniLM dense and Transkimmer on SST-2, then time inference")
    add_arguments(demo)
    demo.set_defaults(handler=_demo)

    finetune = commands.add_parser(
        "finetune", help="train a checkpoint on a text classification file with the stock Trainer",
        description=finetune_description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_finetune_arguments(finetune)
    finetune.set_defaults(handler=_finetune)

    saliency = commands.add_parser(
        "saliency", help="gradient-x-input saliency targets for adapler-bert from fine-tuned classifiers",
        description=saliency_description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_saliency_arguments(saliency)
    saliency.set_defaults(handler=_saliency)

    compress = commands.add_parser(
        "compress", help="compress a trained BERT's weights offline into a compressed-bert checkpoint",
        description=compress_description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_compress_arguments(compress)
    compress.set_defaults(handler=_compress)

    bench = commands.add_parser(
        "bench", help="quality, FLOPs, tokens and latency of checkpoints against their baselines",
        description=bench_description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(bench)
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"transformers-prune {args.command}: {error}") from error


if __name__ == "__main__":
    main()
