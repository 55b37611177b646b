"""`transformers-prune convert`: turn a BERT checkpoint folder into one of our model types (see `conversion`).

    transformers-prune convert --to ltp runs/bert runs/ltp-init --set masking_mode=soft --set final_token_threshold=0.04

A converted folder holds every tensor its model needs: the source's, unchanged, and the method's new ones,
initialised from `--seed`. The output is written whole or not at all; it is never the source, and an existing
non-empty output is replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse

from .choices import MODEL_TYPES
from .common import add_overwrite_argument, parse_assignments


def run(args: argparse.Namespace) -> str:
    from transformers_prune.conversion import convert_bert_checkpoint

    overrides = parse_assignments(args.set)
    output_dir = convert_bert_checkpoint(
        args.source, args.model_type, args.output_dir, seed=args.seed, overwrite=args.overwrite, **overrides
    )
    print(output_dir)
    return output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="BERT checkpoint folder (config.json + weights + tokenizer), any head")
    parser.add_argument("output_dir")
    parser.add_argument("--to", required=True, dest="model_type", help=f"target model type: {', '.join(MODEL_TYPES)}")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config field to set (JSON value)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the method's new parameters (default 0)")
    add_overwrite_argument(parser)


__all__ = ["add_arguments", "run"]
