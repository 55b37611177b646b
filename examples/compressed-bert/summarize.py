"""Collect the compressed-bert SST-2 runs into one JSON file and Markdown tables.

For every run folder NAME under RUNS that holds a `compression_report.json`: the report's figures per target
(method, ratio, relative error, mean row cosine, function measures, the SVD baselines at the same ratio), the file
size, SST-2 dev accuracy as compressed (scored here once and cached in NAME/dev_accuracy.json) and after the
fine-tune in NAME-ft (its eval_results.json), and, with --bench, FLOPs and latency from `transformers-prune bench`.
A folder REFERENCE-ft next to them (the uncompressed model given the same fine-tune) is listed as the reference.

    python examples/compressed-bert/summarize.py runs/compress-targets --dev-file ../shared/data/glue/sst2/dev.csv \
        --output docs/results/sst2-compressed/per_target
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import transformers_prune  # noqa: F401  (registers compressed-bert)
from transformers_prune.benchmark.evaluation import score_labelled_rows
from transformers_prune.data_files import read_labelled_rows

REPORT = "compression_report.json"


def dev_accuracy(folder: str, dev_file: str) -> float:
    """SST-2 dev accuracy of a checkpoint, cached in folder/dev_accuracy.json."""
    cache = os.path.join(folder, "dev_accuracy.json")
    if os.path.isfile(cache):
        return json.load(open(cache))["accuracy"]
    data = read_labelled_rows(dev_file, "sentence", "label")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.inference_mode():
        accuracy = score_labelled_rows(model, AutoTokenizer.from_pretrained(folder), data, 128)["accuracy"]
    with open(cache, "w") as f:
        json.dump({"accuracy": accuracy, "dev_file": dev_file}, f)
    return accuracy


def finetuned_accuracy(folder: str) -> float | None:
    results = os.path.join(f"{folder}-ft", "eval_results.json")
    return json.load(open(results))["eval"]["accuracy"] if os.path.isfile(results) else None


def summary(folder: str, dev_file: str, bench: dict) -> dict:
    report = json.load(open(os.path.join(folder, REPORT)))
    name = os.path.basename(folder)
    targets = {}
    for target, figures in report["targets"].items():
        baselines = figures["baselines_at_same_ratio"]
        targets[target] = {
            "method": figures["method"], "ratio": figures["ratio"], "relative_error": figures["relative_error"],
            "mean_cosine": figures["mean_cosine"], "function": figures["function"],
            "svd_relative_error": baselines["svd"]["relative_error"],
            "svd_true_norms_relative_error": baselines["svd_true_norms"]["relative_error"],
            "shared_basis_svd_relative_error": baselines.get("shared_basis_svd", {}).get("relative_error"),
        }
    forwards = sorted({module["forward"] for module in report["modules"].values()})
    entry = {
        "method": report["method"], "targets": targets, "forwards": forwards,
        "compressed_modules_ratio": report["compressed_modules"]["ratio"], "model_ratio": report["model"]["ratio"],
        "model_file_bytes": os.path.getsize(os.path.join(folder, "model.safetensors")),
        "function": report["function"], "accuracy": dev_accuracy(folder, dev_file),
        "accuracy_after_finetune": finetuned_accuracy(folder),
        "decoders": {name: decoder["training"] for name, decoder in report["decoders"].items()},
    }
    row = bench.get(f"{name}/compressed-bert")
    if row:
        entry["bench"] = {"gflops_per_input": row["flops_per_example"] / 1e9,
                          **{f"p50_ms_batch_{batch}": figures["p50_ms"] for batch, figures in row["latency"].items()},
                          **{f"x_dense_packed_batch_{batch}": figures["speedup_vs_dense_packed"] for batch, figures in row["latency"].items()}}
    return entry


def markdown(entries: dict, reference: float | None) -> str:
    lines = [
        "| run | target | method | ratio | rel. error (svd / svd true norms / shared-basis svd) | mean cos | hidden cos | "
        "pred. agree | acc, no fine-tune | acc, after fine-tune |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        for target, figures in entry["targets"].items():
            function = figures["function"] or {}
            shared = figures["shared_basis_svd_relative_error"]
            after = entry["accuracy_after_finetune"]
            lines.append(
                f"| {name} | {target} | {figures['method']} | {figures['ratio']:.2f}x | {figures['relative_error']:.3f} "
                f"({figures['svd_relative_error']:.3f} / {figures['svd_true_norms_relative_error']:.3f} / "
                f"{'-' if shared is None else f'{shared:.3f}'}) | {figures['mean_cosine']:.3f} | "
                f"{function.get('hidden_cosine', float('nan')):.3f} | {function.get('prediction_agreement', float('nan')):.3f} | "
                f"{100 * entry['accuracy']:.2f} | {'-' if after is None else f'{100 * after:.2f}'} |"
            )
    if reference is not None:
        lines.append(f"\nUncompressed model after the same fine-tune: {100 * reference:.2f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs")
    parser.add_argument("--dev-file", required=True)
    parser.add_argument("--bench", help="bench.json of `transformers-prune bench` over these runs")
    parser.add_argument("--reference", default="dense", help="run folder name of the uncompressed model (its -ft is the reference)")
    parser.add_argument("--output", required=True, help="path without extension: writes .json and .md")
    parser.add_argument("--produced-by", default="", help="the commands that made the runs, recorded in the JSON")
    args = parser.parse_args()
    bench = json.load(open(args.bench))["models"] if args.bench else {}
    names = sorted(name for name in os.listdir(args.runs) if os.path.isfile(os.path.join(args.runs, name, REPORT)))
    entries = {name: summary(os.path.join(args.runs, name), args.dev_file, bench) for name in names}
    reference = finetuned_accuracy(os.path.join(args.runs, args.reference))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(f"{args.output}.json", "w") as f:
        json.dump({"produced_by": args.produced_by, "reference_accuracy_after_finetune": reference, "checkpoints": entries}, f, indent=1)
    with open(f"{args.output}.md", "w") as f:
        f.write(markdown(entries, reference))
    print(markdown(entries, reference))


if __name__ == "__main__":
    main()
