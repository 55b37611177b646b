"""Time the packed forward of two source trees of this package on the same checkpoints, alternated in fresh
processes (so a slow spell of a shared machine hits both), and print the fastest round of each.

    git worktree add /tmp/before <commit>
    python utils/time_two_revisions.py /tmp/before/src src runs/frontier/sst2/dense runs/frontier/sst2/ltp \
        --dense-packed runs/frontier/sst2/dense --data-file ../shared/data/glue/sst2/dev.csv

A checkpoint named with --dense-packed is timed on the method-free packed engine (`PackedBertForSequenceClassification`,
or on a tree that predates it, a Transkimmer with `prune_at_inference=False`); any other loads through
`AutoModelForSequenceClassification`. One thread, batch 1 and 32, the first 256 sentences.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

BATCH_SIZES = (1, 32)
SENTENCES = 256


def load(checkpoint: str, dense_packed: bool):
    from transformers import AutoModelForSequenceClassification

    if not dense_packed:
        return AutoModelForSequenceClassification.from_pretrained(checkpoint)
    try:
        from transformers_prune.models.modeling_packed_bert import PackedBertForSequenceClassification
    except ImportError:
        from transformers_prune.models.modeling_transkimmer import TranskimmerForSequenceClassification

        return TranskimmerForSequenceClassification.from_pretrained(checkpoint, prune_at_inference=False)
    return PackedBertForSequenceClassification.from_pretrained(checkpoint)


def time_one(src: str, checkpoint: str, dense_packed: bool, data_file: str) -> dict[int, float]:
    """Seconds for the first SENTENCES sentences at each batch size, in this process (started with `src` on
    PYTHONPATH, checked below)."""
    import torch
    import transformers_prune
    from transformers import AutoTokenizer

    if not os.path.realpath(transformers_prune.__file__).startswith(os.path.realpath(src)):
        raise SystemExit(f"imported {transformers_prune.__file__}, not the tree {src}")
    torch.set_num_threads(1)
    model = load(checkpoint, dense_packed).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    with open(data_file, encoding="utf-8") as f:
        texts = [row["sentence"] for row in csv.DictReader(f)][:SENTENCES]
    seconds = {}
    for batch_size in BATCH_SIZES:
        batches = [tokenizer(texts[i:i + batch_size], padding=True, return_tensors="pt") for i in range(0, len(texts), batch_size)]
        with torch.inference_mode():
            for batch in batches[:3]:
                model(**batch)
            start = time.perf_counter()
            for batch in batches:
                model(**batch)
        seconds[batch_size] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before_src")
    parser.add_argument("after_src")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--dense-packed", nargs="*", default=[], help="checkpoints to time on the method-free packed engine")
    parser.add_argument("--data-file", required=True, help="CSV with a 'sentence' column")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        src, checkpoint = args.before_src, args.checkpoints[0]
        print(json.dumps(time_one(src, checkpoint, checkpoint in args.dense_packed, args.data_file)))
        return
    best: dict[tuple, float] = {}
    trees = {"before": args.before_src, "after": args.after_src}
    for _ in range(args.rounds):
        for checkpoint in args.checkpoints:
            for tree, src in trees.items():
                command = [sys.executable, __file__, src, src, checkpoint, "--data-file", args.data_file, "--worker",
                           "--dense-packed", *args.dense_packed]
                env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}
                result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                for batch_size, seconds in json.loads(result.stdout.strip().splitlines()[-1]).items():
                    key = (checkpoint, tree, batch_size)
                    best[key] = min(best.get(key, float("inf")), seconds)
    for checkpoint in args.checkpoints:
        kind = "dense-packed" if checkpoint in args.dense_packed else "as saved"
        for batch_size in map(str, BATCH_SIZES):
            before, after = best[(checkpoint, "before", batch_size)], best[(checkpoint, "after", batch_size)]
            print(f"{checkpoint} ({kind}) batch {batch_size}: before {1000 * before / SENTENCES:.2f} ms/sentence, "
                  f"after {1000 * after / SENTENCES:.2f}, after/before {after / before:.3f}")


if __name__ == "__main__":
    main()
