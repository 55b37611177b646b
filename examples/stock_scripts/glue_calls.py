"""run_glue.py's calls (transformers 5.x) on local CSV or JSON-lines files, offline: the script behind the figures in
docs/stock_scripts.md. The stock script itself scores with `evaluate.load("accuracy")`, which needs the Hub.

    python examples/stock_scripts/glue_calls.py MODEL OUTPUT_DIR --train-file train.csv --validation-file dev.csv \
        --max-train-samples 256 --epochs 3 --learning-rate 2e-4

Follows run_glue.py where it decides: text columns (`sentence1` + `sentence2` when both exist, else the first two
columns that are not `label`, else the only one), regression when the labels are floats, labels mapped to ids in
sorted order. Tokenises with padding to `--max-seq-length` (run_glue's default), loads with `trust_remote_code=True`
and without importing transformers_prune (as a user of the stock script does), trains with `Trainer`'s defaults
(AdamW, linear decay, batch 8) and saves the model (or, with `--evaluate-only`, run_glue.py without `--do_train`,
only evaluates MODEL), and prints run_glue's metric (accuracy, or mse for regression),
the task's own (Matthews correlation for two classes, Pearson's r for regression) and, for our token types, the
tokens kept per layer on the packed engine.
"""

import argparse
import json

import numpy as np
import torch
from datasets import DatasetDict, load_dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)


def text_columns(column_names: list[str]) -> tuple[str, str | None]:
    """run_glue.py's rule for local files."""
    others = [name for name in column_names if name != "label"]
    if "sentence1" in others and "sentence2" in others:
        return "sentence1", "sentence2"
    return (others[0], others[1]) if len(others) >= 2 else (others[0], None)


def task_metrics(predictions: np.ndarray, labels: np.ndarray, is_regression: bool) -> dict[str, float]:
    """run_glue.py's metric for local files (accuracy, or mse), and the task's own: Matthews correlation for two
    classes (CoLA's), Pearson's r for regression (STS-B's)."""
    if is_regression:
        return {"mse": float(((predictions - labels) ** 2).mean()), "pearson": float(np.corrcoef(predictions, labels)[0, 1])}
    metrics = {"accuracy": float((predictions == labels).mean())}
    if set(np.unique(labels)) <= {0, 1}:
        tp, tn = np.sum((predictions == 1) & (labels == 1)), np.sum((predictions == 0) & (labels == 0))
        fp, fn = np.sum((predictions == 1) & (labels == 0)), np.sum((predictions == 0) & (labels == 1))
        denominator = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        metrics["matthews_correlation"] = float((tp * tn - fp * fn) / denominator) if denominator else 0.0
    return metrics


def kept_per_layer(model, tokenizer, texts: tuple[list[str], ...], max_length: int) -> list[float] | None:
    """The mean fraction of real tokens entering each layer (packed engine); None for a model that drops none."""
    totals, real = None, 0
    with torch.no_grad():
        for start in range(0, len(texts[0]), 64):
            chunk = [column[start : start + 64] for column in texts]
            batch = tokenizer(*chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            counts = getattr(model(**batch), "tokens_per_layer", None)
            if counts is None:
                return None
            totals = counts.sum(0).float() if totals is None else totals + counts.sum(0).float()
            real += int(batch["attention_mask"].sum())
    return [round(value, 3) for value in (totals / real).tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("output_dir")
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--validation-file", required=True)
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate MODEL as it is (run_glue.py without --do_train)")
    parser.add_argument(
        "--text-columns", nargs="+",
        help="the text column(s), instead of run_glue.py's rule: the one-line edit its comments invite, which a file "
        "with AdapLeR's `saliency` column needs (the rule would read that column as the second sentence)",
    )
    args = parser.parse_args()

    set_seed(args.seed)
    # Each file by its own extension (run_glue.py wants one for both): the recipes score CSV-trained models on JSON rows.
    raw = DatasetDict({split: load_dataset("json" if path.endswith(".json") else "csv", data_files=path, split="train")
                       for split, path in (("train", args.train_file), ("validation", args.validation_file))})
    if args.max_train_samples:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    is_regression = raw["train"].features["label"].dtype in ("float32", "float64")
    label_to_id = None if is_regression else {label: i for i, label in enumerate(sorted(raw["train"].unique("label")))}
    num_labels = 1 if is_regression else len(label_to_id)
    config = AutoConfig.from_pretrained(args.model, num_labels=num_labels, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, config=config, trust_remote_code=True)
    if label_to_id is not None:
        model.config.label2id = label_to_id
        model.config.id2label = {i: label for label, i in label_to_id.items()}
    first, second = text_columns(raw["train"].column_names)
    text_keys = tuple(args.text_columns or ((first,) if second is None else (first, second)))

    def preprocess(examples):
        result = tokenizer(*(examples[key] for key in text_keys), padding="max_length", max_length=args.max_seq_length, truncation=True)
        if label_to_id is not None:
            result["label"] = [label_to_id[label] for label in examples["label"]]
        return result

    data = raw.map(preprocess, batched=True, remove_columns=list(text_keys))

    def compute_metrics(prediction):
        outputs = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions = np.squeeze(outputs) if is_regression else outputs.argmax(-1)
        return task_metrics(predictions, prediction.label_ids, is_regression)

    training = TrainingArguments(
        args.output_dir, num_train_epochs=args.epochs, learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64, logging_steps=8, report_to=[], save_strategy="no", seed=args.seed,
    )
    trainer = Trainer(model=model, args=training, train_dataset=data["train"], eval_dataset=data["validation"],
                      processing_class=tokenizer, data_collator=default_data_collator, compute_metrics=compute_metrics)
    if not args.evaluate_only:
        trainer.train()
        trainer.save_model(args.output_dir)
    metrics = {key[len("eval_"):]: value for key, value in trainer.evaluate().items() if key.startswith("eval_")}
    validation_texts = tuple(raw["validation"][key] for key in text_keys)
    kept = kept_per_layer(model.eval(), tokenizer, validation_texts, args.max_seq_length)
    print(json.dumps({**{key: metrics[key] for key in ("accuracy", "matthews_correlation", "mse", "pearson") if key in metrics},
                      "kept_per_layer": kept}))


if __name__ == "__main__":
    main()
