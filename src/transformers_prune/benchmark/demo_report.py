"""The demo's measurements and its report: accuracy, tokens kept and FLOPs of HF BERT, our dense-packed engine and
LTP, their throughput timed in interleaved rounds (`InterleavedTimer`: every row once per round, each row's fastest
round kept, so a busy spell of a shared machine slows one round of every row instead of deciding a ratio), and how
disturbed the timing was."""

from __future__ import annotations

import os

import torch
from transformers import AutoModelForSequenceClassification

from ..models.modeling_packed_bert import PackedBertForSequenceClassification
from .data import ClassificationData
from .evaluation import DeviceBatches, evaluate
from .inputs import ClassificationInputs
from .latency import InterleavedTimer, environment

# Row -> (its name in the report, the subfolder of the demo's output it loads, how).
ROWS = {
    "hf_dense_dynamic_padding": ("HF BERT (sdpa, dynamic padding)", "dense",
                                 lambda path: AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa")),
    "dense_packed": ("dense-packed (our engine, nothing dropped)", "dense", PackedBertForSequenceClassification.from_pretrained),
    "ltp_packed": ("LTP (our engine, tokens dropped)", "ltp", AutoModelForSequenceClassification.from_pretrained),
}
# Rounds of one row whose throughputs differ by more than this were disturbed: its ratios are not to be trusted.
# Measured on this project's 2-core CPU: up to 29% with nothing else running (batch-1 rounds vary most), 365% with a
# test suite beside the demo, whose ratios still landed within 15% of the quiet run's (their fastest rounds).
DISTURBED_SPREAD = 0.5
# Sentences the report classifies with the LTP model, with their SST-2 label.
EXAMPLES = (
    ("a gripping, funny film", "positive"),
    ("one of the best movies of the year", "positive"),
    ("terrible", "negative"),
    ("dull and far too long", "negative"),
    ("not good", "negative"),
)


def measure_models(
    folder: str, tokenizer, dev: ClassificationData, batch_sizes: list[int], latency_examples: int | None, rounds: int
) -> dict:
    """Every row of `ROWS` loaded from `folder`: accuracy, FLOPs and kept fraction on all of `dev`, throughput on its
    first `latency_examples` sentences at each batch size, in `rounds` interleaved rounds; the load average before
    and after the timing; the LTP row's answers on `EXAMPLES` (`example_predictions`)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev_batches = DeviceBatches(ClassificationInputs(tokenizer, dev, max_length=128), device)
    report = {"environment": environment(device), "dev_examples": len(dev.labels), "latency_examples": latency_examples,
              "latency_rounds": rounds, "models": {}}
    with InterleavedTimer(rounds=rounds) as timer:
        for name, (_, subfolder, load) in ROWS.items():
            model = load(os.path.join(folder, subfolder)).to(device).eval()
            entry = evaluate(model, dev_batches.get(32), dev_batches.inputs, desc=f"evaluate {name}")
            batches = {str(size): dev_batches.get(size, latency_examples) for size in batch_sizes}
            entry["latency"] = timer.add(model, batches, name)
            report["models"][name] = entry
            if name == "ltp_packed":
                report["examples"] = example_predictions(model, tokenizer)
        report["load_average_before"] = os.getloadavg()[0]
        timer.run()
        report["load_average_after"] = os.getloadavg()[0]
    return report


def round_spread(report: dict) -> float:
    """The largest relative difference between the fastest and slowest round of one row at one batch size."""
    spreads = [
        max(per_round) / min(per_round) - 1
        for entry in report["models"].values()
        for figures in entry["latency"].values()
        if len(per_round := figures["examples_per_s_per_round"]) > 1
    ]
    return max(spreads, default=0.0)


def example_predictions(model, tokenizer) -> list[tuple[str, str, str]]:
    """`(sentence, predicted label, SST-2 label)` for each of `EXAMPLES`, by the model's `id2label` (on its device)."""
    sentences = [sentence for sentence, _ in EXAMPLES]
    with torch.no_grad():
        logits = model.eval()(**tokenizer(sentences, padding=True, return_tensors="pt").to(model.device)).logits
    predicted = [model.config.id2label[index] for index in logits.argmax(dim=-1).tolist()]
    return [(sentence, label, gold) for (sentence, gold), label in zip(EXAMPLES, predicted)]


def format_report(report: dict, batch_sizes: list[int]) -> str:
    """A Markdown table (accuracy and kept tokens in percent, GFLOPs per sentence, sentences per second and the
    speed-up over HF BERT at each batch size, both from each row's fastest round), then how the timing went."""
    reference = report["models"]["hf_dense_dynamic_padding"]["latency"]
    header = "| model | SST-2 dev accuracy | tokens kept | GFLOPs per sentence | " + " | ".join(
        f"batch {size}: sentences/s (x HF)" for size in batch_sizes
    ) + " |"
    lines = [header, "|" + "---|" * (4 + len(batch_sizes))]
    for name, entry in report["models"].items():
        cells = []
        for size in batch_sizes:
            speed = entry["latency"][str(size)]["examples_per_s"]
            cells.append(f"{speed:.1f} ({speed / reference[str(size)]['examples_per_s']:.2f}x)")
        lines.append(
            f"| {ROWS[name][0]} | {100 * entry['accuracy']:.2f}% | {100 * entry['kept_fraction']:.1f}% | "
            f"{entry['flops_per_example'] / 1e9:.3f} | " + " | ".join(cells) + " |"
        )
    env, spread = report["environment"], round_spread(report)
    examples = report["latency_examples"]
    timed = f"the first {examples}" if examples and examples < report["dev_examples"] else "all"
    lines.append(
        f"\nTimed on {timed} of {report['dev_examples']} dev sentences, {env['threads']} thread(s), "
        f"{env['cuda_device'] or env['cpu']}; each row's fastest of {report['latency_rounds']} interleaved rounds. "
        f"Load average {report['load_average_before']:.1f} before timing, {report['load_average_after']:.1f} after; "
        f"rounds of one row differed by up to {100 * spread:.0f}%."
    )
    if spread > DISTURBED_SPREAD:
        lines.append(
            "The machine was busy while timing (other processes competed for its cores): the ratios above may be off. "
            "Re-time when it is quiet: transformers-prune demo --skip-training (add --latency-rounds 5 to keep the "
            "best of more rounds)."
        )
    return "\n".join(lines)


__all__ = ["DISTURBED_SPREAD", "EXAMPLES", "ROWS", "example_predictions", "format_report", "measure_models", "round_spread"]
