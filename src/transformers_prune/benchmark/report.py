"""Write a benchmark report: the JSON with every figure, Markdown tables, and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .checkpoints import HF_DYNAMIC, HF_PADDED
from .sweep import sweep_points

OUTPUT_FILES = {
    "json": "bench.json",
    "markdown": "bench.md",
    "accuracy_vs_speedup": "accuracy_vs_speedup.png",
    "tokens_per_layer": "tokens_per_layer.png",
}


def _format_flops(flops: float) -> str:
    return f"{flops / 1e9:.3g}"


def _quality_cells(row: dict, metrics: list[str]) -> list[str]:
    # accuracy is a fraction, SQuAD's EM/F1 are percentages (as the official script prints them)
    return [f"{row[metric]:.4f}" if metric == "accuracy" else f"{row[metric]:.2f}" for metric in metrics]


def quality_table(report: dict) -> str:
    """One line per model: task metrics, GFLOPs per input, FLOP reduction, token rows per layer, kept fraction."""
    metrics = report["metrics"]
    header = ["model", *metrics, "GFLOPs / input", "FLOP reduction", "tokens / layer", "kept"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in report["models"].items():
        cells = [
            name, *_quality_cells(row, metrics), _format_flops(row["flops_per_example"]), f"{row['flop_reduction']:.2f}x",
            f"{row['tokens_per_layer']['mean']:.1f}", f"{row['kept_fraction']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(report: dict) -> str:
    """One line per model and batch size: p50/p90 per batch, throughput, speed-ups, efficiency."""
    header = [
        "model", "batch", "p50 ms", "p90 ms", "inputs/s", "tokens/s", "x HF dynamic", "x HF sorted", "x dense-packed",
        "x best peer", "efficiency",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in report["models"].items():
        for batch_size, latency in row["latency"].items():
            cells = [
                name, batch_size, f"{latency['p50_ms']:.2f}", f"{latency['p90_ms']:.2f}", f"{latency['examples_per_s']:.1f}",
                f"{latency['tokens_per_s']:.0f}", f"{latency['speedup_vs_hf_dynamic']:.2f}x",
                f"{latency['speedup_vs_hf_sorted']:.2f}x" if "speedup_vs_hf_sorted" in latency else "-",
                f"{latency['speedup_vs_dense_packed']:.2f}x",
                f"{latency['speedup_vs_best_peer']:.2f}x" if "speedup_vs_best_peer" in latency else "-",
                f"{latency['efficiency']:.2f}" if "efficiency" in latency else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(report: dict) -> str | None:
    """One line per sweep point: metrics, FLOP reduction, kept fraction, speed-up against HF dynamic per batch size."""
    swept = [(name, sweep) for name, row in report["models"].items() for sweep in row.get("sweeps", ())]
    if not swept:
        return None
    metrics, batch_sizes = report["metrics"], report["settings"]["batch_sizes"]
    header = ["model", "setting", *metrics, "FLOP reduction", "kept", *(f"x HF dynamic bs={b}" for b in batch_sizes)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, sweep in swept:
        for point in sweep["points"]:
            cells = [
                name, f"{sweep['key']}={json.dumps(point['value'])}", *_quality_cells(point, metrics),
                f"{point['flop_reduction']:.2f}x", f"{point['kept_fraction']:.3f}",
                *(f"{point['latency'][str(b)]['speedup_vs_hf_dynamic']:.2f}x" for b in batch_sizes),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """The tables and the facts needed to read them (data subset, environment, definitions)."""
    env, data, settings = report["environment"], report["data"], report["settings"]
    parts = [
        f"## {report['task']}: {data['subset']} of {data['file']}",
        quality_table(report),
        latency_table(report),
        sweep_table(report),
        f"torch {env['torch']}, transformers {env['transformers']}, device {env['device']} "
        f"({env['cuda_device'] or env['cpu']}), torch threads: {env['threads']}. FLOPs (2 per multiply-add) and tokens counted "
        f"on the evaluation pass at batch size {settings['eval_batch_size']}; latency per batch after "
        f"{settings['warmup_batches']} warm-up batches{_rounds_note(settings)}. An input is {report['input_unit']}. Speed-up = throughput / "
        "the same checkpoint's baseline throughput at the same batch size; efficiency = speed-up against dense-packed "
        "/ FLOP reduction against dense-packed, for models that drop tokens or compress weights. HF rows compute every padded position (tokens / layer counts them); "
        "`hf_sorted` is HF BERT on the inputs sorted by length (longest first) before batching, so each batch pads little."
        + (f" Batch `{settings['max_tokens_per_batch']} tokens`: as many inputs as fit that many real tokens (hf_sorted: after sorting)."
           if settings.get("max_tokens_per_batch") else ""),
        _peers_note(settings),
        _shared_baselines_note(report),
    ]
    return "\n\n".join(part for part in parts if part is not None) + "\n"


def _peers_note(settings: dict) -> str | None:
    notes = []
    peers = settings.get("peers")
    if peers in ("ort", "all"):
        notes.append(
            "Peers: `ort_fp32` is the dense checkpoint exported by the benchmark (torch.onnx, dynamo) and run by ONNX "
            "Runtime's CPUExecutionProvider with the same thread count on the same dynamically padded batches as "
            "`hf_dynamic`; `ort_int8` is the same graph after ONNX Runtime `quantize_dynamic` with its defaults (int8 "
            "weights, one scale per matrix)."
        )
    if peers in ("openvino", "all"):
        notes.append(
            "`ov_fp32` is the same ONNX graph read by OpenVINO (CPU plugin, same thread count); `ov_int8` is it after "
            "NNCF post-training quantization (static int8 weights and activations, transformer preset), calibrated on "
            "the training inputs named under `calibration` in bench.json. Both keep OpenVINO's default inference "
            "precision (bf16 on CPUs with bf16 instructions; each row's `inference_precision`)."
        )
    if peers != "none":
        notes.append("x best peer = throughput / the fastest peer's at that batch size.")
    if settings.get("int8"):
        notes.append(
            "`+int8` rows: the same model with its encoder linears dynamically quantized to int8 (torch, fbgemm, "
            "per-channel weight scales); "
            "predictors, embeddings and heads stay fp32."
        )
    if settings.get("export_methods"):
        notes.append(
            "`+ort_fp32` / `+ort_int8` rows: the checkpoint's own model exported as `transformers-prune export` does "
            "(int8: per-channel weight scales) and run by its ONNX Runtime runner; `+ov_fp32` / `+ov_int8` (with the "
            "OpenVINO peers): `export --format openvino` (fp32 compute; int8: NNCF int8 weights) run by the same runner; "
            "a token-pruning graph drops tokens and takes one example per call."
        )
    if notes:
        notes.append("Peer, int8 and exported rows carry the FLOPs of the fp32 row they compute the same multiply-adds as.")
    return " ".join(notes) or None


def _rounds_note(settings: dict) -> str:
    rounds, examples = settings.get("latency_rounds", 1), settings.get("latency_examples")
    over = f"the first {examples} inputs" if examples else "all batches"
    if rounds > 1:
        # Runs before rows were interleaved (settings without the key) timed each row's rounds back to back.
        order = " (each round times every row in turn)" if settings.get("latency_rounds_interleaved") else ""
        return f", the fastest of {rounds} rounds over {over}{order}"
    return f", over {over}" if examples else ""


def _shared_baselines_note(report: dict) -> str | None:
    shared = {label: facts["baselines_from"] for label, facts in report["checkpoints"].items() if facts["baselines_from"] != label}
    if not shared:
        return None
    pairs = ", ".join(f"{label} against {source}" for label, source in shared.items())
    return (
        f"Baselines measured once per encoder shape and tokenizer (`--baselines first`): {pairs}. Their speed and "
        "FLOPs are the same for the same shapes; accuracy figures of a baseline row belong to its own checkpoint."
    )


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_accuracy_vs_speedup(report: dict, path: str) -> None:
    """One panel per batch size: task metric against speed-up over HF dynamic padding; sweeps drawn as curves."""
    metric, batch_sizes = report["metrics"][0], report["settings"]["batch_sizes"]
    figure = _new_figure(4.5 * len(batch_sizes), 4)
    for axes, batch_size in zip(figure.subplots(1, len(batch_sizes), squeeze=False)[0], batch_sizes):
        key = str(batch_size)
        for name, row in report["models"].items():
            axes.scatter(row["latency"][key]["speedup_vs_hf_dynamic"], row[metric], label=name)
            for sweep in row.get("sweeps", ()):
                points = sweep["points"]
                axes.plot(
                    [p["latency"][key]["speedup_vs_hf_dynamic"] for p in points], [p[metric] for p in points],
                    marker="x", linestyle="--", label=f"{name} sweep {sweep['key']}",
                )
                for point in points:
                    axes.annotate(json.dumps(point["value"]), (point["latency"][key]["speedup_vs_hf_dynamic"], point[metric]), fontsize=7)
        axes.axvline(1.0, color="grey", linewidth=0.5)
        axes.set(title=f"batch size {batch_size}", xlabel="speed-up vs HF dynamic padding", ylabel=metric)
    figure.axes[-1].legend(fontsize=7)
    figure.savefig(path, dpi=120)


def plot_tokens_per_layer(report: dict, path: str) -> None:
    """Mean tokens entering each layer per input, for every model on our engine (and each sweep point)."""
    figure = _new_figure(6, 4)
    axes = figure.subplots()
    for name, row in report["models"].items():
        if row["variant"] in (HF_PADDED, HF_DYNAMIC):
            continue
        per_layer = row["tokens_per_layer"]["per_layer"]
        axes.plot(range(len(per_layer)), per_layer, marker="o", label=name)
        axes.set_xticks(range(len(per_layer)))
        for point in sweep_points(row):
            values = point["tokens_per_layer"]["per_layer"]
            axes.plot(range(len(values)), values, linestyle="--", label=f"{name} {point['variant']}")
    axes.set(xlabel="layer", ylabel="tokens per input entering the layer", title=f"{report['task']}: tokens kept per layer")
    axes.legend(fontsize=7)
    figure.savefig(path, dpi=120)


def write_report(report: dict, output_dir: str, staged_dir: str | None = None) -> dict[str, str]:
    """Write every output file into `output_dir` (or into `staged_dir`, the folder that becomes `output_dir`);
    returns `{kind: path}` under `output_dir` (also stored in the JSON)."""
    report["outputs"] = {kind: os.path.join(output_dir, name) for kind, name in OUTPUT_FILES.items()}
    folder = staged_dir or output_dir
    os.makedirs(folder, exist_ok=True)
    paths = {kind: os.path.join(folder, name) for kind, name in OUTPUT_FILES.items()}
    plot_accuracy_vs_speedup(report, paths["accuracy_vs_speedup"])
    plot_tokens_per_layer(report, paths["tokens_per_layer"])
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown_report(report))
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return report["outputs"]


__all__ = [
    "OUTPUT_FILES",
    "latency_table",
    "markdown_report",
    "plot_accuracy_vs_speedup",
    "plot_tokens_per_layer",
    "quality_table",
    "sweep_table",
    "write_report",
]
