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
import json
import os

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .command_line import add_overwrite_argument, positive_int
from .deploy import INT8_WEIGHTS, PER_CHANNEL
from .folders import check_checkpoint_folder, check_output_path, load_checkpoint_tokenizer
from .quiet import quiet_transformers

FORMATS = ("onnx",)
AUTO_CLASS_BY_SUFFIX = {
    "ForSequenceClassification": AutoModelForSequenceClassification,
    "ForQuestionAnswering": AutoModelForQuestionAnswering,
    "ForTokenClassification": AutoModelForTokenClassification,
}
# `--head` values: the head whose graph is exported.
HEADS = {
    "sequence-classification": AutoModelForSequenceClassification,
    "question-answering": AutoModelForQuestionAnswering,
    "token-classification": AutoModelForTokenClassification,
    "encoder": AutoModel,
}
ENCODER_TENSORS = ("bert.", "embeddings.", "encoder.", "pooler.")


def _head_tensors(path: str) -> list[str]:
    """Names of the tensors in `path`'s model.safetensors that belong to no encoder (a task head's)."""
    from safetensors import safe_open

    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        return []
    with safe_open(weights, "pt") as f:
        return sorted(name for name in f.keys() if not name.startswith(ENCODER_TENSORS))


def _auto_class(path: str, architecture: str, head: str | None):
    """The Auto class of `--head`, else of the config's architecture; refuses to guess when the config names none
    and the weights hold a head (exporting the bare encoder would drop it)."""
    if head is not None:
        return HEADS[head]
    if architecture:
        return next((auto for suffix, auto in AUTO_CLASS_BY_SUFFIX.items() if architecture.endswith(suffix)), AutoModel)
    head_tensors = _head_tensors(path)
    if head_tensors:
        raise ValueError(
            f"{path}'s config.json names no architecture but its weights hold a head ({', '.join(head_tensors[:3])}); "
            f"choose what to export with --head {{{','.join(HEADS)}}}"
        )
    return AutoModel


def load_for_export(path: str, head: str | None = None):
    """The checkpoint's model with `head` (default: its own, `config.architectures`; none: the bare encoder unless
    the weights hold a head), in eval mode, and its tokenizer. Raises FileNotFoundError for a folder without config.json, ValueError for a model type we do not
    export or weights the checkpoint lacks."""
    from . import COMPRESSED_MODEL_TYPES, MODEL_TYPES

    check_checkpoint_folder(path)
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    supported = ("bert", *MODEL_TYPES, *COMPRESSED_MODEL_TYPES)
    if model_type not in supported:
        raise ValueError(f"{path}: model type {model_type!r} cannot be exported; supported: {', '.join(supported)}")
    config = AutoConfig.from_pretrained(path)
    architecture = (config.architectures or [""])[0]
    auto_class = _auto_class(path, architecture, head)
    with quiet_transformers():  # missing weights are refused below, in our words
        model, loading = auto_class.from_pretrained(path, config=config, output_loading_info=True)
    if loading["missing_keys"]:
        missing = sorted(loading["missing_keys"])
        raise ValueError(
            f"{path} lacks weights of its {type(model).__name__} ({', '.join(missing[:3])}...): the export would bake "
            "freshly initialised values into the graph"
        )
    return model.eval(), load_checkpoint_tokenizer(path)


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
        "--head", choices=HEADS, default=None,
        help="the head to export (default: the one config.json's architectures names)",
    )
    parser.add_argument("--max-length", type=positive_int, help="longest input the graph accepts (default: the model's positions)")


def run(args: argparse.Namespace) -> dict:
    try:
        from .deploy.onnx_export import export_folder
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
