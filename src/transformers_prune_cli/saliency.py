"""`transformers-prune saliency`: per-token saliency targets for AdapLeR's contribution predictors.

For each example of a text classification file, the saliency of token t is the L2 norm over the hidden size of
(d z_y / d e_t) * e_t: gradient x input at the embedding layer's output e, for the gold label's logit z_y, from a
fine-tuned classifier in eval mode (the original's `store_saliencies.py`). With several checkpoints (the original
uses its three best fine-tuning epochs) the saliencies are averaged. `--text-pair-column` reads sentence pairs
(tokenised as pairs, as run_glue.py does); a regression checkpoint (one label, e.g. STS-B) takes real-valued labels
and its one output stands for z_y. The output is the input file as JSON lines
with a `saliency` column (one value per token position, zero-padded to `--max-length`), which
`transformers-prune finetune` (or any `Trainer` whose dataset keeps the column) feeds to `adapler-bert`.

    transformers-prune saliency runs/stage0 --data-file train.csv --output-file runs/train_saliency.jsonl
"""

from __future__ import annotations

import argparse
import time

from .common import add_labelled_rows_arguments, positive_int


def run(args: argparse.Namespace) -> str:
    from transformers import AutoConfig

    from transformers_prune.data_files import read_labelled_rows, write_rows_with_columns
    from transformers_prune.folders import check_checkpoint_folder, check_max_length, check_output_path, staged_output_file
    from transformers_prune.training.saliency import compute_saliencies

    for checkpoint in args.checkpoints:
        check_checkpoint_folder(checkpoint, need_weights=True)
    check_output_path(args.output_file, args.overwrite, [args.data_file, *args.checkpoints], is_folder=False)
    for checkpoint in args.checkpoints:
        check_max_length(checkpoint, args.max_length)
    regression = AutoConfig.from_pretrained(args.checkpoints[0]).num_labels == 1
    rows = read_labelled_rows(
        args.data_file, args.text_column, args.label_column, args.max_samples,
        text_pair_column=args.text_pair_column, regression=regression,
    )
    started = time.perf_counter()
    saliencies = compute_saliencies(args.checkpoints, rows.texts, rows.labels, args.max_length, args.batch_size, rows.text_pairs)
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
    parser.add_argument("--text-pair-column", default=None, help="the second text of sentence-pair rows (e.g. sentence2)")
    parser.add_argument("--batch-size", type=positive_int, default=32)


__all__ = ["add_arguments", "run"]
