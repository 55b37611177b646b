"""`transformers-prune export`: a checkpoint as an ONNX graph (and ONNX Runtime int8) or as OpenVINO IR (and NNCF
int8 weights), run without torch.

Any checkpoint of ours or plain BERT, with its head (sequence classification, question answering, token
classification, or none); a token-pruning model's graph drops tokens. The output folder holds `model.onnx`
(`model_int8.onnx` with `--int8`), or with `--format openvino` `openvino_model.xml/.bin` (`openvino_model_int8.*`),
the tokenizer, `export_config.json` and `runner.py`, a runner that needs only numpy, tokenizers and the runtime
(`python OUT/runner.py OUT "some text"`); see `deploy/onnx_export.py`. The export checks its graph against
the torch model on random inputs and fails, writing nothing, when they differ by more than 1e-4 or keep other
tokens per layer. As every command: the output is written whole or not at all, never into an input, and a
non-empty output folder is refused unless `--overwrite`.

    transformers-prune export runs/sst2/dense runs/sst2/dense-onnx --format onnx --int8
    transformers-prune export runs/demo/ltp runs/demo/ltp-openvino --format openvino --int8
"""

from __future__ import annotations

import argparse
import os

from .choices import EXPORT_FORMATS, EXPORT_HEADS, INT8_WEIGHTS
from .common import add_overwrite_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder: plain BERT or any transformers_prune model type")
    parser.add_argument("output_dir", help="folder for the export")
    add_overwrite_argument(parser)
    parser.add_argument(
        "--format", choices=EXPORT_FORMATS, default="onnx",
        help="onnx (default): ONNX Runtime; openvino: OpenVINO IR (the openvino extra)",
    )
    parser.add_argument(
        "--int8", action="store_true",
        help="also write the int8 graph: ONNX Runtime dynamic int8, or OpenVINO with NNCF int8 weights",
    )
    parser.add_argument(
        "--int8-weights", choices=INT8_WEIGHTS, default=None,
        help="with --int8: one weight scale per output channel (default; keeps accuracy) or per matrix "
        "(ONNX Runtime's own default; --format onnx only)",
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

    extra, modules = ("openvino", ("openvino", "nncf")) if args.format == "openvino" else ("onnx", ())
    try:
        from transformers_prune.deploy.onnx_export import export_folder

        for module in modules:
            __import__(module)
    except ImportError as error:
        raise ValueError(f"export --format {args.format} needs the {extra} extra ({error}): pip install 'transformers_prune[{extra}]'") from error

    if args.int8_weights and not args.int8:
        raise ValueError(f"--int8-weights {args.int8_weights} applies to the int8 graph: add --int8")
    check_output_path(args.output_dir, args.overwrite, [args.checkpoint])  # before the model loads
    model, tokenizer = load_for_export(args.checkpoint, args.head)
    config = export_folder(
        model, tokenizer, args.output_dir, int8=args.int8, max_length=args.max_length, overwrite=args.overwrite,
        inputs=(args.checkpoint,), int8_weights=args.int8_weights or PER_CHANNEL, format=args.format,
    )
    def size(name: str) -> int:  # an OpenVINO graph's weights are in the .bin beside its .xml
        paths = [name, *([os.path.splitext(name)[0] + ".bin"] if name.endswith(".xml") else [])]
        return sum(os.path.getsize(os.path.join(args.output_dir, path)) for path in paths)

    sizes = ", ".join(f"{name} {size(name) / 2**20:.1f} MiB" for name in config["files"].values())
    print(
        f"exported {args.checkpoint} ({config['model_type']}, {config['head']}, {config['graph']} graph) to {args.output_dir}: "
        f"{sizes}; outputs {', '.join(config['outputs'])}; fp32 graph ({args.format}) vs torch max abs difference "
        f"{config['check']['max_abs_difference_fp32']:.2g}\nrun it: python {os.path.join(args.output_dir, 'runner.py')} "
        f"{args.output_dir} \"some text\""
    )
    return config
