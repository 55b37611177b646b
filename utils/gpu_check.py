"""The checks of `utils/gpu_check.sh`, on MiniLM-L6 (hidden 384, 12 heads x 32, 6 layers). Never used by the tests.

1. attention kernels: `packed_attention` of each backend on a packed SST-2-like batch (128 examples of 5..66
   tokens) and an IMDB-like one (32 of 100..512): ms per call and max difference against "sdpa_padded" in the
   same dtype (bf16: varlen, sdpa_padded, sdpa_per_example, flash_varlen when flash-attn is installed; fp32:
   sdpa_padded, sdpa_nested); and the received attention of `packed_attention_with_received`, "varlen" (from
   the kernel's log-sum-exp) against "eager" (explicit probabilities), bf16;
2. packed == masked for every token-pruning type, random weights under which each method drops tokens: fp32 on
   sdpa_padded / sdpa_per_example / sdpa_nested, bf16 on varlen (where rounding may flip a decision near a
   threshold, so the fraction of equal tokens-per-layer entries is reported rather than required);
3. bf16 training with the stock `Trainer` (`TrainingArguments(bf16=True)`, what `run_glue.py --bf16` does) from
   the real MiniLM weights: a dense fine-tune on the bundled SST-2 sentences, then each type converted (or
   compressed) from it and trained further; final loss, whether the method's own parameters moved, accuracy
   and kept fraction on SST-2 dev sentences on the packed engine in bf16;
4. `--write-checkpoints DIR`: the bench step's checkpoints `dense` (the fine-tuned one of step 3, else MiniLM
   with a fresh head), `ltp` (converted with defaults) and `transkimmer` (converted so that it skims about half
   of the tokens), each with its tokenizer.

The MiniLM folder comes from `--minilm` (env MINILM_DIR, default `.gpu/minilm`, written by
`utils/prepare_gpu_check.sh`; fp16 weights, loaded into fp32 models). Prints the report (JSON, also written to
`--output` after every step, so a run stopped by its timeout keeps what it measured); exits 1 when a step
raised. `--device cpu --quick` runs every step at tiny sizes here (the CUDA-only kernels marked skipped).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

import transformers_prune
from transformers_prune.compression import compress_checkpoint
from transformers_prune.conversion import convert_bert_checkpoint
from transformers_prune.models.modeling_packed_bert import PackedBertForSequenceClassification
from transformers_prune.models.token_engine import (
    FLASH_ATTN_AVAILABLE,
    PackedBatch,
    pack,
    packed_attention,
    packed_attention_with_received,
    varlen_unavailable,
)
from transformers_prune.resources import bundled_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, vocab_size=30522)
HEADS, HEAD_SIZE = 12, 32
# Step 1: the backends timed in each dtype (varlen and flash-attn's kernel take half precision only).
BF16_KERNELS = ("varlen", "sdpa_padded", "sdpa_per_example", "flash_varlen")
FP32_KERNELS = ("sdpa_padded", "sdpa_nested")
MAX_LENGTH = 128  # SST-2 sentences are far shorter: no truncation in practice

# Step 2: the types, with settings under which `make_dropping`'s weights drop tokens.
TOKEN_TYPES = {
    "transkimmer-bert": (transformers_prune.TranskimmerConfig, transformers_prune.TranskimmerForSequenceClassification, {}),
    "ltp": (transformers_prune.LTPConfig, transformers_prune.LTPForSequenceClassification, {"final_token_threshold": 0.05}),
    "adapler-bert": (transformers_prune.AdapLeRConfig, transformers_prune.AdapLeRForSequenceClassification, {"eta_init": 0.6}),
    "autobert": (transformers_prune.AutoBertConfig, transformers_prune.AutoBertForSequenceClassification, {}),
}
# dtype -> the packed engine's attention backends compared with the masked engine.
EQUIVALENCE_BACKENDS = {torch.float32: ("sdpa_padded", "sdpa_per_example", "sdpa_nested"), torch.bfloat16: ("varlen",)}
# fp32 packed and masked logits agree to ~1e-7 when both are exact; more is a finding.
FP32_LOGIT_TOLERANCE = 1e-3

# Step 3: type -> (convert overrides, learning rate). LTP's soft stage and TR-BERT's train_both are the stages in
# which the method's own parameters learn; the final threshold is LTP's usual SST-2 scale.
TRAINING_RECIPES = {
    "transkimmer-bert": ({}, 1e-4),
    "ltp": ({"masking_mode": "soft", "final_token_threshold": 0.005}, 2e-5),
    "adapler-bert": ({}, 1e-4),
    "autobert": ({"training_stage": "train_both"}, 2e-5),
}
DENSE_LEARNING_RATE = 1e-4
# Recovery after SVD of the key and FFN-output matrices at ratio 3: the dense fine-tune's rate.
COMPRESSED_LEARNING_RATE = 1e-4
# Keep logit +0.15, skim logit -0.15 before the predictors' random weights: MiniLM then keeps about half of the
# SST-2 tokens (measured on the CPU: 47% of the tokens over the 6 layers).
BENCH_SKIM_INIT_BIAS = 0.15


@dataclass(frozen=True)
class Sizes:
    sst2_batch: int
    imdb_batch: int
    warmup: int
    iterations: int
    dense_steps: int
    method_steps: int
    train_batch: int
    dev_examples: int


FULL = Sizes(
    sst2_batch=128, imdb_batch=32, warmup=5, iterations=20, dense_steps=60, method_steps=30, train_batch=32, dev_examples=256
)
QUICK = Sizes(sst2_batch=16, imdb_batch=4, warmup=1, iterations=2, dense_steps=4, method_steps=2, train_batch=8, dev_examples=32)


def guarded(step, *args) -> dict:
    """`step(*args)`, or the error it raised: one failing check must not hide the others."""
    try:
        return step(*args)
    except Exception as error:  # noqa: BLE001 - every failure is a result to report
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}"}


def timed(step, *args) -> dict:
    """`guarded(step, *args)` with its wall time added."""
    start = time.perf_counter()
    result = guarded(step, *args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def ms_per_call(call, device: torch.device, sizes: Sizes) -> float:
    """Milliseconds per `call()` after warm-up: CUDA events on a GPU (no host sync inside the loop)."""
    for _ in range(sizes.warmup):
        call()
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(sizes.iterations):
            call()
        return (time.perf_counter() - start) * 1000 / sizes.iterations
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(sizes.iterations):
        call()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / sizes.iterations


# ------------------------------------------------------------------------------------------- 1. attention kernels


def random_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    return torch.randint(low, high + 1, (count,), generator=torch.Generator().manual_seed(seed)).tolist()


def packed_kernel_inputs(lengths: list[int], device: torch.device) -> tuple[PackedBatch, tuple[torch.Tensor, ...]]:
    """A packed batch of these lengths and fp32 query/key/value `[N, 12, 32]` for it (seeded)."""
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).to(device)
    batch = pack(torch.zeros(len(lengths), max(lengths), 1, device=device), mask)
    generator = torch.Generator().manual_seed(0)
    qkv = tuple(torch.randn(batch.num_tokens, HEADS, HEAD_SIZE, generator=generator).to(device) for _ in range(3))
    return batch, qkv


def backend_problem(backend: str, query: torch.Tensor) -> str | None:
    """Why `backend` cannot run on `query` here (a CUDA-only kernel, a missing package), or None."""
    if backend == "varlen":
        return varlen_unavailable(query)
    if backend == "flash_varlen" and not (FLASH_ATTN_AVAILABLE and query.is_cuda):
        return "flash_varlen needs CUDA and the flash-attn package"
    return None


def kernel_timings(batch: PackedBatch, qkv, dtype: torch.dtype, backends, device, sizes: Sizes) -> dict:
    """ms per `packed_attention` call of each backend and its max difference from "sdpa_padded" at `dtype`."""
    q, k, v = (t.to(dtype) for t in qkv)
    scale = HEAD_SIZE**-0.5
    reference = packed_attention(q, k, v, batch, scale, "sdpa_padded").float()
    results = {}
    for backend in backends:
        if problem := backend_problem(backend, q):
            results[backend] = {"skipped": problem}
            continue
        out = packed_attention(q, k, v, batch, scale, backend)
        results[backend] = {
            "ms_per_call": ms_per_call(lambda: packed_attention(q, k, v, batch, scale, backend), device, sizes),
            "max_abs_difference_vs_sdpa_padded": (out.float() - reference).abs().max().item(),
        }
    return results


def max_relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).abs() / expected.float().abs()).max().item()


def received_timings(batch: PackedBatch, qkv, device, sizes: Sizes) -> dict:
    """bf16 received attention from varlen's log-sum-exp against eager's explicit probabilities; each also
    against eager in fp32 on the same (bf16-rounded) inputs, to tell which side the difference comes from."""
    q, k, v = (t.to(torch.bfloat16) for t in qkv)
    scale = HEAD_SIZE**-0.5
    fp32_received = packed_attention_with_received(q.float(), k.float(), v.float(), batch, scale, "eager")[1]
    received, results = {}, {}
    for backend in ("varlen", "eager"):
        if problem := backend_problem(backend, q):
            results[backend] = {"skipped": problem}
            continue
        received[backend] = packed_attention_with_received(q, k, v, batch, scale, backend)[1]
        results[backend] = {
            "ms_per_call": ms_per_call(
                lambda: packed_attention_with_received(q, k, v, batch, scale, backend), device, sizes
            ),
            "max_relative_difference_vs_fp32_eager": max_relative_difference(received[backend], fp32_received),
        }
    if len(received) == 2:
        results["max_relative_difference_varlen_vs_eager"] = max_relative_difference(received["varlen"], received["eager"])
    return results


@torch.no_grad()
def attention_kernels(device: torch.device, sizes: Sizes) -> dict:
    shapes = {"sst2_like": (sizes.sst2_batch, 5, 66), "imdb_like": (sizes.imdb_batch, 100, 512)}
    results = {}
    for name, (count, low, high) in shapes.items():
        batch, qkv = packed_kernel_inputs(random_lengths(count, low, high, seed=0), device)
        results[name] = {
            "batch_size": count,
            "live_tokens": batch.num_tokens,
            "max_seqlen": batch.max_seqlen,
            "bfloat16": kernel_timings(batch, qkv, torch.bfloat16, BF16_KERNELS, device, sizes),
            "float32": kernel_timings(batch, qkv, torch.float32, FP32_KERNELS, device, sizes),
            "received_bfloat16": received_timings(batch, qkv, device, sizes),
        }
    return results


# ------------------------------------------------------------------------------------------- 2. packed == masked


def padded_batch(lengths: list[int], device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids (with [CLS]) right-padded to the longest length, and the mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, 30000, (len(lengths), max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    input_ids[:, 0] = 101
    return input_ids.masked_fill(mask == 0, 0).to(device), mask.to(device)


@torch.no_grad()
def make_dropping(model) -> None:
    """Predictor / attention weights under which each method drops part of the tokens. LTP has no predictor: it
    scores tokens by the attention they receive, so its queries and keys get large weights, which concentrate
    attention on few tokens (and give scores far apart, which the masked engine's softmax must survive)."""
    encoder = model.base_model.encoder
    for name, module in encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.startswith("layer."):
            module.weight.normal_(0.0, 0.3)
    if hasattr(encoder, "threshold_offsets"):
        for layer in encoder.layer:
            layer.attention.self.query.weight.normal_(0.0, 0.3)
            layer.attention.self.key.weight.normal_(0.0, 0.3)


@torch.no_grad()
def compare_engines(model, input_ids, mask, backend: str) -> dict:
    model.config.packed_attention_backend = backend
    model.config.inference_engine = "packed"
    packed = model(input_ids=input_ids, attention_mask=mask)
    model.config.inference_engine = "masked"
    masked = model(input_ids=input_ids, attention_mask=mask)
    equal = packed.tokens_per_layer == masked.tokens_per_layer
    return {
        "max_abs_logit_difference": (packed.logits.float() - masked.logits.float()).abs().max().item(),
        "same_tokens_per_layer": bool(equal.all()),
        "equal_tokens_per_layer_fraction": equal.float().mean().item(),
        "kept_fraction": packed.tokens_per_layer.sum().item() / (mask.sum().item() * MINILM["num_hidden_layers"]),
    }


def packed_equals_masked(device: torch.device) -> dict:
    input_ids, mask = padded_batch([64, 40, 17, 5, 1, 33, 12, 60, 66, 9, 25, 48, 3, 20, 57, 30], device, seed=1)
    results = {}
    for name, (config_class, model_class, settings) in TOKEN_TYPES.items():
        torch.manual_seed(0)
        model = model_class(config_class(**MINILM, **settings)).to(device).eval()
        make_dropping(model)
        for dtype, backends in EQUIVALENCE_BACKENDS.items():  # fp32 first: the cast to bf16 is one-way
            model.to(dtype)
            for backend in backends:
                key = f"{name}/{str(dtype).removeprefix('torch.')}/{backend}"
                problem = backend_problem(backend, torch.empty(0, device=device, dtype=dtype))
                results[key] = {"skipped": problem} if problem else guarded(compare_engines, model, input_ids, mask, backend)
    return results


# --------------------------------------------------------------------------------------------- 3. bf16 training


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenized sentences with their labels, as dicts for `DataCollatorWithPadding`."""

    def __init__(self, tokenizer, rows: list[tuple[str, int]]):
        encoded = tokenizer([text for text, _ in rows], truncation=True, max_length=MAX_LENGTH)
        self.items = [
            {**{key: values[i] for key, values in encoded.items()}, "labels": label} for i, (_, label) in enumerate(rows)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def sst2_rows(file_name: str, limit: int) -> list[tuple[str, int]]:
    with open(bundled_file(file_name), encoding="utf-8", newline="") as f:
        return [(row["sentence"], int(row["label"])) for row, _ in zip(csv.DictReader(f), range(limit))]


@dataclass(frozen=True)
class TrainingSetup:
    """What every training run of step 3 shares."""

    device: torch.device
    sizes: Sizes
    tokenizer: object
    train_set: EncodedDataset
    dev_rows: list[tuple[str, int]]
    work_dir: str


def training_setup(device: torch.device, sizes: Sizes, minilm: str, work_dir: str) -> TrainingSetup:
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    train_rows = sst2_rows("sst2_train_8k.csv", sizes.dense_steps * sizes.train_batch)
    dev_rows = sst2_rows("sst2_dev.csv", sizes.dev_examples)
    return TrainingSetup(device, sizes, tokenizer, EncodedDataset(tokenizer, train_rows), dev_rows, work_dir)


def train(model, setup: TrainingSetup, steps: int, learning_rate: float) -> dict:
    """`steps` of the stock Trainer in bf16 mixed precision (autocast, fp32 weights), as `run_glue.py --bf16`."""
    args = TrainingArguments(
        output_dir=os.path.join(setup.work_dir, "trainer"), bf16=True, use_cpu=setup.device.type == "cpu",
        max_steps=steps, per_device_train_batch_size=setup.sizes.train_batch, learning_rate=learning_rate,
        logging_steps=max(1, steps // 3), save_strategy="no", report_to="none", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=setup.train_set, data_collator=DataCollatorWithPadding(setup.tokenizer))
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "steps": steps,
        "learning_rate": learning_rate,
        "logged_losses": losses,
        "final_loss": losses[-1],
        "loss_finite": all(math.isfinite(loss) for loss in losses + [result.training_loss]),
    }


def method_parameters(model) -> dict[str, torch.Tensor]:
    """Copies of the tensors the method adds or replaces: the predictors, thresholds and selectors beside the
    encoder's layers, or the factors of compressed-bert's compressed modules."""
    prefix = model.base_model_prefix + "."
    compressed = tuple(f"{prefix}{module}." for module in getattr(model.config, "compressed_modules", None) or ())
    return {
        name: p.detach().clone() for name, p in model.named_parameters()
        if (name.startswith(compressed) if compressed else name.startswith(prefix + "encoder.") and ".layer." not in name)
    }


@torch.no_grad()
def evaluate(model, setup: TrainingSetup) -> dict:
    """Accuracy and kept fraction on the dev rows, packed engine, bf16 weights and activations."""
    model = model.eval().to(setup.device, torch.bfloat16)
    model.config.inference_engine = "packed"
    correct = kept = real = 0
    for start in range(0, len(setup.dev_rows), 64):
        rows = setup.dev_rows[start : start + 64]
        inputs = setup.tokenizer(
            [text for text, _ in rows], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        outputs = model(**inputs.to(setup.device))
        correct += (outputs.logits.argmax(-1).cpu() == torch.tensor([label for _, label in rows])).sum().item()
        if getattr(outputs, "tokens_per_layer", None) is not None:
            kept += outputs.tokens_per_layer.sum().item()
            real += inputs["attention_mask"].sum().item() * model.config.num_hidden_layers
    return {
        "dev_examples": len(setup.dev_rows),
        "accuracy": correct / len(setup.dev_rows),
        "kept_fraction": kept / real if real else None,
    }


def fine_tune_dense(setup: TrainingSetup, minilm: str, dense_dir: str) -> dict:
    """MiniLM with a fresh classification head, fine-tuned and saved (with its tokenizer) to `dense_dir`."""
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(minilm, num_labels=2, dtype=torch.float32)
    result = train(model, setup, setup.sizes.dense_steps, DENSE_LEARNING_RATE)
    model.save_pretrained(dense_dir)
    setup.tokenizer.save_pretrained(dense_dir)
    return {**result, **evaluate(PackedBertForSequenceClassification.from_pretrained(dense_dir, dtype=torch.float32), setup)}


def train_method(setup: TrainingSetup, folder: str, learning_rate: float) -> dict:
    """Train the checkpoint at `folder` further and evaluate it."""
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    start = method_parameters(model)
    result = train(model, setup, setup.sizes.method_steps, learning_rate)
    moved = [name for name, p in method_parameters(model).items() if not torch.equal(p.cpu(), start[name].cpu())]
    return {
        **result,
        "method_tensors": len(start),
        "method_tensors_moved": len(moved),
        "method_parameters_moved": bool(moved),
        **evaluate(model, setup),
    }


def convert_and_train(setup: TrainingSetup, dense_dir: str, model_type: str) -> dict:
    overrides, learning_rate = TRAINING_RECIPES[model_type]
    folder = convert_bert_checkpoint(dense_dir, model_type, os.path.join(setup.work_dir, model_type), **overrides)
    return {"overrides": overrides, **train_method(setup, folder, learning_rate)}


def compress_and_train(setup: TrainingSetup, dense_dir: str) -> dict:
    folder = os.path.join(setup.work_dir, "compressed-bert")
    compress_checkpoint(dense_dir, folder, "svd", ["key", "output"], None, 3.0)
    return {"compression": "svd of key and output, ratio 3", **train_method(setup, folder, COMPRESSED_LEARNING_RATE)}


# ------------------------------------------------------------------------------------------ 4. bench checkpoints


def write_checkpoints(folder: str, minilm: str) -> dict:
    """`dense` (kept when step 3 wrote it, else MiniLM with a fresh head), `ltp` and `transkimmer` from it."""
    dense_dir = os.path.join(folder, "dense")
    fine_tuned = os.path.isfile(os.path.join(dense_dir, "config.json"))
    if not fine_tuned:
        torch.manual_seed(0)
        BertForSequenceClassification.from_pretrained(minilm, num_labels=2, dtype=torch.float32).save_pretrained(dense_dir)
        AutoTokenizer.from_pretrained(minilm).save_pretrained(dense_dir)
    convert_bert_checkpoint(dense_dir, "ltp", os.path.join(folder, "ltp"))
    transkimmer = os.path.join(folder, "transkimmer")
    convert_bert_checkpoint(dense_dir, "transkimmer-bert", transkimmer, skim_init_bias=BENCH_SKIM_INIT_BIAS)
    return {"folder": folder, "dense": "fine-tuned in step 3" if fine_tuned else "MiniLM with a fresh head"}


# ----------------------------------------------------------------------------------------------------- report


def leaves(report: dict, path: str = ""):
    """(path, key, value) of every non-dict entry of the report."""
    for key, value in report.items():
        where = f"{path}/{key}" if path else key
        if isinstance(value, dict):
            yield from leaves(value, where)
        else:
            yield where, key, value


def errors(report: dict) -> list[str]:
    return [f"{where.removesuffix('/error')}: {value}" for where, key, value in leaves(report) if key == "error"]


FLAGS = ("loss_finite", "method_parameters_moved", "same_tokens_per_layer")  # False is a finding


def findings(report: dict) -> list[str]:
    """Non-finite losses, method parameters that did not move, fp32 packed/masked mismatches (bf16 is left out:
    rounding may flip a decision near a threshold)."""
    found = []
    for where, key, value in leaves(report):
        if value is False and key in FLAGS and "/bfloat16/" not in where:
            found.append(f"{where} is false")
        elif key == "max_abs_logit_difference" and "/float32/" in where and value > FP32_LOGIT_TOLERANCE:
            found.append(f"{where} = {value:.3g}")
    return found


def save(report: dict, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


def bf16_training(report: dict, args, device: torch.device, sizes: Sizes, work_dir: str) -> dict:
    """Step 3 into `report["bf16_training"]`, saved after each model, and step 4 as soon as the dense model is
    trained (the bench step needs the checkpoints more than the last type's figures). Returns {}: `guarded` turns
    an error of the shared setup into the step's result."""
    training = report["bf16_training"]
    setup = training_setup(device, sizes, args.minilm, work_dir)
    dense_dir = os.path.join(args.write_checkpoints or work_dir, "dense")
    training["dense"] = timed(fine_tune_dense, setup, args.minilm, dense_dir)
    save(report, args.output)
    if args.write_checkpoints:
        report["bench_checkpoints"] = timed(write_checkpoints, args.write_checkpoints, args.minilm)
    if "error" in training["dense"]:
        return {}
    for model_type in TRAINING_RECIPES:
        training[model_type] = timed(convert_and_train, setup, dense_dir, model_type)
        save(report, args.output)
    training["compressed-bert"] = timed(compress_and_train, setup, dense_dir)
    return {}


def run_checks(report: dict, args, device: torch.device, sizes: Sizes) -> None:
    """Steps 1-3 (and 4 with `--write-checkpoints`), saving the report after each."""
    report["attention_kernels"] = timed(attention_kernels, device, sizes)
    save(report, args.output)
    report["packed_equals_masked"] = timed(packed_equals_masked, device)
    save(report, args.output)
    report["bf16_training"] = {}
    with tempfile.TemporaryDirectory() as work_dir:
        report["bf16_training"].update(guarded(bf16_training, report, args, device, sizes, work_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", help="write the JSON report here too")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny batches and step counts: a CPU run of every step")
    parser.add_argument("--minilm", default=os.environ.get("MINILM_DIR", os.path.join(REPO, ".gpu", "minilm")),
                        help="MiniLM checkpoint folder (default: env MINILM_DIR, else .gpu/minilm)")
    parser.add_argument("--write-checkpoints", metavar="DIR", help="also write the bench checkpoints into DIR (step 4)")
    parser.add_argument("--no-checks", action="store_true", help="skip steps 1-3: only write the checkpoints")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; pass --device cpu (with --quick for a short run)")
    # Checked here: transformers builds an empty tokenizer from a folder without one, and training runs on [UNK]s.
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not os.path.isfile(os.path.join(args.minilm, name))]
    if missing:
        parser.error(f"{args.minilm} lacks {', '.join(missing)}: run utils/prepare_gpu_check.sh, or pass --minilm")
    if args.no_checks:
        if not args.write_checkpoints:
            parser.error("--no-checks needs --write-checkpoints")
        print(json.dumps(write_checkpoints(args.write_checkpoints, args.minilm)))
        return
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "flash_attn": FLASH_ATTN_AVAILABLE,
        "quick": args.quick,
    }
    run_checks(report, args, device, QUICK if args.quick else FULL)
    report["errors"], report["findings"] = errors(report), findings(report)
    save(report, args.output)
    print(json.dumps(report, indent=1))
    sys.exit(1 if report["errors"] else 0)


if __name__ == "__main__":
    main()
