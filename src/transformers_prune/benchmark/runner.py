"""Measure every variant of every checkpoint: quality, FLOPs and tokens on one counted pass, then latency.

Each row of the report (one model variant, or one sweep point) gets:

- the task metrics, FLOPs per input and token statistics from one pass over the dev inputs at
  `eval_batch_size`, run under `FlopCounterMode`;
- latency p50/p90 and throughput at each batch size (and, with `max_tokens_per_batch`, on batches filled to that
  many real tokens), timed after every row of the run has been evaluated, in
  rounds that each time every row in turn (`InterleavedTimer`, warm-up batches before each pass), so ratios
  between rows are taken over the same spells of a shared machine;
- ratios against the same checkpoint's baselines: `flop_reduction` (dense-packed FLOPs / row FLOPs), and per
  batch size `speedup_vs_hf_dynamic`, `speedup_vs_hf_sorted` (HF BERT on inputs sorted by length before batching,
  so each batch pads little), `speedup_vs_dense_packed`, `speedup_vs_best_peer` (throughput ratios; the
  best peer is the faster of the ONNX Runtime rows at that batch size) and `efficiency` =
  speedup_vs_dense_packed / flop_reduction (1 means every FLOP saved became saved time), for the rows that cut
  FLOPs on the packed engine in fp32 (token pruning, compressed weights): for a baseline, a peer or an int8 row
  it would measure padding, kernels or precision, not the method.

Peer rows (`--peers ort|openvino|all`, see `peers.py`): the dense model in ONNX Runtime, fp32 and dynamic int8,
and in OpenVINO, fp32 and NNCF static int8. int8 rows
(`--int8`): `dense_packed+int8` and `<model type>+int8`, the same models with their encoder linears in int8
(`deploy/torch_int8.py`). Exported rows (`--export-methods`): `<model type>+ort_fp32` / `+ort_int8`, the
checkpoint's own model exported as `transformers-prune export` does and run in ONNX Runtime, and with the OpenVINO
peers also `+ov_fp32` / `+ov_int8` (`export --format openvino`: fp32 compute, int8 weights). None of these is seen by `FlopCounterMode` as it runs (ONNX Runtime is outside torch;
torch's quantized kernels have no FLOP formula), so both carry the FLOPs of the fp32 row they compute the same
multiply-adds as (`flops_as`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..deploy.torch_int8 import quantize_encoder_int8, torch_int8_unavailable
from .checkpoints import DENSE_PACKED, HF_DYNAMIC, HF_PADDED, HF_SORTED, Checkpoint, load_checkpoint
from .data import TaskSpec
from .evaluation import DeviceBatches, TokenBudget, evaluate
from .inputs import task_inputs
from .latency import InterleavedTimer
from .peers import (
    EXPORT_INT8_WEIGHTS,
    EXPORT_SUFFIXES,
    PEER_CHOICES,
    PEER_INT8_WEIGHTS,
    PEER_RUNTIMES,
    PEER_VARIANTS,
    exported_models,
    openvino_models,
    peer_runtimes,
)
from .sweep import Sweep, applies_to, config_value, sweep_points

INT8_SUFFIX = "+int8"
TRUNCATED_PREFIX = "truncated_"  # dense-packed on inputs cut to this many tokens


BASELINE_MODES = ("each", "first")


# `--dtype` values.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


@dataclass(frozen=True)
class BenchmarkSettings:
    batch_sizes: tuple[int, ...]
    eval_batch_size: int
    warmup_batches: int
    max_length: int
    doc_stride: int
    device: torch.device
    seed: int
    threads: int | None = None
    sweeps: tuple[Sweep, ...] = ()
    truncations: tuple[int, ...] = ()
    latency_examples: int | None = None
    baselines: str = "each"
    latency_rounds: int = 1
    peers: str = "ort"
    int8: bool = False
    export_methods: bool = False
    dtype: torch.dtype = torch.float32  # of every torch row's weights and activations; inputs stay token ids
    max_tokens_per_batch: int | None = None  # also time batches filled to this many real tokens

    @property
    def latency_sizes(self) -> tuple[int | TokenBudget, ...]:
        """What each row is timed at: every batch size, then the token budget."""
        budget = (TokenBudget(self.max_tokens_per_batch),) if self.max_tokens_per_batch else ()
        return (*self.batch_sizes, *budget)

    def __post_init__(self):
        for name in ("eval_batch_size", "max_length", "doc_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch sizes must be at least 1, got {list(self.batch_sizes)}")
        if self.warmup_batches < 0:
            raise ValueError(f"warmup_batches must be >= 0, got {self.warmup_batches}")
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < self.max_length:
            raise ValueError(
                f"max_tokens_per_batch ({self.max_tokens_per_batch}) must hold at least one input of max_length {self.max_length}"
            )
        if self.latency_rounds < 1:
            raise ValueError(f"latency_rounds must be at least 1, got {self.latency_rounds}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.baselines not in BASELINE_MODES:
            raise ValueError(f"baselines must be one of {BASELINE_MODES}, got {self.baselines!r}")
        if self.latency_examples is not None and self.latency_examples < max(self.batch_sizes):
            raise ValueError(f"latency_examples ({self.latency_examples}) must be at least the largest batch size {max(self.batch_sizes)}")
        if any(not 1 < length < self.max_length for length in self.truncations):
            raise ValueError(f"truncation lengths must be between 2 and max_length - 1 ({self.max_length - 1}), got {list(self.truncations)}")
        if self.peers not in PEER_CHOICES:
            raise ValueError(f"peers must be one of {PEER_CHOICES}, got {self.peers!r}")
        if self.int8 and (problem := torch_int8_unavailable()):
            raise ValueError(f"--int8: {problem}")
        if self.int8 and self.device.type != "cpu":
            raise ValueError(f"int8 rows run torch's CPU int8 kernels; --int8 needs --device cpu, got {self.device}")
        if self.export_methods and self.device.type != "cpu":
            raise ValueError(f"--export-methods times ONNX Runtime on CPU; it needs --device cpu, got {self.device}")
        if self.dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype}")
        fp32_rows = [option for option, used in (("--int8", self.int8), ("--export-methods", self.export_methods),
                                                 (f"the peers (--peers {self.peers})", self.peers != "none")) if used]
        if self.dtype != torch.float32 and fp32_rows:
            raise ValueError(
                f"--dtype {dtype_name(self.dtype)} casts the torch rows; {', '.join(fp32_rows)} time fp32 and int8 graphs "
                "of their own: leave them out (--peers none) or time them in a float32 run"
            )

    def to_dict(self) -> dict:
        return {
            "batch_sizes": list(self.batch_sizes),
            "eval_batch_size": self.eval_batch_size,
            "warmup_batches": self.warmup_batches,
            "max_length": self.max_length,
            "doc_stride": self.doc_stride,
            "device": str(self.device),
            "seed": self.seed,
            "threads": self.threads,
            "sweeps": [{"key": sweep.key, "values": list(sweep.values)} for sweep in self.sweeps],
            "truncations": list(self.truncations),
            "latency_examples": self.latency_examples,
            "baselines": self.baselines,
            "latency_rounds": self.latency_rounds,
            "latency_rounds_interleaved": True,
            "peers": self.peers,
            "int8": self.int8,
            "export_methods": self.export_methods,
            "dtype": dtype_name(self.dtype),
            "max_tokens_per_batch": self.max_tokens_per_batch,
        }


def export_formats(settings: BenchmarkSettings) -> tuple[str, ...]:
    """The formats `--export-methods` exports our checkpoints to: ONNX Runtime's, and OpenVINO's when its peers run."""
    if not settings.export_methods:
        return ()
    return ("onnx", "openvino") if "openvino" in peer_runtimes(settings.peers) else ("onnx",)


def measures_method_flops(variant: str) -> bool:
    """Whether a row's speed-up against dense-packed comes from the FLOPs its method cuts (see module docstring)."""
    baseline = variant in (HF_PADDED, HF_DYNAMIC, HF_SORTED, DENSE_PACKED, *PEER_VARIANTS) or variant.startswith(TRUNCATED_PREFIX)
    return not baseline and "+" not in variant  # "+int8", "+ort_*"


def add_ratios(row: dict, baselines: dict) -> None:
    """Write `flop_reduction` and, per batch size, the speed-ups and efficiency of `row` (see module docstring);
    `baselines` holds the `hf_dynamic`, `hf_sorted` and `dense_packed` rows, and the peer rows when they were measured."""
    hf_dynamic, hf_sorted, dense_packed = baselines[HF_DYNAMIC], baselines[HF_SORTED], baselines[DENSE_PACKED]
    peers = [baselines[variant] for variant in PEER_VARIANTS if variant in baselines]
    row["flop_reduction"] = dense_packed["flops_per_example"] / row["flops_per_example"]
    for batch_size, latency in row["latency"].items():
        latency["speedup_vs_hf_dynamic"] = latency["examples_per_s"] / hf_dynamic["latency"][batch_size]["examples_per_s"]
        latency["speedup_vs_hf_sorted"] = latency["examples_per_s"] / hf_sorted["latency"][batch_size]["examples_per_s"]
        latency["speedup_vs_dense_packed"] = latency["examples_per_s"] / dense_packed["latency"][batch_size]["examples_per_s"]
        if peers:
            best_peer = max(peer["latency"][batch_size]["examples_per_s"] for peer in peers)
            latency["speedup_vs_best_peer"] = latency["examples_per_s"] / best_peer
        if measures_method_flops(row["variant"]):
            latency["efficiency"] = latency["speedup_vs_dense_packed"] / row["flop_reduction"]


def cost_signature(checkpoint: Checkpoint) -> tuple:
    """What a baseline's speed and FLOPs depend on: encoder shape and tokenizer (so the same tokens)."""
    config, tokenizer = checkpoint.config, checkpoint.tokenizer
    shape = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size)
    return shape, type(tokenizer).__name__, len(tokenizer)


def rows_per_checkpoint(checkpoint: Checkpoint, settings: BenchmarkSettings, shares_baselines: bool = False) -> int:
    """How many rows `benchmark_checkpoint` measures (for the progress bar)."""
    int8 = 2 if settings.int8 else 1  # each measured model once more in int8
    baselines = 0 if shares_baselines else (
        3 + int8 + 2 * len(peer_runtimes(settings.peers)) + len(settings.truncations)
    )
    method = int8 + 2 * len(export_formats(settings))
    if checkpoint.is_compressed:
        return method
    if not checkpoint.is_token_pruning:
        return baselines
    swept = sum(len(sweep.values) for sweep in settings.sweeps if applies_to(sweep, checkpoint))
    return baselines + method + swept


def calibration_samples(task: TaskSpec, data, tokenizer, settings: BenchmarkSettings) -> list[dict]:
    """`data`'s inputs one at a time as numpy arrays by input name: what a post-training quantizer calibrates on."""
    inputs = task_inputs(task, data, tokenizer, settings.max_length, settings.doc_stride)
    return [{name: tensor.numpy() for name, tensor in inputs.batch([index], False).items()} for index in range(inputs.num_inputs)]


def benchmark_checkpoint(
    checkpoint: Checkpoint, task: TaskSpec, data, settings: BenchmarkSettings, progress, timer: InterleavedTimer,
    baselines: dict | None = None, calibration_data=None,
) -> dict:
    """Every row of one checkpoint: `{"checkpoint": facts, "rows": {variant: row}, "baselines": the rows its ratios
    are taken against}` (a sweep sits in its row).

    Rows are evaluated here; their latency is queued on `timer` (which keeps their models open) and lands in
    `row["latency"]` when the timer runs; ratios (`add_ratios`) need it, so they come after.

    `baselines`: rows `{hf_padded, hf_dynamic, hf_sorted, dense_packed}` (and the peer and int8 rows) already measured on a checkpoint of the same cost
    signature (`--baselines first`); then only the checkpoint's own pruning rows are measured and compared to them.
    `calibration_data`: the training inputs OpenVINO's int8 peer is calibrated on.
    """
    loaded = load_checkpoint(checkpoint, task, settings.device, settings.seed, settings.dtype)
    inputs = task_inputs(task, data, checkpoint.tokenizer, settings.max_length, settings.doc_stride)
    dynamic = DeviceBatches(inputs, settings.device)

    def measure_row(model, variant: str, batches: DeviceBatches = dynamic, context=contextlib.nullcontext) -> dict:
        name = f"{checkpoint.label}/{variant}"
        progress.set_postfix_str(name)
        row = {"checkpoint": checkpoint.label, "variant": variant, "model_class": type(model).__name__}
        with context():
            row.update(evaluate(
                model, batches.get(settings.eval_batch_size), batches.inputs, f"{name} eval", batches.order(settings.eval_batch_size)
            ))
        timed = {str(size): batches.get(size, settings.latency_examples) for size in settings.latency_sizes}
        row["latency"] = timer.add(model, timed, name, context)
        progress.update()
        return row

    def measure_twin(model, variant: str, flops_as: str) -> None:
        """A row of a model that computes `flops_as`'s multiply-adds out of FlopCounterMode's sight."""
        rows[variant] = measure_row(model, variant)
        rows[variant].update(flops_per_example=rows[flops_as]["flops_per_example"], flops_as=flops_as)

    rows = {}
    if baselines is None:
        rows[HF_PADDED] = measure_row(loaded.hf, HF_PADDED, DeviceBatches(inputs, settings.device, pad_to_max_length=True))
        rows[HF_DYNAMIC] = measure_row(loaded.hf, HF_DYNAMIC)
        rows[HF_SORTED] = measure_row(loaded.hf, HF_SORTED, DeviceBatches(inputs, settings.device, length_sorted=True))
        rows[DENSE_PACKED] = measure_row(loaded.dense_packed, DENSE_PACKED)
        for runtime in peer_runtimes(settings.peers):
            if runtime == "ort":
                peers = exported_models(loaded.hf, checkpoint.tokenizer, settings.max_length, settings.threads, PEER_INT8_WEIGHTS)
            else:
                if calibration_data is None:
                    raise ValueError("OpenVINO's int8 peer needs calibration data (the task's training inputs)")
                samples = calibration_samples(task, calibration_data, checkpoint.tokenizer, settings)
                peers = openvino_models(loaded.hf, checkpoint.tokenizer, settings.max_length, settings.threads, samples)
            peers = timer.enter_context(peers)
            fp32_variant, int8_variant = PEER_RUNTIMES[runtime]
            for precision, variant in (("fp32", fp32_variant), ("int8", int8_variant)):
                measure_twin(peers[precision], variant, HF_DYNAMIC)
                if hasattr(peers[precision].runner, "inference_precision"):
                    rows[variant]["inference_precision"] = peers[precision].runner.inference_precision
            if runtime == "ort":
                rows[int8_variant]["int8_weights"] = PEER_INT8_WEIGHTS
        if settings.int8:
            measure_twin(quantize_encoder_int8(loaded.dense_packed), DENSE_PACKED + INT8_SUFFIX, DENSE_PACKED)
        for length in settings.truncations:  # the cheapest speed a user can buy: shorter inputs
            truncated = task_inputs(task, data, checkpoint.tokenizer, length, settings.doc_stride)
            rows[f"{TRUNCATED_PREFIX}{length}"] = measure_row(
                loaded.dense_packed, f"{TRUNCATED_PREFIX}{length}", DeviceBatches(truncated, settings.device)
            )
        baselines = rows
    if loaded.method_model is not None:
        rows[checkpoint.model_type] = measure_row(loaded.method_model, checkpoint.model_type)
        if settings.int8:
            measure_twin(quantize_encoder_int8(loaded.method_model), checkpoint.model_type + INT8_SUFFIX, checkpoint.model_type)
        for format in export_formats(settings):
            exported = timer.enter_context(
                exported_models(loaded.method_model, checkpoint.tokenizer, settings.max_length, settings.threads, EXPORT_INT8_WEIGHTS, format)
            )
            for precision, suffix in EXPORT_SUFFIXES[format].items():
                measure_twin(exported[precision], checkpoint.model_type + suffix, checkpoint.model_type)
            rows[checkpoint.model_type + EXPORT_SUFFIXES[format]["int8"]]["int8_weights"] = EXPORT_INT8_WEIGHTS
        sweeps = []
        for sweep in (sweep for sweep in settings.sweeps if applies_to(sweep, checkpoint)):
            points = []
            for value in sweep.values:
                point = measure_row(
                    loaded.method_model, f"{sweep.key}={json.dumps(value)}",
                    context=functools.partial(config_value, loaded.method_model, sweep.key, value),
                )
                points.append({"value": value, **point})
            sweeps.append({"key": sweep.key, "points": points})
        if sweeps:
            rows[checkpoint.model_type]["sweeps"] = sweeps
    facts = {
        "path": os.path.abspath(checkpoint.path),
        "model_type": checkpoint.model_type,
        "num_inputs": inputs.num_inputs,
        "fresh_head_parameters": loaded.new_head_keys,
        "ignored_by_hf_baselines": loaded.ignored_by_hf,
        "baselines_from": baselines[DENSE_PACKED]["checkpoint"],
    }
    return {"checkpoint": facts, "rows": rows, "baselines": baselines}


def run_benchmark(
    task: TaskSpec, data, checkpoints: list[Checkpoint], settings: BenchmarkSettings, calibration_data=None
) -> dict:
    """`{"checkpoints": {label: facts}, "models": {"<label>/<variant>": row}}` for every checkpoint;
    `calibration_data`: the training inputs OpenVINO's int8 peer calibrates on (needed with that peer)."""
    result = {"checkpoints": {}, "models": {}}
    signatures = [cost_signature(checkpoint) for checkpoint in checkpoints]
    # With --baselines first, a token-pruning checkpoint reuses the baselines of the first checkpoint of its cost
    # signature; a plain BERT checkpoint is nothing but its baselines, so it always gets its own; a compressed one
    # has no uncompressed weights to build them from, so it always shares an earlier uncompressed checkpoint's.
    uncompressed_signatures = set()
    for checkpoint, signature in zip(checkpoints, signatures):
        if not checkpoint.is_compressed:
            uncompressed_signatures.add(signature)
        elif signature not in uncompressed_signatures:
            raise ValueError(
                f"{checkpoint.path} is a compressed-bert checkpoint: list an uncompressed checkpoint of the same shape "
                "(the BERT it was compressed from) before it, whose baselines it is compared against"
            )
    shares = [
        checkpoint.is_compressed
        or (settings.baselines == "first" and checkpoint.is_token_pruning and signature in signatures[:i])
        for i, (checkpoint, signature) in enumerate(zip(checkpoints, signatures))
    ]
    baselines_by_signature: dict[tuple, dict] = {}
    total = sum(rows_per_checkpoint(checkpoint, settings, share) for checkpoint, share in zip(checkpoints, shares))
    measured_checkpoints = []
    with logging_redirect_tqdm(), InterleavedTimer(settings.latency_rounds, settings.warmup_batches) as timer:
        with tqdm(total=total, desc=f"bench {task.name}", unit="row") as progress:
            for checkpoint, signature, share in zip(checkpoints, signatures, shares):
                baselines = baselines_by_signature[signature] if share else None
                measured = benchmark_checkpoint(checkpoint, task, data, settings, progress, timer, baselines, calibration_data)
                if not share:
                    baselines_by_signature.setdefault(signature, measured["rows"])
                measured_checkpoints.append((checkpoint, measured))
        timer.run()
    for checkpoint, measured in measured_checkpoints:
        result["checkpoints"][checkpoint.label] = measured["checkpoint"]
        for variant, row in measured["rows"].items():
            for timed in (row, *sweep_points(row)):
                add_ratios(timed, measured["baselines"])
            result["models"][f"{checkpoint.label}/{variant}"] = row
    return result


__all__ = [
    "DTYPES",
    "INT8_SUFFIX",
    "TRUNCATED_PREFIX",
    "BenchmarkSettings",
    "dtype_name",
    "add_ratios",
    "benchmark_checkpoint",
    "measures_method_flops",
    "run_benchmark",
]
