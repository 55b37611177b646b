"""`transformers-prune bench`: quality, FLOPs, tokens and latency of
checkpoints against their baselines on local dev data.

For each checkpoint (a plain BERT or any of our model types) the same weights run as HF BERT padded to
`--max-length`, HF BERT with dynamic padding (sdpa), our dense-packed engine with nothing dropped, the peers a
user would deploy instead (`--peers`: the dense model exported by the benchmark to ONNX Runtime, fp32 and dynamic
int8, and to OpenVINO, fp32 and NNCF static int8 calibrated on the task's training inputs), with `--int8` the packed models with int8 linears, and, for a token-pruning checkpoint, the model
itself; see `benchmark/runner.py` for every figure and ratio. Writes
`bench.json`, `bench.md`, `accuracy_vs_speedup.png` and `tokens_per_layer.png` into `--output-dir`.

    transformers-prune bench runs/demo/dense runs/demo/ltp --task sst2 --batch-sizes 1 8 32
    transformers-prune bench runs/tk --task imdb --max-examples 500 --sweep prune_at_inference=true,false
"""

from __future__ import annotations

import argparse
import os

from .choices import DTYPES, PEERS, TASKS
from .common import add_overwrite_argument, positive_int


def _device(name: str | None):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    return device


def settings_from(args: argparse.Namespace, max_length: int):
    from transformers_prune.benchmark.runner import DTYPES as TORCH_DTYPES, BenchmarkSettings
    from transformers_prune.benchmark.sweep import parse_sweep

    return BenchmarkSettings(
        batch_sizes=tuple(args.batch_sizes),
        eval_batch_size=args.eval_batch_size,
        warmup_batches=args.warmup_batches,
        max_length=max_length,
        doc_stride=args.doc_stride,
        device=_device(args.device),
        seed=args.seed,
        threads=args.threads,
        sweeps=tuple(parse_sweep(text) for text in args.sweep or ()),
        truncations=tuple(args.truncations or ()),
        latency_examples=args.latency_examples,
        latency_rounds=args.latency_rounds,
        baselines=args.baselines,
        peers=args.peers,
        int8=args.int8,
        export_methods=args.export_methods,
        dtype=TORCH_DTYPES[args.dtype],
        max_tokens_per_batch=args.max_tokens_per_batch,
    )


def run(args: argparse.Namespace) -> dict:
    """Check every input (task, data file, checkpoints, sweep), then measure, write the outputs, print the tables."""
    from transformers_prune.benchmark.checkpoints import checkpoint_labels, inspect_checkpoint
    from transformers_prune.benchmark.data import QUESTION_ANSWERING, get_task, load_task_data, resolve_data_file, resolve_train_file
    from transformers_prune.benchmark.latency import environment, torch_threads
    from transformers_prune.benchmark.peers import CALIBRATION_EXAMPLES, check_peers_available, peer_runtimes
    from transformers_prune.benchmark.report import markdown_report, write_report
    from transformers_prune.benchmark.runner import run_benchmark
    from transformers_prune.benchmark.sweep import check_sweeps
    from transformers_prune.folders import check_output_path, staged_output_folder

    task = get_task(args.task)
    settings = settings_from(args, args.max_length or task.max_length)
    check_peers_available(settings.peers, settings.device)
    if settings.export_methods:
        check_peers_available("ort", settings.device)
    if task.kind == QUESTION_ANSWERING and settings.doc_stride >= settings.max_length:
        raise ValueError(f"--doc-stride ({settings.doc_stride}) must be smaller than --max-length ({settings.max_length})")
    data_file = resolve_data_file(task, args.data_file, args.data_dir)
    inputs = [*args.checkpoints, data_file]
    check_output_path(args.output_dir, args.overwrite, inputs)
    checkpoints = [
        inspect_checkpoint(path, task, settings.max_length, label)
        for path, label in zip(args.checkpoints, checkpoint_labels(args.checkpoints))
    ]
    check_sweeps(settings.sweeps, checkpoints)
    if settings.truncations and task.kind == QUESTION_ANSWERING:
        raise ValueError("--truncations cut classification inputs; SQuAD windows already slide over the context")
    calibrates = "openvino" in peer_runtimes(settings.peers)
    train_file = resolve_train_file(task, args.calibration_file, args.data_dir) if calibrates else None
    data = load_task_data(task, data_file, args.max_examples, args.seed)
    calibration_data = load_task_data(task, train_file, CALIBRATION_EXAMPLES, args.seed) if calibrates else None

    with torch_threads(settings.threads):
        report = {
            "task": task.name,
            "metrics": list(task.metrics),
            "input_unit": "a SQuAD context window (feature)" if task.kind == QUESTION_ANSWERING else "an example",
            "data": {"file": os.path.abspath(data.source), "subset": data.subset, "seed": args.seed},
            "settings": settings.to_dict(),
            "environment": environment(settings.device),
            **({"calibration": {"file": os.path.abspath(calibration_data.source), "subset": calibration_data.subset}}
               if calibration_data is not None else {}),
            **run_benchmark(task, data, checkpoints, settings, calibration_data),
        }
    with staged_output_folder(args.output_dir, args.overwrite, inputs) as staged:
        write_report(report, args.output_dir, staged)
    print(markdown_report(report))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", help="checkpoint folders: plain BERT or any transformers_prune model type")
    parser.add_argument("--task", default="sst2", help=f"one of {', '.join(TASKS)} (default sst2)")
    parser.add_argument("--data-dir", help="folder laid out as shared/data (default: ../shared/data if present)")
    parser.add_argument("--data-file", help="the dev file itself; overrides --data-dir")
    parser.add_argument("--max-examples", type=int, help="first N examples (IMDB: after a seeded shuffle)")
    parser.add_argument("--seed", type=int, default=42, help="IMDB shuffle and fresh-head initialisation")
    parser.add_argument("--max-length", type=int, help="truncation and HF padded length (default 128 sst2, 512 imdb, 384 squad)")
    parser.add_argument("--doc-stride", type=int, default=128, help="SQuAD: overlap of context windows, in tokens (a question too long to leave the context more is refused)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="latency batch sizes")
    parser.add_argument(
        "--max-tokens-per-batch", type=positive_int, metavar="N",
        help="also time batches filled to N real tokens instead of a row count (a padding-free engine's natural batch; "
        "hf_sorted fills them after sorting by length)",
    )
    parser.add_argument("--eval-batch-size", type=int, default=32, help="batch size of the pass that counts quality and FLOPs")
    parser.add_argument("--warmup-batches", type=int, default=2, help="untimed batches before each latency run")
    parser.add_argument(
        "--latency-rounds", type=int, default=1,
        help=(
            "time every row this many times over and keep its fastest round; each round times every row in turn, so "
            "a slow spell of a shared machine slows one round of every row instead of every round of one"
        ),
    )
    parser.add_argument(
        "--sweep", metavar="KEY=V1,V2,...", action="append",
        help="re-run the token-pruning models whose config has KEY with it at each value; repeat for other keys",
    )
    parser.add_argument(
        "--latency-examples", type=positive_int, metavar="N",
        help="time the first N inputs only (quality and FLOPs still count every input; default: all)",
    )
    parser.add_argument(
        "--truncations", type=positive_int, nargs="+", metavar="N",
        help="also run dense-packed on inputs truncated to N tokens (the cheapest speed a user can buy)",
    )
    parser.add_argument(
        "--baselines", choices=("each", "first"), default="each",
        help="each: every checkpoint's own weights run as the baselines; first: measure them once per encoder shape "
        "and tokenizer and compare later token-pruning checkpoints to those rows (same cost, half the run time)",
    )
    parser.add_argument(
        "--peers", choices=PEERS, default="all",
        help="also time the dense model where a user would deploy it instead (CPU): ort, ONNX Runtime fp32 and dynamic "
        "int8 (the onnx extra); openvino, OpenVINO fp32 and NNCF static int8 (the openvino extra); all (default): both; "
        "none: leave them out",
    )
    parser.add_argument(
        "--calibration-file",
        help="training inputs OpenVINO's int8 peer is calibrated on, same format as the dev file (default: the task's "
        "training file under the data dir; SST-2: the training sample bundled with the package)",
    )
    parser.add_argument("--int8", action="store_true", help="also time the packed models with their encoder linears in int8 (torch, CPU)")
    parser.add_argument(
        "--export-methods", action="store_true",
        help="also time each token-pruning and compressed checkpoint exported to ONNX Runtime, fp32 and int8 (CPU; a "
        "token-pruning graph drops tokens and runs one example at a time)",
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float32",
        help="the torch rows' weights and activations (float16/bfloat16: the GPU case; inputs unchanged)",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads before timing (default: torch's choice)")
    parser.add_argument("--output-dir", default="runs/bench")
    add_overwrite_argument(parser)


__all__ = ["add_arguments", "run"]
