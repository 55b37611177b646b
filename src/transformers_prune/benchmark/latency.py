"""Wall-clock latency of a model over real, pre-tokenised batches."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch
import transformers
from tqdm.auto import tqdm


def _cpu_name() -> str:
    """The CPU model ("AMD EPYC ...") from /proc/cpuinfo where there is one, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device | str = "cpu") -> dict:
    """The facts a timing depends on, stored next to every figure; `device` is where the models ran."""
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(model, batches: list[dict], warmup: int = 2, desc: str | None = None, rounds: int = 1) -> dict:
    """Run every batch `rounds` times over (after `warmup` untimed batches) and report per-batch latency and
    throughput of the fastest round: on a shared machine a slow spell then spoils one round, not the figure.

    Returns `{"p50_ms", "p90_ms", "mean_ms", "examples_per_s", "batches", "examples", "examples_per_s_per_round"}`.
    """
    if not batches:
        raise ValueError("measure_latency needs at least one batch")
    if rounds < 1:
        raise ValueError(f"measure_latency needs rounds >= 1, got {rounds}")
    model.eval()
    device = model.device  # HF models and the ONNX Runtime adaptor (benchmark/peers.py) both say where they run
    for batch in batches[:warmup]:
        model(**batch)
    _sync(device)
    timed_rounds = []
    for round_index in range(rounds):
        latencies = []
        round_desc = desc if desc is None or rounds == 1 else f"{desc} round {round_index + 1}/{rounds}"
        for batch in tqdm(batches, desc=round_desc, leave=False, disable=desc is None):
            start = time.perf_counter()
            model(**batch)
            _sync(device)
            latencies.append(time.perf_counter() - start)
        timed_rounds.append(latencies)
    examples = sum(len(b["input_ids"]) for b in batches)
    latencies = min(timed_rounds, key=sum)
    quantiles = statistics.quantiles(latencies, n=10) if len(latencies) > 1 else [latencies[0]] * 9
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * quantiles[8],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "examples_per_s": examples / sum(latencies),
        "batches": len(batches),
        "examples": examples,
        "examples_per_s_per_round": [examples / sum(timed) for timed in timed_rounds],
    }


__all__ = ["environment", "measure_latency"]
