"""Wall-clock latency of a model over real, pre-tokenised batches."""

from __future__ import annotations

import contextlib
import dataclasses
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


def _call_seconds(model, batch: dict, device: torch.device) -> float:
    """Seconds `model(**batch)` took: on a CUDA device by events recorded on the stream around the call, read once it
    has finished (the GPU's own clock: host-side timer resolution and launch jitter stay out); elsewhere by
    `time.perf_counter`."""
    if device.type != "cuda":
        started = time.perf_counter()
        model(**batch)
        return time.perf_counter() - started
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    model(**batch)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


@torch.inference_mode()
def time_round(model, batches: list[dict], warmup: int = 2, desc: str | None = None) -> list[float]:
    """Seconds each batch took in one pass over `batches`, after `warmup` untimed batches (which also bring the
    model back into the caches after other work): CUDA events on a GPU, `time.perf_counter` elsewhere."""
    if not batches:
        raise ValueError("timing needs at least one batch")
    model.eval()
    device = model.device  # HF models and the ONNX Runtime adaptor (benchmark/peers.py) both say where they run
    for batch in batches[:warmup]:
        model(**batch)
    _sync(device)
    return [_call_seconds(model, batch, device) for batch in tqdm(batches, desc=desc, leave=False, disable=desc is None)]


def latency_figures(timed_rounds: list[list[float]], batches: list[dict]) -> dict:
    """Per-batch latency and throughput of the fastest of `timed_rounds` (each `time_round` over `batches`): on a
    shared machine a slow spell then spoils one round, not the figure.

    Returns `{"p50_ms", "p90_ms", "mean_ms", "examples_per_s", "tokens_per_s", "batches", "examples", "tokens",
    "examples_per_s_per_round"}`; tokens are the inputs' real (non-padding) tokens, what a padding-free engine pays for.
    """
    examples = sum(len(b["input_ids"]) for b in batches)
    tokens = sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel() for b in batches)
    latencies = min(timed_rounds, key=sum)
    quantiles = statistics.quantiles(latencies, n=10) if len(latencies) > 1 else [latencies[0]] * 9
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * quantiles[8],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "examples_per_s": examples / sum(latencies),
        "tokens_per_s": tokens / sum(latencies),
        "batches": len(batches),
        "examples": examples,
        "tokens": tokens,
        "examples_per_s_per_round": [examples / sum(timed) for timed in timed_rounds],
    }


def _check_rounds(rounds: int) -> None:
    if rounds < 1:
        raise ValueError(f"latency needs rounds >= 1, got {rounds}")


def measure_latency(model, batches: list[dict], warmup: int = 2, desc: str | None = None, rounds: int = 1) -> dict:
    """`latency_figures` of one model timed alone: `rounds` passes over `batches` back to back, after `warmup`
    untimed batches. To compare models on a shared machine, time them together with `InterleavedTimer`."""
    _check_rounds(rounds)
    timed = [
        time_round(model, batches, warmup if index == 0 else 0, desc if desc is None or rounds == 1 else f"{desc} round {index + 1}/{rounds}")
        for index in range(rounds)
    ]
    return latency_figures(timed, batches)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with `torch.set_num_threads(threads)` (None: unchanged), then restore the previous count."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclasses.dataclass
class _Queued:
    """One model waiting in an `InterleavedTimer`: its passes' timings per batch size (`rounds`) and the figures
    handed out by `add`, filled by `run`."""

    model: object
    batches: dict[str, list[dict]]
    name: str
    context: object
    rounds: dict[str, list[list[float]]] = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)


class InterleavedTimer(contextlib.ExitStack):
    """Latency of many models measured together, round by round: each round times every added model at each of its
    batch sizes in turn (after `warmup` untimed batches), and a model's figure is its fastest round.

    Why: on this project's shared 2-core machine a slow spell lasts long enough to cover several consecutive rounds
    of one model (an exported LTP graph read 72.6, 47.6, 73.8, 64.9, 76.7 IMDB reviews/s in five rounds of the same
    work), so timing each model's rounds back to back let one spell decide a ratio between two models. Interleaved,
    a spell slows one round of every model instead.

    It is an `ExitStack`: `enter_context` keeps what a model needs (an ONNX Runtime session's folder) open until
    the timer closes, after `run`.
    """

    def __init__(self, rounds: int = 1, warmup: int = 2):
        super().__init__()
        _check_rounds(rounds)
        self.rounds, self.warmup = rounds, warmup
        self._queued: list[_Queued] = []

    def add(self, model, batches: dict[str, list[dict]], name: str, context=contextlib.nullcontext) -> dict:
        """Queue `model` for timing on `batches` (`{batch size: batches}`); returns the dict `run` fills with
        `{batch size: latency_figures}`. `context()` is entered around each of its passes (a sweep's config value)."""
        if not all(batches.values()):
            raise ValueError(f"{name}: timing needs at least one batch at every batch size")
        queued = _Queued(model, batches, name, context)
        self._queued.append(queued)
        return queued.figures

    def run(self) -> None:
        passes = self.rounds * sum(len(queued.batches) for queued in self._queued)
        with tqdm(total=passes, desc="latency", unit="pass") as progress:
            for round_index in range(self.rounds):
                for queued in self._queued:
                    for batch_size, batched in queued.batches.items():
                        progress.set_postfix_str(f"{queued.name} bs={batch_size} round {round_index + 1}/{self.rounds}")
                        with queued.context():
                            queued.rounds.setdefault(batch_size, []).append(time_round(queued.model, batched, self.warmup))
                        progress.update()
        for queued in self._queued:
            queued.figures.update({size: latency_figures(queued.rounds[size], batched) for size, batched in queued.batches.items()})


__all__ = ["InterleavedTimer", "environment", "latency_figures", "measure_latency", "time_round", "torch_threads"]
