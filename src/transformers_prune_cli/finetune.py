"""`transformers-prune finetune`: train any checkpoint (plain BERT or one of our model types) on a text
classification CSV/JSON with the stock `Trainer`, save it, and score it on a dev file.

Each stage of a recipe (fine-tune BERT, then a `convert` config edit, then train again) is one call; nothing
here knows about pruning (see `training.fine_tuning`).

    transformers-prune finetune MODEL_DIR --output-dir runs/stage0 --train-file train.csv --validation-file dev.csv

The classes are those of the checkpoint's classifier head, or (from an encoder without one) 0 to the largest
label of the whole training file. Training on rows of a single class is refused unless `--allow-single-class`:
a file sorted by label (IMDB's) gives one class in its first rows; `--shuffle-seed` draws the rows at random.
The output folder is written whole at the end (training runs in a temporary folder beside it); an existing
non-empty one, also the model's own folder, is replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import os

from .common import add_overwrite_argument, add_training_arguments, positive_int

RESULTS_FILE = "eval_results.json"


def run(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from transformers_prune.benchmark.evaluation import score_labelled_rows
    from transformers_prune.data_files import first_label_outside, read_labelled_rows
    from transformers_prune.folders import (
        check_checkpoint_folder,
        check_max_length,
        check_output_path,
        load_checkpoint_tokenizer,
        staged_output_folder,
    )
    from transformers_prune.resources import bundled_file
    from transformers_prune.training.fine_tuning import TrainingSettings, classifier_num_labels, tokenize_for_training, train

    train_file = bundled_file("sst2_train_8k.csv") if args.train_file is None else args.train_file
    validation_file = bundled_file("sst2_dev.csv") if args.validation_file is None else args.validation_file
    data_files = [path for path in (train_file, validation_file) if path]
    check_checkpoint_folder(args.model, need_weights=True)
    check_output_path(args.output_dir, args.overwrite, data_files)
    check_max_length(args.model, args.max_length)
    config = AutoConfig.from_pretrained(args.model)
    columns = (args.text_column, args.label_column)
    train_rows = read_labelled_rows(train_file, *columns, args.max_train_samples, args.shuffle_seed)
    dev_rows = None
    if validation_file:
        dev_rows = read_labelled_rows(validation_file, *columns, args.max_eval_samples, args.shuffle_seed)
    num_labels = classifier_num_labels(config, train_rows, args.allow_single_class)
    if dev_rows is not None and (problem := first_label_outside(dev_rows, num_labels)):
        raise ValueError(problem)

    tokenizer = load_checkpoint_tokenizer(args.model)
    torch.manual_seed(args.seed)  # the fresh classifier head, when the checkpoint has none
    names = {}
    if args.label_names:
        if len(args.label_names) != num_labels:
            raise ValueError(f"--label-names gives {len(args.label_names)} names for {num_labels} classes")
        names = {"id2label": dict(enumerate(args.label_names)), "label2id": {name: i for i, name in enumerate(args.label_names)}}
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=num_labels, **names)
    settings = TrainingSettings.from_arguments(args)
    results = {"train_examples": len(train_rows.labels), "num_labels": num_labels}
    with staged_output_folder(args.output_dir, args.overwrite, data_files) as staged:
        train(model, tokenizer, tokenize_for_training(train_rows, tokenizer, args.max_length), staged, settings)
        if dev_rows is not None:
            results["eval"] = score_labelled_rows(model, tokenizer, dev_rows, args.max_length)
        with open(os.path.join(staged, RESULTS_FILE), "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    if dev_rows is not None:
        print(
            f"{args.output_dir}: accuracy {results['eval']['accuracy']:.4f}, "
            f"kept fraction {results['eval']['kept_fraction']:.3f} on {len(dev_rows.labels)} rows of {validation_file}"
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint folder: plain BERT or any transformers_prune model type")
    parser.add_argument("--output-dir", required=True)
    add_overwrite_argument(parser, "the output folder (also the model's own folder, to train it in place)")
    parser.add_argument("--train-file", help="CSV or JSON lines (default: 8,000 SST-2 sentences bundled in the package)")
    parser.add_argument(
        "--validation-file", help="scored after training; '' to skip (default: SST-2's 872 dev sentences, bundled)"
    )
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label", help="class ids 0, 1, ...")
    parser.add_argument("--max-train-samples", type=positive_int, default=None, help="the first N rows (default: all)")
    parser.add_argument("--max-eval-samples", type=positive_int, default=None, help="the first N rows (default: all)")
    parser.add_argument(
        "--shuffle-seed", type=int, default=None,
        help="shuffle the rows of each file with random.Random(N) before taking the first --max-*-samples "
        "(default: file order)",
    )
    parser.add_argument("--allow-single-class", action="store_true", help="train even if the rows used hold one class")
    parser.add_argument(
        "--label-names", nargs="+", metavar="NAME",
        help="the classes' names in label order (e.g. negative positive): the model's id2label, which pipeline() and "
        "the exported runner print (default: the checkpoint's, or LABEL_0, LABEL_1, ...)",
    )
    parser.add_argument("--max-length", type=positive_int, default=128)
    add_training_arguments(parser, batch_size=32)


__all__ = ["add_arguments", "run"]
