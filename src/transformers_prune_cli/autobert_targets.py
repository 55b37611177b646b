"""`transformers-prune autobert-targets`: TR-BERT's imitation scores and teacher logits from a fine-tuned BERT.

One forward and backward pass of the fine-tuned model (eval mode) per training input gives both inputs the later
`autobert` stages read (`training.autobert_targets` defines them): `residual_scores`, which stage "train_rl"
imitates for the first `guide_rate` of its steps, and the teacher logits that `train_teacher` distils from.

- A classifier and a text classification file (`--data-file`; sentence pairs with `--text-pair-column`): the output
  is the input file as JSON lines with the columns `residual_scores` and `teacher_logits` added, which
  `transformers-prune finetune` (or any `Trainer` whose dataset keeps them) feeds to the model.
- A span model and a SQuAD v1.1 file (`--squad-file`): the targets are per tokenised window, so the output is a
  safetensors file of the windows' targets, which `transformers-prune finetune-qa --targets-file` adds to the same
  windows (it refuses them for other windows: another file or order, `--max-length`, `--doc-stride`, or more
  questions than they were computed for; a run on the first N questions is served).

They are precomputed into a file, not computed during training: one pass over the training rows costs about
one training step of the fine-tuned model per example, while computing them on the fly would hold a second
BERT in memory and repeat that cost for every epoch, every stage that reads them (train_rl for the scores,
train_both for the logits) and every alpha tried.

    transformers-prune autobert-targets runs/bert --data-file train.jsonl --text-column text --max-length 512 \\
        --output-file runs/train_autobert.jsonl
    transformers-prune autobert-targets runs/squad-bert --squad-file train.json --max-length 384 --doc-stride 128 \\
        --output-file runs/squad_autobert_targets.safetensors
"""

from __future__ import annotations

import argparse
import time

from .common import add_overwrite_argument, positive_int


def _rounded(values: list, digits: int = 4):
    if isinstance(values, list):
        return [_rounded(value, digits) for value in values]
    return float(f"{values:.{digits}g}")


def _classification_run(args: argparse.Namespace) -> tuple[int, list[int], int]:
    from transformers_prune.data_files import read_labelled_rows, write_rows_with_columns
    from transformers_prune.folders import staged_output_file
    from transformers_prune.training.autobert_targets import compute_targets

    rows = read_labelled_rows(
        args.data_file, args.text_column, args.label_column, args.max_samples, text_pair_column=args.text_pair_column
    )
    scores, logits, layers, reference = compute_targets(
        args.checkpoint, rows.texts, rows.labels, args.max_length, args.batch_size, args.selection_layers,
        args.reference_layer, rows.text_pairs,
    )
    columns = {"residual_scores": _rounded(scores.tolist()), "teacher_logits": _rounded(logits.tolist(), 6)}
    with staged_output_file(args.output_file, args.overwrite, [args.data_file, args.checkpoint]) as f:
        write_rows_with_columns(f, rows.data.rows, columns)
    return len(rows.labels), layers, reference


def _span_run(args: argparse.Namespace) -> tuple[int, list[int], int]:
    from transformers import AutoModelForQuestionAnswering

    from transformers_prune.benchmark.data import load_squad
    from transformers_prune.benchmark.squad import training_windows, window_tokenizer
    from transformers_prune.folders import load_trained_head, staged_output_file
    from transformers_prune.training.autobert_targets import (
        compute_span_targets,
        default_device,
        resolve_layers,
        save_span_targets,
    )

    tokenizer = window_tokenizer(args.checkpoint, args.max_length, args.doc_stride)
    model = load_trained_head(AutoModelForQuestionAnswering, args.checkpoint, "autobert-targets --squad-file").to(default_device())
    layers, reference = resolve_layers(model.config.num_hidden_layers, args.selection_layers, args.reference_layer)
    windows = training_windows(tokenizer, load_squad(args.squad_file, args.max_samples).examples, args.max_length, args.doc_stride)
    settings = {
        "checkpoint": args.checkpoint, "squad_file": args.squad_file, "max_samples": args.max_samples,
        "max_length": args.max_length, "doc_stride": args.doc_stride, "windows": len(windows["input_ids"]),
        "selection_layers": layers, "reference_layer": reference,
    }
    targets = compute_span_targets(model, tokenizer, windows, args.max_length, args.batch_size, layers, reference, settings)
    with staged_output_file(args.output_file, args.overwrite, [args.squad_file, args.checkpoint], binary=True) as f:
        save_span_targets(targets, f)
    return len(windows["input_ids"]), layers, reference


def run(args: argparse.Namespace) -> str:
    from transformers_prune.folders import check_checkpoint_folder, check_max_length, check_output_path

    check_checkpoint_folder(args.checkpoint, need_weights=True)
    if args.data_file and args.doc_stride is not None:
        raise ValueError("--doc-stride windows a SQuAD file; it does not apply to --data-file")
    given_columns = [
        option for option, value in (("--text-column", args.text_column), ("--text-pair-column", args.text_pair_column),
                                     ("--label-column", args.label_column)) if value
    ]
    if args.squad_file and given_columns:
        raise ValueError(f"{' and '.join(given_columns)} name columns of a --data-file; a SQuAD file has none")
    args.text_column, args.label_column = args.text_column or "sentence", args.label_column or "label"
    if args.max_length is None:
        args.max_length = 384 if args.squad_file else 128
    if args.doc_stride is None:
        args.doc_stride = 128
    source = args.squad_file or args.data_file
    check_output_path(args.output_file, args.overwrite, [source, args.checkpoint], is_folder=False)
    check_max_length(args.checkpoint, args.max_length)
    started = time.perf_counter()
    examples, layers, reference = (_span_run if args.squad_file else _classification_run)(args)
    seconds = time.perf_counter() - started
    kind = "SQuAD windows" if args.squad_file else "examples"
    print(
        f"{args.output_file}: residual scores at selection layers {layers} (reference layer {reference}) and teacher "
        f"logits of {examples} {kind} in {seconds:.0f} s ({1000 * seconds / examples:.1f} ms each)"
    )
    return args.output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the fine-tuned BERT (classifier or span model) autobert starts from")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-file", help="CSV or JSON lines with the text and label columns (a classifier's targets)")
    source.add_argument("--squad-file", help="SQuAD v1.1 JSON (a span model's targets, per window)")
    parser.add_argument(
        "--output-file", required=True,
        help="with --data-file: JSON lines, the input rows plus `residual_scores` and `teacher_logits`; with "
        "--squad-file: safetensors, for `finetune-qa --targets-file`",
    )
    add_overwrite_argument(parser, "the output file")
    parser.add_argument("--text-column", help="with --data-file (default sentence)")
    parser.add_argument(
        "--text-pair-column", help="with --data-file: the second text of sentence-pair rows (e.g. sentence2), tokenised as pairs"
    )
    parser.add_argument("--label-column", help="with --data-file (default label)")
    parser.add_argument(
        "--max-length", type=positive_int, default=None,
        help="the truncation length training will use (default 128 with --data-file, 384 with --squad-file)",
    )
    parser.add_argument("--doc-stride", type=positive_int, default=None, help="with --squad-file: as finetune-qa's (default 128)")
    parser.add_argument("--max-samples", type=positive_int, default=None, help="the first N rows or questions (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--selection-layers", type=int, nargs="+", default=None,
        help="0-based layers autobert selects on (default: its config's, [1, L // 2]); must match the model's",
    )
    parser.add_argument(
        "--reference-layer", type=int, default=None, help="1-based layer whose output is the reference (default L - L // 4)"
    )


__all__ = ["add_arguments", "run"]
