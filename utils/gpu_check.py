"""The CUDA checks of `utils/gpu_check.sh`, on MiniLM-L6 shapes (hidden 384, 12 heads, 6 layers), random weights:

1. a bf16 training step (forward with labels, backward, AdamW step) of every model type: finite loss and grads;
2. packed == masked on CUDA for every token-pruning type, fp32, each attention backend that runs there, with
   weights under which the method drops tokens: logits and tokens per layer;
3. flash-attn's varlen kernel against the re-padded SDPA block (bf16), when flash-attn is installed: max
   difference and milliseconds per call on a packed SST-2-like batch;
4. `--write-checkpoints DIR`: a dense MiniLM classifier and a Transkimmer that skims, for the bench step.

Prints one JSON object (also written to `--output`). Never used by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from transformers import BertConfig, BertForSequenceClassification

import transformers_prune
from transformers_prune.models.token_engine import FLASH_ATTN_AVAILABLE, pack, packed_attention

MINILM = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, vocab_size=30522)
TOKEN_TYPES = {
    "transkimmer-bert": (transformers_prune.TranskimmerConfig, transformers_prune.TranskimmerForSequenceClassification, {}),
    "ltp": (transformers_prune.LTPConfig, transformers_prune.LTPForSequenceClassification, {"final_token_threshold": 0.05}),
    "adapler-bert": (transformers_prune.AdapLeRConfig, transformers_prune.AdapLeRForSequenceClassification, {"eta_init": 0.6}),
    "autobert": (transformers_prune.AutoBertConfig, transformers_prune.AutoBertForSequenceClassification, {}),
}


def batch(lengths, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, 30000, (len(lengths), max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    input_ids[:, 0] = 101
    return input_ids.masked_fill(mask == 0, 0).to(device), mask.to(device)


@torch.no_grad()
def make_dropping(model) -> None:
    """Predictor / attention weights under which each method drops part of the tokens."""
    encoder = model.base_model.encoder
    for name, module in encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.startswith("layer."):
            module.weight.normal_(0.0, 0.3)
    if hasattr(encoder, "threshold_offsets"):
        for layer in encoder.layer:
            layer.attention.self.query.weight.normal_(0.0, 0.3)
            layer.attention.self.key.weight.normal_(0.0, 0.3)


def training_steps(device) -> dict:
    results = {}
    compressed = transformers_prune.CompressedBertConfig(
        **MINILM, compressed_modules={f"encoder.layer.{i}.intermediate.dense": {"kind": "low_rank", "rank": 64} for i in range(6)}
    )
    models = {name: model_class(config_class(**MINILM, **settings)) for name, (config_class, model_class, settings) in TOKEN_TYPES.items()}
    models["compressed-bert"] = transformers_prune.CompressedBertForSequenceClassification(compressed)
    input_ids, mask = batch([64, 40, 17, 5] * 4, device)
    labels = torch.randint(0, 2, (len(input_ids),), device=device)
    for name, model in models.items():
        model = model.to(device, torch.bfloat16).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        grads_finite = all(torch.isfinite(p.grad).all().item() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        results[name] = {"loss": loss.item(), "loss_finite": bool(torch.isfinite(loss).item()), "grads_finite": grads_finite}
    return results


@torch.no_grad()
def packed_equals_masked(device) -> dict:
    backends = ["sdpa_padded", "sdpa_per_example"]
    results = {}
    input_ids, mask = batch([64, 40, 17, 5, 1, 33, 12, 60], device, seed=1)
    for name, (config_class, model_class, settings) in TOKEN_TYPES.items():
        torch.manual_seed(0)
        model = model_class(config_class(**MINILM, **settings)).to(device).eval()
        make_dropping(model)
        for backend in backends:
            model.config.packed_attention_backend = backend
            model.config.inference_engine = "packed"
            packed = model(input_ids=input_ids, attention_mask=mask)
            model.config.inference_engine = "masked"
            masked = model(input_ids=input_ids, attention_mask=mask)
            results[f"{name}/{backend}"] = {
                "max_abs_logit_difference": (packed.logits - masked.logits).abs().max().item(),
                "same_tokens_per_layer": torch.equal(packed.tokens_per_layer, masked.tokens_per_layer),
                "kept_fraction": packed.tokens_per_layer.sum().item() / (mask.sum().item() * MINILM["num_hidden_layers"]),
            }
    return results


@torch.no_grad()
def flash_against_padded_sdpa(device) -> dict:
    if not FLASH_ATTN_AVAILABLE:
        return {"skipped": "flash-attn is not installed"}
    lengths = [25, 9, 44, 31, 12, 18, 27, 40] * 4  # SST-2-like, batch 32
    hidden = torch.zeros(len(lengths), max(lengths), 384, device=device, dtype=torch.bfloat16)
    packed = pack(hidden, batch(lengths, device)[1])
    q, k, v = (torch.randn(packed.num_tokens, 12, 32, device=device, dtype=torch.bfloat16) for _ in range(3))
    outputs, timings = {}, {}
    for backend in ("flash_varlen", "sdpa_padded"):
        outputs[backend] = packed_attention(q, k, v, packed, 32**-0.5, backend)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(50):
            packed_attention(q, k, v, packed, 32**-0.5, backend)
        end.record()
        torch.cuda.synchronize()
        timings[backend] = start.elapsed_time(end) / 50
    difference = (outputs["flash_varlen"].float() - outputs["sdpa_padded"].float()).abs().max().item()
    return {"max_abs_difference": difference, "ms_per_call": timings, "live_tokens": packed.num_tokens}


def write_checkpoints(folder: str) -> None:
    """A dense MiniLM-shaped classifier (random weights) and a Transkimmer from it that skims, with a tokenizer."""
    from transformers_prune.resources import default_model_dir
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
        dense = BertForSequenceClassification.from_pretrained(default_model_dir())
    except (FileNotFoundError, OSError):  # no MiniLM package here: random weights, BERT's uncased vocabulary size
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *map(str, range(30518))])}
        backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]")
        dense = BertForSequenceClassification(BertConfig(**MINILM))
    dense.save_pretrained(os.path.join(folder, "dense"))
    tokenizer.save_pretrained(os.path.join(folder, "dense"))
    skimmer = transformers_prune.TranskimmerForSequenceClassification.from_pretrained(os.path.join(folder, "dense"))
    with torch.no_grad():
        for predictor in skimmer.bert.encoder.skim_predictors:
            predictor.classifier.weight.normal_(0.0, 0.05)
            predictor.classifier.bias.copy_(torch.tensor([0.0, 0.3]))
    skimmer.save_pretrained(os.path.join(folder, "transkimmer"))
    tokenizer.save_pretrained(os.path.join(folder, "transkimmer"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", help="write the JSON here too")
    parser.add_argument("--write-checkpoints", metavar="DIR", help="only write the two bench checkpoints into DIR")
    args = parser.parse_args()
    if args.write_checkpoints:
        write_checkpoints(args.write_checkpoints)
        return
    device = torch.device("cuda")
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "flash_attn": FLASH_ATTN_AVAILABLE,
        "bf16_training_step": training_steps(device),
        "packed_equals_masked": packed_equals_masked(device),
        "flash_varlen_vs_sdpa_padded": flash_against_padded_sdpa(device),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
