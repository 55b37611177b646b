"""Redraw each task's accuracy-speed frontier from its saved benchmark, `docs/results/frontier-TASK/bench.json`
(written by `bash examples/frontier/bench.sh TASK ...`): `frontier.png` (the task metric against throughput at batch
1 and 32; each method's operating points as a curve, the baselines and peers as reference points) and
`frontier.md` (every row, and for each method its best speed-ups within the issue's band of the dense model: 1
point, 1.5 F1 on SQuAD), next to it.
README's Results section is these tables.

    python utils/frontier.py                                        # every docs/results/frontier-*/bench.json
    python utils/frontier.py docs/results/frontier-imdb/bench.json  # one task
"""

from __future__ import annotations

import argparse
import glob
import json
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PLOTTED_BATCH_SIZES = ("1", "32")
# Points of the task metric a method may lose against dense: the "within 1 point" (SST-2, IMDB), "within 1.5 F1".
TOLERANCES = {"squad": 1.5}
DEFAULT_TOLERANCE = 1.0
BASELINE_COLORS = {
    "hf_dynamic": "black", "dense_packed": "grey", "dense_packed+int8": "silver", "ort_fp32": "saddlebrown", "ort_int8": "red",
}
METHOD_NAMES = {
    "transkimmer-bert": "Transkimmer", "ltp": "LTP", "adapler-bert": "AdapLeR", "autobert": "TR-BERT",
}


def percent(value: float, metric: str) -> float:
    """The task metric in points (accuracy is stored as a fraction, SQuAD's F1 and EM as percentages)."""
    return 100 * value if metric == "accuracy" else value


def rows_of(report: dict) -> list[dict]:
    """Every measured row, sweep points included, each with `group` (baseline / method) and `setting`."""
    rows = []
    for name, row in report["models"].items():
        variant = row["variant"]
        if variant == "hf_padded":
            continue
        method = next((m for m in METHOD_NAMES if variant == m or variant.startswith(m + "+")), None)
        setting = "trained" if method else ""
        rows.append({**row, "name": name, "group": method or "baseline", "setting": setting})
        for sweep in row.get("sweeps", ()):
            for point in sweep["points"]:
                rows.append({
                    **point, "variant": variant, "name": name, "group": method, "setting": f"{sweep['key']}={point['value']}",
                })
    return rows


def label(row: dict) -> str:
    if row["group"] == "baseline":
        return row["variant"]
    suffix = row["variant"][len(row["group"]):]
    return METHOD_NAMES[row["group"]] + suffix + (f" ({row['setting']})" if row["setting"] != "trained" else "")


def dense_score(report: dict, metric: str) -> float:
    dense = next(row for row in report["models"].values() if row["variant"] == "dense_packed")
    return percent(dense[metric], metric)


def markdown(report: dict) -> str:
    metric = report["metrics"][0]
    sizes = report["settings"]["batch_sizes"]
    header = ["model", metric, "kept", "GFLOPs", *(f"batch {size}: inputs/s (x HF, x best peer)" for size in sizes)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows_of(report):
        cells = [label(row), f"{percent(row[metric], metric):.2f}", f"{row['kept_fraction']:.3f}", f"{row['flops_per_example'] / 1e9:.3f}"]
        for size in sizes:
            latency = row["latency"][str(size)]
            peer = latency.get("speedup_vs_best_peer")
            cells.append(
                f"{latency['examples_per_s']:.1f} ({latency['speedup_vs_hf_dynamic']:.2f}x"
                + (f", {peer:.2f}x)" if peer is not None else ")")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tolerance(report: dict) -> float:
    return TOLERANCES.get(report["task"], DEFAULT_TOLERANCE)


def best_within_tolerance(report: dict) -> str:
    """Per method: its fastest row within `tolerance` points of dense-packed, at each batch size."""
    metric, reference, band = report["metrics"][0], dense_score(report, report["metrics"][0]), tolerance(report)
    sizes = [str(size) for size in report["settings"]["batch_sizes"]]
    header = ["method", *(f"batch {size}: best x HF / x best peer (row)" for size in sizes)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = rows_of(report)
    for method, name in METHOD_NAMES.items():
        candidates = [row for row in rows if row["group"] == method]
        if not candidates:
            continue
        cells = [name]
        for size in sizes:
            close = [row for row in candidates if percent(row[metric], metric) >= reference - band]
            if not close:
                cells.append(f"none within {band:g} point")
                continue
            best = max(close, key=lambda row: row["latency"][size]["examples_per_s"])
            latency = best["latency"][size]
            peer = latency.get("speedup_vs_best_peer")
            cells.append(
                f"{latency['speedup_vs_hf_dynamic']:.2f}x / " + (f"{peer:.2f}x" if peer is not None else "-")
                + f" ({label(best)}, {percent(best[metric], metric):.2f})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    metric = report["metrics"][0]
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    rows = rows_of(report)
    for axes, size in zip(figure.subplots(1, len(PLOTTED_BATCH_SIZES)), PLOTTED_BATCH_SIZES):
        for row in rows:
            if row["group"] == "baseline" and not row["variant"].startswith("truncated_"):
                axes.scatter(
                    row["latency"][size]["examples_per_s"], percent(row[metric], metric), marker="s",
                    color=BASELINE_COLORS.get(row["variant"], "black"), label=row["variant"],
                )
        truncated = sorted((r for r in rows if r["variant"].startswith("truncated_")), key=lambda r: r["latency"][size]["examples_per_s"])
        if truncated:
            axes.plot(
                [r["latency"][size]["examples_per_s"] for r in truncated], [percent(r[metric], metric) for r in truncated],
                marker="v", linestyle=":", color="dimgrey", label="dense-packed, truncated inputs",
            )
        for method, name in METHOD_NAMES.items():
            curve = sorted(
                (r for r in rows if r["group"] == method and r["variant"] == method),
                key=lambda r: r["latency"][size]["examples_per_s"],
            )
            if not curve:
                continue
            line = axes.plot(
                [r["latency"][size]["examples_per_s"] for r in curve], [percent(r[metric], metric) for r in curve],
                marker="o", label=f"{name} (torch, knob sweep)",
            )[0]
            for exported in (r for r in rows if r["group"] == method and r["variant"] != method):
                axes.scatter(
                    exported["latency"][size]["examples_per_s"], percent(exported[metric], metric),
                    marker="*" if "ort" in exported["variant"] else "^", color=line.get_color(), s=60,
                )
        axes.set_xscale("log")
        axes.set(title=f"{report['task']}, batch size {size} (stars: ONNX Runtime, triangles: torch int8)",
                 xlabel="inputs per second (log)", ylabel=metric)
        axes.title.set_fontsize(9)
    figure.axes[-1].legend(fontsize=7, loc="lower left")
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="*", help="bench.json files (default: docs/results/frontier-*/bench.json)")
    args = parser.parse_args()
    for path in args.reports or sorted(glob.glob("docs/results/frontier-*/bench.json")):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        folder = os.path.dirname(path)
        plot(report, os.path.join(folder, "frontier.png"))
        with open(os.path.join(folder, "frontier.md"), "w", encoding="utf-8") as f:
            f.write(f"## {report['task']}: {report['data']['subset']}\n\n{markdown(report)}\n\n")
            f.write(f"Best speed-up within {tolerance(report):g} point of dense-packed ({dense_score(report, report['metrics'][0]):.2f}):\n\n")
            f.write(best_within_tolerance(report) + "\n")
        print(f"{folder}: frontier.png, frontier.md")


if __name__ == "__main__":
    main()
