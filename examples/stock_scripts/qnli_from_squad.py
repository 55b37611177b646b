"""A QNLI-like sentence-pair task from SQuAD v1.1 dev, built as GLUE built QNLI: does the sentence answer the question?

For each question, the context sentence holding its first gold answer is the positive pair (label 1) and another
sentence of the same paragraph, drawn at random, the negative one (label 0), so the classes are balanced. Sentences
are cut at `.`, `!` or `?` followed by white space and an upper-case letter, digit or quote (GLUE used a parser;
this rule is close enough for a held-out check: it also cuts after abbreviations such as "Dr.", and for about 1% of
the questions the answer then runs past its sentence, which holds the answer's start). The articles are split, not
the questions: the first `--train-articles` titles (in the file's order) give the training rows, the rest the dev
rows (the first `--dev-rows` of them), so no paragraph is in both. Rows are shuffled with `--seed` and written as CSV
with the columns `question,sentence,label`, which run_glue.py reads as a sentence pair. The folder is written whole
or not at all (`transformers_prune.folders.staged_output_folder`).

Usage: python examples/stock_scripts/qnli_from_squad.py ../shared/data/squad/v1.1/dev.jsonl OUT_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys

from transformers_prune.folders import check_output_path, staged_output_folder

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def sentence_spans(context: str) -> list[tuple[int, int]]:
    """Character spans of the context's sentences."""
    spans, start = [], 0
    for match in SENTENCE_END.finditer(context):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(context)))
    return spans


def pairs(record: dict, rng: random.Random) -> list[dict]:
    """The positive and one negative pair of a question; none when its paragraph has one sentence."""
    context = record["context"]
    spans = sentence_spans(context)
    answer = record["answers"]["answer_start"][0]
    holding = next(i for i, (start, end) in enumerate(spans) if start <= answer <= end)
    others = [i for i in range(len(spans)) if i != holding]
    if not others:
        return []
    negative = rng.choice(others)
    return [
        {"question": record["question"], "sentence": context[slice(*spans[holding])], "label": 1},
        {"question": record["question"], "sentence": context[slice(*spans[negative])], "label": 0},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("squad_jsonl", help="SQuAD v1.1 as JSON lines (id, title, context, question, answers)")
    parser.add_argument("output_dir", help="a new (or empty) folder for train.csv and dev.csv")
    parser.add_argument("--train-articles", type=int, default=36, help="the first N articles train, the rest are dev")
    parser.add_argument("--dev-rows", type=int, default=1000, help="keep this many dev rows (after shuffling)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT_DIR whole")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.squad_jsonl):
        sys.exit(f"no such file: {args.squad_jsonl}")
    try:
        check_output_path(args.output_dir, args.overwrite, inputs=[args.squad_jsonl])
    except (ValueError, FileExistsError) as error:
        sys.exit(str(error))
    with open(args.squad_jsonl, encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    titles = list(dict.fromkeys(record["title"] for record in records))
    if not 0 < args.train_articles < len(titles):
        sys.exit(f"--train-articles must be between 1 and {len(titles) - 1} ({len(titles)} articles)")
    training_titles = set(titles[: args.train_articles])
    rng = random.Random(args.seed)
    splits = {"train": [], "dev": []}
    for record in records:
        splits["train" if record["title"] in training_titles else "dev"].extend(pairs(record, rng))
    with staged_output_folder(args.output_dir, args.overwrite, inputs=[args.squad_jsonl]) as staged:
        for name, rows in splits.items():
            rng.shuffle(rows)
            if name == "dev":
                del rows[args.dev_rows :]
            with open(os.path.join(staged, f"{name}.csv"), "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=["question", "sentence", "label"])
                writer.writeheader()
                writer.writerows(rows)
            print(f"{name}: {len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
