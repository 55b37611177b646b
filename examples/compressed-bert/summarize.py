"""Collect the compressed-bert SST-2 runs into one JSON file and Markdown tables.

For every run folder NAME under RUNS that holds a `compression_report.json`: the report's figures per target
(method, ratio, relative error, mean row cosine, function measures, the SVD baselines at the same ratio), the file
size, SST-2 dev accuracy as compressed (scored here once and cached in NAME/dev_accuracy.json) and after the
fine-tune in NAME-ft (its eval_results.json), and, with --bench, FLOPs and latency from `transformers-prune bench`.
A folder REFERENCE next to them (the uncompressed model; its eval_results.json gives its accuracy) and REFERENCE-ft
(the same fine-tune given to it) are listed as the reference. The Markdown has one row per checkpoint, one per
compressed target, and per target and nominal ratio the method with the lowest relative error and the one whose
function measure (hidden cosine with only that target compressed) is highest. Run names, not paths, are recorded.

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


def recorded_accuracy(folder: str) -> float | None:
    """The accuracy in folder/eval_results.json (written by `transformers-prune finetune`), None without one."""
    results = os.path.join(folder, "eval_results.json")
    return json.load(open(results))["eval"]["accuracy"] if os.path.isfile(results) else None


def finetuned_accuracy(folder: str) -> float | None:
    return recorded_accuracy(f"{folder}-ft")


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


def nominal_ratio(ratio: float) -> int:
    """The ratio a run asked for (3, 10): the reached ones differ by the rounding of ranks and latent sizes."""
    return round(ratio)


def best_per_target(entries: dict) -> list[dict]:
    """Per (target, nominal ratio): the run and method with the lowest relative error, and with the highest hidden
    cosine (the function measure with only that target compressed)."""
    groups: dict[tuple[str, int], list[tuple[str, dict]]] = {}
    for name, entry in entries.items():
        for target, figures in entry["targets"].items():
            groups.setdefault((target, nominal_ratio(figures["ratio"])), []).append((name, figures))
    rows = []
    for (target, ratio), candidates in sorted(groups.items()):
        error_name, error = min(candidates, key=lambda item: item[1]["relative_error"])
        scored = [item for item in candidates if item[1]["function"]]
        row = {"target": target, "ratio": ratio, "runs": len(candidates),
               "lowest_error": {"run": error_name, "method": error["method"], "relative_error": error["relative_error"],
                                "svd_relative_error": error["svd_relative_error"]}}
        if scored:
            cosine_name, cosine = max(scored, key=lambda item: item[1]["function"]["hidden_cosine"])
            row["highest_hidden_cosine"] = {"run": cosine_name, "method": cosine["method"],
                                            "hidden_cosine": cosine["function"]["hidden_cosine"]}
        rows.append(row)
    return rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(entries: dict, reference: dict, missing: list[str], produced_by: str = "") -> str:
    lines = [f"Made by: {produced_by}", ""] if produced_by else []
    lines += [
        "| run | method | per matrix | whole model | file | forwards | hidden cos | pred. agree | acc, no fine-tune | acc, after fine-tune |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        function = entry["function"] or {}
        lines.append(
            f"| {name} | {entry['method']} | {entry['compressed_modules_ratio']:.2f}x | {entry['model_ratio']:.2f}x | "
            f"{entry['model_file_bytes'] / 1e6:.1f} MB | {', '.join(entry['forwards'])} | "
            f"{function.get('hidden_cosine', float('nan')):.3f} | {function.get('prediction_agreement', float('nan')):.3f} | "
            f"{_percent(entry['accuracy'])} | {_percent(entry['accuracy_after_finetune'])} |"
        )
    lines += [
        "",
        "| run | target | method | ratio | rel. error | svd / svd true norms / shared-basis svd at that ratio | mean cos | "
        "hidden cos | pred. agree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        for target, figures in entry["targets"].items():
            function = figures["function"] or {}
            shared = figures["shared_basis_svd_relative_error"]
            lines.append(
                f"| {name} | {target} | {figures['method']} | {figures['ratio']:.2f}x | {figures['relative_error']:.4f} | "
                f"{figures['svd_relative_error']:.4f} / {figures['svd_true_norms_relative_error']:.4f} / "
                f"{'-' if shared is None else f'{shared:.4f}'} | {figures['mean_cosine']:.3f} | "
                f"{function.get('hidden_cosine', float('nan')):.3f} | {function.get('prediction_agreement', float('nan')):.3f} |"
            )
    lines += [
        "",
        "| target | ratio | runs | lowest rel. error (svd at that ratio) | highest hidden cos |",
        "|---|---|---|---|---|",
    ]
    for row in best_per_target(entries):
        error, cosine = row["lowest_error"], row.get("highest_hidden_cosine")
        best_cosine = "-" if cosine is None else f"{cosine['method']} ({cosine['run']}) {cosine['hidden_cosine']:.3f}"
        lines.append(
            f"| {row['target']} | {row['ratio']} | {row['runs']} | {error['method']} ({error['run']}) "
            f"{error['relative_error']:.4f} ({error['svd_relative_error']:.4f}) | {best_cosine} |"
        )
    notes = []
    if reference["accuracy"] is not None or reference["accuracy_after_finetune"] is not None:
        notes.append(
            f"Uncompressed model ({reference['run']}): {_percent(reference['accuracy'])} as it is, "
            f"{_percent(reference['accuracy_after_finetune'])} after the same fine-tune."
        )
    if missing:
        notes.append(f"No fine-tune result (no eval_results.json): {', '.join(missing)}.")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs")
    parser.add_argument("--dev-file", required=True)
    parser.add_argument("--bench", help="bench.json of `transformers-prune bench` over these runs")
    parser.add_argument("--reference", default="dense", help="run folder name of the uncompressed model, itself and its -ft (default dense)")
    parser.add_argument("--output", required=True, help="path without extension: writes .json and .md")
    parser.add_argument("--produced-by", default="", help="the commands that made the runs, recorded in the JSON")
    args = parser.parse_args()
    bench = json.load(open(args.bench))["models"] if args.bench else {}
    names = sorted(name for name in os.listdir(args.runs) if os.path.isfile(os.path.join(args.runs, name, REPORT)))
    entries = {name: summary(os.path.join(args.runs, name), args.dev_file, bench) for name in names}
    reference_folder = os.path.join(args.runs, args.reference)
    reference = {"run": args.reference, "accuracy": recorded_accuracy(reference_folder),
                 "accuracy_after_finetune": finetuned_accuracy(reference_folder)}
    missing = [f"{name}-ft" for name, entry in entries.items() if entry["accuracy_after_finetune"] is None]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(f"{args.output}.json", "w") as f:
        json.dump({
            "produced_by": args.produced_by, "dev_file": "/".join(os.path.normpath(args.dev_file).split(os.sep)[-3:]), "reference": reference,
            "reference_accuracy_after_finetune": reference["accuracy_after_finetune"], "finetune_missing": missing,
            "best_per_target": best_per_target(entries), "checkpoints": entries,
        }, f, indent=1)
    text = markdown(entries, reference, missing, args.produced_by)
    with open(f"{args.output}.md", "w") as f:
        f.write(text)
    print(text)

if __name__ == "__main__":
    main()
