"""`transformers-prune finetune-qa`: train any checkpoint (plain BERT or one of our model types) on extractive
question answering from a SQuAD v1.1-format file with the stock `Trainer`, and save it.

The features are HF `run_qa.py`'s: question + context truncated to `--max-length` (context only), windows
overlapping by `--doc-stride` tokens, each window's target the token span of the question's first answer, or the
[CLS] position when the answer is not inside the window. Score the result with `transformers-prune bench --task
squad --data-file DEV.json`. `--targets-file` adds TR-BERT's per-window imitation scores and teacher span logits
(`transformers-prune autobert-targets --squad-file`, same windows) for `autobert`'s training stages.

    transformers-prune finetune-qa MODEL_DIR --output-dir runs/squad-dense --train-file train.json
"""

from __future__ import annotations

import argparse
import os

from .common import add_overwrite_argument, add_training_arguments, positive_int


def run(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForQuestionAnswering

    from transformers_prune.benchmark.data import load_squad
    from transformers_prune.benchmark.squad import training_windows, window_tokenizer
    from transformers_prune.folders import (
        check_checkpoint_folder,
        check_max_length,
        check_output_path,
        check_safetensors_file,
        staged_output_folder,
    )
    from transformers_prune.training.autobert_targets import attach_span_targets
    from transformers_prune.training.fine_tuning import TrainingSettings, train

    check_checkpoint_folder(args.model, need_weights=True)
    check_output_path(args.output_dir, args.overwrite, [args.model])
    check_max_length(args.model, args.max_length)
    if args.targets_file and not os.path.isfile(args.targets_file):
        raise FileNotFoundError(f"--targets-file {args.targets_file} does not exist")
    if args.targets_file:
        check_safetensors_file(args.targets_file)
    tokenizer = window_tokenizer(args.model, args.max_length, args.doc_stride)
    examples = load_squad(args.train_file, args.max_train_samples).examples
    windows = training_windows(tokenizer, examples, args.max_length, args.doc_stride)
    if args.targets_file:
        windows = attach_span_targets(windows, args.targets_file, args.max_length, args.doc_stride)
    dataset = Dataset.from_dict(windows)
    torch.manual_seed(args.seed)  # the fresh span head, when the checkpoint has none
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    settings = TrainingSettings.from_arguments(args)
    with staged_output_folder(args.output_dir, args.overwrite, [args.model]) as staged:
        train(model, tokenizer, dataset, staged, settings)
    print(f"{args.output_dir}: trained on {len(dataset)} windows of {args.train_file}")
    return {"train_features": len(dataset)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint folder: plain BERT or any transformers_prune model type")
    parser.add_argument("--output-dir", required=True)
    add_overwrite_argument(parser, "the output folder (also the model's own folder, to train it in place)")
    parser.add_argument("--train-file", required=True, help="SQuAD v1.1 JSON ({'data': [{'paragraphs': ...}]})")
    parser.add_argument("--max-train-samples", type=positive_int, default=None, help="the first N questions (default: all)")
    parser.add_argument("--max-length", type=positive_int, default=384)
    parser.add_argument(
        "--doc-stride", type=positive_int, default=128,
        help="overlap of a context's windows, in tokens; a question too long to leave the context more than this is refused",
    )
    parser.add_argument(
        "--targets-file", default=None,
        help="autobert's imitation scores and teacher span logits of these windows (`autobert-targets --squad-file`)",
    )
    add_training_arguments(parser, batch_size=16)


__all__ = ["add_arguments", "run"]
