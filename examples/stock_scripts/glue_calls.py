"""run_glue.py's calls (transformers 5.x) on local CSV or JSON-lines files, offline: the script behind the figures in
docs/stock_scripts.md. The stock script itself scores with `evaluate.load("accuracy")`, which needs the Hub.

    python examples/stock_scripts/glue_calls.py MODEL OUTPUT_DIR --train-file train.csv --validation-file dev.csv \
        --max-train-samples 256 --epochs 3 --learning-rate 2e-4

Tokenises with padding to `--max-seq-length` (run_glue's default), loads with `trust_remote_code=True` and without
importing transformers_prune (as a user of the stock script does), trains with `Trainer`'s defaults (AdamW, linear
decay, batch 8), saves the model, and prints the eval accuracy and, for our token types, the tokens kept per layer
on the packed engine.
"""

import argparse
import json

import torch
from datasets import load_dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)


def kept_per_layer(model, tokenizer, sentences: list[str], max_length: int) -> list[float] | None:
    """The mean fraction of real tokens entering each layer (packed engine); None for a model that drops none."""
    totals, real = None, 0
    with torch.no_grad():
        for start in range(0, len(sentences), 64):
            batch = tokenizer(sentences[start : start + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
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
    args = parser.parse_args()

    set_seed(args.seed)
    kind = "json" if args.train_file.endswith(".json") else "csv"
    raw = load_dataset(kind, data_files={"train": args.train_file, "validation": args.validation_file})
    if args.max_train_samples:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    labels = sorted(raw["train"].unique("label"))
    config = AutoConfig.from_pretrained(args.model, num_labels=len(labels), trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, config=config, trust_remote_code=True)

    def preprocess(examples):
        result = tokenizer(examples["sentence"], padding="max_length", max_length=args.max_seq_length, truncation=True)
        result["label"] = examples["label"]
        return result

    data = raw.map(preprocess, batched=True, remove_columns=["sentence"])

    def accuracy(prediction):
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return {"accuracy": float((logits.argmax(-1) == prediction.label_ids).mean())}

    training = TrainingArguments(
        args.output_dir, num_train_epochs=args.epochs, learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64, logging_steps=8, report_to=[], save_strategy="no", seed=args.seed,
    )
    trainer = Trainer(model=model, args=training, train_dataset=data["train"], eval_dataset=data["validation"],
                      processing_class=tokenizer, data_collator=default_data_collator, compute_metrics=accuracy)
    trainer.train()
    trainer.save_model(args.output_dir)
    metrics = trainer.evaluate()
    kept = kept_per_layer(model.eval(), tokenizer, raw["validation"]["sentence"], args.max_seq_length)
    print(json.dumps({"eval_accuracy": metrics["eval_accuracy"], "kept_per_layer": kept}))


if __name__ == "__main__":
    main()
