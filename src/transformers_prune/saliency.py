"""`transformers-prune saliency`: per-token saliency targets for AdapLeR's contribution predictors.

For each example of a text classification file, the saliency of token t is the L2 norm over the hidden size of
(d z_y / d e_t) * e_t: gradient x input at the embedding layer's output e, for the gold label's logit z_y, from a
fine-tuned classifier in eval mode (the original's `store_saliencies.py`). With several checkpoints (the original
uses its three best fine-tuning epochs) the saliencies are averaged. The output is the input file as JSON lines
with a `saliency` column (one value per token position, zero-padded to `--max-length`), which
`transformers-prune finetune` (or any `Trainer` whose dataset keeps the column) feeds to `adapler-bert`.

    transformers-prune saliency runs/stage0 --data-file train.csv --output-file runs/train_saliency.jsonl
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification

from .command_line import add_labelled_rows_arguments, positive_int
from .data_files import read_labelled_rows, write_rows_with_columns
from .folders import check_checkpoint_folder, check_max_length, check_output_path, load_checkpoint_tokenizer, load_trained_head, staged_output_file


def token_saliency(model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """`[B, S]` gradient-x-input L2 saliency at the embedding output for each example's gold-label logit; 0 on
    padding. Examples do not interact in BERT, so one backward pass of the summed gold logits serves the batch."""
    captured = {}

    def keep_output(module, args, output):
        captured["embeddings"] = output

    handle = model.base_model.embeddings.register_forward_hook(keep_output)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    gold_logits = logits.gather(1, labels[:, None]).sum()
    (gradient,) = torch.autograd.grad(gold_logits, captured["embeddings"])
    return (gradient * captured["embeddings"]).norm(dim=-1).detach() * inputs["attention_mask"]


def compute_saliencies(checkpoints: list[str], texts: list[str], labels: list[int], max_length: int, batch_size: int) -> torch.Tensor:
    """`[num_examples, max_length]` saliencies averaged over `checkpoints` (all with the first one's tokenizer)."""
    tokenizer = load_checkpoint_tokenizer(checkpoints[0])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    total = torch.zeros(len(texts), max_length)
    for checkpoint in checkpoints:
        model = load_trained_head(AutoModelForSequenceClassification, checkpoint, "saliency").to(device)
        if max(labels) >= model.config.num_labels:
            raise ValueError(f"{checkpoint} has {model.config.num_labels} labels but the data has label {max(labels)}")
        for start in tqdm(range(0, len(texts), batch_size), desc=f"saliency {os.path.basename(checkpoint)}"):
            inputs = tokenizer(
                texts[start : start + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            batch_labels = torch.tensor(labels[start : start + batch_size], device=device)
            saliency = token_saliency(model, dict(inputs), batch_labels).cpu()
            total[start : start + len(saliency), : saliency.shape[1]] += saliency
    return total / len(checkpoints)


def run(args: argparse.Namespace) -> str:
    for checkpoint in args.checkpoints:
        check_checkpoint_folder(checkpoint, need_weights=True)
    check_output_path(args.output_file, args.overwrite, [args.data_file, *args.checkpoints], is_folder=False)
    for checkpoint in args.checkpoints:
        check_max_length(checkpoint, args.max_length)
    rows = read_labelled_rows(args.data_file, args.text_column, args.label_column, args.max_samples)
    started = time.perf_counter()
    saliencies = compute_saliencies(args.checkpoints, rows.texts, rows.labels, args.max_length, args.batch_size)
    seconds = time.perf_counter() - started
    rounded = [[round(value, 6) for value in saliency] for saliency in saliencies.tolist()]
    with staged_output_file(args.output_file, args.overwrite, [args.data_file, *args.checkpoints]) as f:
        write_rows_with_columns(f, rows.data.rows, {"saliency": rounded})
    examples = len(rows.labels)
    print(
        f"{args.output_file}: saliencies of {examples} examples from {len(args.checkpoints)} checkpoint(s) "
        f"in {seconds:.0f} s ({1000 * seconds / examples / len(args.checkpoints):.1f} ms per example and checkpoint)"
    )
    return args.output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", help="fine-tuned classifier folder(s); saliencies are averaged over them")
    add_labelled_rows_arguments(parser, "JSON lines: the input rows plus a `saliency` column")
    parser.add_argument("--batch-size", type=positive_int, default=32)


__all__ = ["add_arguments", "compute_saliencies", "run", "token_saliency"]
