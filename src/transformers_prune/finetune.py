"""`transformers-prune finetune`: train any checkpoint (plain BERT or one of our model types) on a text
classification CSV/JSON with the stock `Trainer`, save it, and score it on a dev file.

Each stage of a recipe (fine-tune BERT, then a `convert` config edit, then train again) is one call; nothing
here knows about pruning: the model's loss carries the method's auxiliary term, and the keep-ratio callback
that `import transformers_prune` installs logs kept fractions.

    transformers-prune finetune MODEL_DIR --output-dir runs/stage0 --train-file train.csv --validation-file dev.csv
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

import torch
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

from .benchmark.data import ClassificationData
from .benchmark.inputs import ClassificationInputs
from .benchmark.runner import DeviceBatches, evaluate
from .convert import check_checkpoint_folder
from .resources import bundled_file


@dataclass
class TrainingSettings:
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    logging_steps: int = 50
    seed: int = 42


def read_text_classification(path: str, text_column: str, label_column: str, max_samples: int | None = None):
    """A CSV or JSON(-lines) file as a `datasets.Dataset` with the two columns checked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path} does not exist")
    kind = "json" if path.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")) else "csv"
    data = load_dataset(kind, data_files=path, split="train")
    missing = {text_column, label_column} - set(data.column_names)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; it has {data.column_names}")
    if max_samples:
        data = data.select(range(min(max_samples, len(data))))
    return data


def read_class_labelled(path: str, text_column: str, label_column: str, max_samples: int | None, purpose: str):
    """`read_text_classification`, plus the texts and labels as lists; labels must be integer classes."""
    data = read_text_classification(path, text_column, label_column, max_samples)
    labels = list(data[label_column])
    if not all(isinstance(label, int) for label in labels):
        raise ValueError(f"{purpose} needs integer class labels in {label_column!r}")
    return data, list(data[text_column]), labels


def add_labelled_rows_arguments(parser, output_help: str) -> None:
    """The options of a command that reads labelled rows (`read_class_labelled`) and writes them back with new
    columns (`write_rows_with_columns`)."""
    parser.add_argument("--data-file", required=True, help="CSV or JSON lines with the text and label columns")
    parser.add_argument("--output-file", required=True, help=output_help)
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-length", type=int, default=128, help="the truncation length training will use")
    parser.add_argument("--max-samples", type=int, default=None)


def write_rows_with_columns(path: str, rows, columns: dict[str, list]) -> None:
    """JSON lines: each row of `rows` (a `datasets.Dataset`) with the new `columns` (one value per row) added."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for index, row in enumerate(rows):
            f.write(json.dumps({**row, **{name: values[index] for name, values in columns.items()}}) + "\n")


def train(model, tokenizer, train_dataset, output_dir: str, settings: TrainingSettings) -> list[dict]:
    """Stock `Trainer` run; saves model and tokenizer to `output_dir` and returns the log history."""
    training_args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        weight_decay=settings.weight_decay,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(output_dir)
    with open(os.path.join(output_dir, "log_history.json"), "w", encoding="utf-8") as f:
        json.dump(trainer.state.log_history, f, indent=1)
    return trainer.state.log_history


# Columns a model reads besides the tokenizer's: AdapLeR's saliency targets (`transformers-prune saliency`),
# TR-BERT's imitation scores and teacher logits (`transformers-prune autobert-targets`).
MODEL_INPUT_COLUMNS = ("saliency", "residual_scores", "teacher_logits")


def tokenize_for_training(data, tokenizer, text_column: str, label_column: str, max_length: int):
    tokenized = data.map(lambda rows: tokenizer(rows[text_column], truncation=True, max_length=max_length), batched=True)
    kept = (label_column, *MODEL_INPUT_COLUMNS)
    return tokenized.remove_columns([c for c in data.column_names if c not in kept]).rename_column(label_column, "labels")


def score(model, tokenizer, data, text_column: str, label_column: str, max_length: int, source: str) -> dict:
    """Accuracy, FLOPs and kept fraction on `data` (see `benchmark.runner.evaluate`)."""
    dev = ClassificationData(list(data[text_column]), list(data[label_column]), source, f"{len(data)} rows")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = DeviceBatches(ClassificationInputs(tokenizer, dev, max_length=max_length), device)
    return evaluate(model.to(device), batches.get(32), batches.inputs)


def run(args: argparse.Namespace) -> dict:
    train_data = read_text_classification(args.train_file, args.text_column, args.label_column, args.max_train_samples)
    dev_data = (
        read_text_classification(args.validation_file, args.text_column, args.label_column, args.max_eval_samples)
        if args.validation_file else None
    )
    check_checkpoint_folder(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    num_labels = max(train_data[args.label_column]) + 1
    torch.manual_seed(args.seed)  # the fresh classifier head, when the checkpoint has none
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=num_labels)
    settings = TrainingSettings(args.epochs, args.batch_size, args.learning_rate, args.weight_decay, args.logging_steps, args.seed)
    train_dataset = tokenize_for_training(train_data, tokenizer, args.text_column, args.label_column, args.max_length)
    train(model, tokenizer, train_dataset, args.output_dir, settings)
    results = {"train_examples": len(train_dataset)}
    if dev_data is not None:
        results["eval"] = score(model, tokenizer, dev_data, args.text_column, args.label_column, args.max_length, args.validation_file)
        print(
            f"{args.output_dir}: accuracy {results['eval']['accuracy']:.4f}, "
            f"kept fraction {results['eval']['kept_fraction']:.3f} on {len(dev_data)} rows of {args.validation_file}"
        )
    with open(os.path.join(args.output_dir, "eval_results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint folder: plain BERT or any transformers_prune model type")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--train-file", default=bundled_file("sst2_train_8k.csv"), help="CSV or JSON lines")
    parser.add_argument("--validation-file", default=bundled_file("sst2_dev.csv"), help="scored after training; '' to skip")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--logging-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)


__all__ = [
    "TrainingSettings",
    "add_arguments",
    "add_labelled_rows_arguments",
    "read_class_labelled",
    "read_text_classification",
    "run",
    "score",
    "train",
    "write_rows_with_columns",
]
