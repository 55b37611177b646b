"""int8 on the torch path: the encoder layers' linear layers as dynamically quantized int8 (CPU).

`quantize_encoder_int8(model)` returns a copy whose QKV, attention-output and FFN linears (every `nn.Linear`
under `encoder.layer`) hold int8 weights, one scale per output channel, and quantize their input per call
(torch's dynamic quantization, fbgemm kernels). Per channel rather than torch's per-matrix default: on the trained
SST-2 checkpoints (872 dev sentences) LTP scores 87.73 against 86.81 (fp32 88.30) and dense-packed 89.33 against
87.96 (fp32 88.88; docs/results/sst2-ltp-int8-per-channel against docs/results/frontier-sst2); a one-thread probe
timed both schemes alike. Everything else stays fp32: embeddings, pooler, heads,
and the token-pruning methods' predictors, so a method decides on fp32 scores of (int8-computed) hidden states. It
stacks with token dropping: the packed engine runs the same modules on fewer rows.

    from transformers_prune.deploy.torch_int8 import quantize_encoder_int8
    model = quantize_encoder_int8(AutoModelForSequenceClassification.from_pretrained("runs/sst2/transkimmer"))

Why torch.ao and not torchao: on this project's CPU, `torch.ao.quantization.quantize_dynamic` runs real int8
GEMMs eagerly (1.35x at batch 1, 1.95x at batch 32 over fp32 on the dense-packed MiniLM, contended 2-core
machine), while torchao's int8 configs need `torch.compile` to reach int8 kernels on CPU, which the packed
engine's data-dependent shapes defeat. torch marks torch.ao as deprecated ("will be removed in 2.10"; torch 2.13
still has it); the call is kept in this one place, and where a torch lacks it `torch_int8_unavailable` says so and
names the supported int8 routes, which are the recommended ones anyway: the ONNX Runtime export
(`transformers-prune export --int8`, our token-dropping graphs included) and OpenVINO's NNCF int8 (the benchmark's
`ov_int8` peer).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def encoder_linear_names(model: nn.Module) -> list[str]:
    """Names of the `nn.Linear` modules inside the encoder's BERT layers (QKV, attention output, FFN; low-rank
    factors of compressed-bert too)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and ".encoder.layer." in f".{name}"]


def torch_int8_unavailable() -> str | None:
    """Why this torch cannot run `quantize_encoder_int8`, or None when it can."""
    quantization = getattr(torch.ao, "quantization", None)
    if getattr(quantization, "quantize_dynamic", None) is None or getattr(quantization, "per_channel_dynamic_qconfig", None) is None:
        return (
            f"torch {torch.__version__} has no torch.ao dynamic quantization (deprecated upstream): for int8, export "
            "with `transformers-prune export --int8` (ONNX Runtime) or use OpenVINO's int8 (bench's ov_int8 peer)"
        )
    return None


@torch.no_grad()
def quantize_encoder_int8(model: nn.Module) -> nn.Module:
    """An eval-mode CPU copy of `model` with `encoder_linear_names` dynamically quantized to int8 (see module
    docstring); `model` itself is untouched. Raises ValueError if the model has no such layers or this torch has no
    torch.ao dynamic quantization (`torch_int8_unavailable`)."""
    if problem := torch_int8_unavailable():
        raise ValueError(problem)
    names = encoder_linear_names(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear under encoder.layer to quantize")
    model = copy.deepcopy(model).float().cpu().eval()
    spec = {name: torch.ao.quantization.per_channel_dynamic_qconfig for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao's notice of its move to torchao (module docstring)
        warnings.simplefilter("ignore", UserWarning)  # the quantized-tensor constructors' notice of the same
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


__all__ = ["encoder_linear_names", "quantize_encoder_int8", "torch_int8_unavailable"]
