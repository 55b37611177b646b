"""The table of docs/stock_scripts.md from the result lines run_glue_recipes.sh appends: per task and recipe, the
task's metric (accuracy; Pearson's r for regression; Matthews correlation as well for two classes) as the mean
over seeds with each seed's value, the mean difference from the dense run of the same seed, and the tokens kept
(the mean over layers of the fraction of real tokens each layer processes, over the dev rows, mean over seeds).

    python examples/stock_scripts/summarize.py runs/stock-sst2/results.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from statistics import mean


def metric_names(row: dict) -> list[str]:
    if "pearson" in row:
        return ["pearson"]
    return ["accuracy", "matthews_correlation"] if "matthews_correlation" in row else ["accuracy"]


def table(rows: list[dict]) -> str:
    by_recipe: dict[str, dict[int, dict]] = defaultdict(dict)
    for row in rows:
        by_recipe[row["recipe"]][row["seed"]] = row  # a rerun of a seed replaces the earlier line
    names = metric_names(rows[0])
    dense = by_recipe.get("dense", {})
    lines = [
        "| recipe | " + " | ".join(f"{name} (x100, seeds)" for name in names) + " | vs dense | tokens kept |",
        "|---" * (len(names) + 3) + "|",
    ]
    for recipe, seeds in by_recipe.items():
        cells = []
        for name in names:
            values = [100 * seeds[seed][name] for seed in sorted(seeds)]
            cells.append(f"{mean(values):.2f} ({' / '.join(f'{value:.2f}' for value in values)})")
        paired = [100 * (seeds[seed][names[0]] - dense[seed][names[0]]) for seed in seeds if seed in dense]
        versus = "" if recipe == "dense" or not paired else f"{mean(paired):+.2f}"
        kept = [mean(seeds[seed]["kept_per_layer"]) for seed in seeds if seeds[seed].get("kept_per_layer")]
        cells += [versus, f"{100 * mean(kept):.1f}%" if kept else "100%"]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.jsonl files of run_glue_recipes.sh")
    args = parser.parse_args()
    rows = [json.loads(line) for path in args.results for line in open(path, encoding="utf-8") if line.strip()]
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    for task, task_rows in by_task.items():
        print(f"## {task}\n\n{table(task_rows)}\n")


if __name__ == "__main__":
    main()
