"""`transformers-prune export`: a checkpoint as an ONNX graph (and ONNX Runtime int8), run without torch.

Any checkpoint of ours or plain BERT, with its head (sequence classification, question answering, token
classification, or none). The output folder holds `model.onnx` (`model_int8.onnx` with `--int8`), the tokenizer,
`export_config.json` and `ort_runner.py`, a runner that needs only numpy, onnxruntime and tokenizers
(`python OUT/ort_runner.py OUT "some text"`); see `deploy/onnx_export.py`. The export checks its graph against
the torch model on random inputs and fails, writing nothing, when they differ by more than 1e-4 or keep other
tokens per layer. As every command: the output is written whole or not at all, never into an input, and a
non-empty output folder is refused unless `--overwrite`.

    transformers-prune export runs/sst2/dense runs/sst2/dense-onnx --format onnx --int8
"""

from __future__ import annotations

import argparse
import os

from .choices import EXPORT_HEADS, INT8_WEIGHTS
from .common import add_overwrite_argument, positive_int

FORMATS = ("onnx",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder: plain BERT or any transformers_prune model type")
    parser.add_argument("output_dir", help="folder for the export")
    add_overwrite_argument(parser)
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default onnx)")
    parser.add_argument("--int8", action="store_true", help="also write model_int8.onnx (ONNX Runtime dynamic int8)")
    parser.add_argument(
        "--int8-weights", choices=INT8_WEIGHTS, default=None,
        help="with --int8: one weight scale per output channel (default; keeps accuracy) or per matrix "
        "(ONNX Runtime's own default)",
    )
    parser.add_argument(
        "--head", choices=EXPORT_HEADS, default=None,
        help="the head to export (default: the one config.json's architectures names)",
    )
    parser.add_argument("--max-length", type=positive_int, help="longest input the graph accepts (default: the model's positions)")


def run(args: argparse.Namespace) -> dict:
    from transformers_prune.deploy import PER_CHANNEL
    from transformers_prune.deploy.checkpoint_loading import load_for_export
    from transformers_prune.folders import check_output_path

    try:
        from transformers_prune.deploy.onnx_export import export_folder
    except ImportError as error:
        raise ValueError(f"export needs the onnx extra ({error}): pip install 'transformers_prune[onnx]'") from error

    if args.int8_weights and not args.int8:
        raise ValueError(f"--int8-weights {args.int8_weights} applies to the int8 graph: add --int8")
    check_output_path(args.output_dir, args.overwrite, [args.checkpoint])  # before the model loads
    model, tokenizer = load_for_export(args.checkpoint, args.head)
    config = export_folder(
        model, tokenizer, args.output_dir, int8=args.int8, max_length=args.max_length, overwrite=args.overwrite,
        inputs=(args.checkpoint,), int8_weights=args.int8_weights or PER_CHANNEL,
    )
    sizes = ", ".join(
        f"{name} {os.path.getsize(os.path.join(args.output_dir, name)) / 2**20:.1f} MiB" for name in config["files"].values()
    )
    print(
        f"exported {args.checkpoint} ({config['model_type']}, {config['head']}, {config['graph']} graph) to {args.output_dir}: "
        f"{sizes}; outputs {', '.join(config['outputs'])}; fp32 graph vs torch max abs difference "
        f"{config['check']['max_abs_difference_fp32']:.2g}\nrun it: python {os.path.join(args.output_dir, 'ort_runner.py')} "
        f"{args.output_dir} \"some text\""
    )
    return config
