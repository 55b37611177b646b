"""FLOPs counted on a real run with `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Q K^T and P V for `[B, nh, S_q, d]` queries on `[B, nh, S_k, d]` keys: torch's formula for the CUDA kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# torch has formulas for the CUDA attention kernels only; without this entry FlopCounterMode counts attention on
# CPU (the fused kernel both HF's sdpa BERT and the packed engine call) as 0 FLOPs.
CPU_ATTENTION_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops}


def flop_counter() -> FlopCounterMode:
    """A silent `FlopCounterMode` that also counts CPU attention; read `get_total_flops()` after the `with` block."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)


__all__ = ["CPU_ATTENTION_FLOPS", "flop_counter"]
