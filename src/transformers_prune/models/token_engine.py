"""The packed token engine: run a BERT encoder on live tokens only, and drop tokens between layers.

At inference the live tokens of a whole batch are held packed as `[N, H]` (N = live tokens in the batch),
with per-example offsets (`cu_seqlens`) and each token's place in the padded `[B, S]` grid (`indices`).
All linear work (QKV, attention output, FFN) runs on those N rows; only attention needs per-example
structure. A method drops tokens by handing `drop_tokens` a boolean `keep` over the N live tokens; the
engine compacts the batch and, when asked, writes the dropped tokens' last states into a restore buffer so
heads that need every position (QA, token classification, Transkimmer's skip-to-output) still get them.

Shapes: B = batch size, S = padded length, N = live tokens, H = hidden size, nh = heads, d = head size.

Attention kernel, chosen once per device by measurement (`docs/engine.md` has the figures; 2-core CPU,
torch 2.13, MiniLM-L6 shapes 12 heads x 32):

- CPU: one SDPA call per example on its own slice ("sdpa_per_example"). Against one SDPA call on a
  re-padded `[B, nh, S_max, d]` block with a key mask, it took 1.55 ms vs 2.17 ms on 32 SST-2 dev sentences
  and 44 ms vs 140 ms on 32 IMDB reviews (512 max): the masked call computes the padding and leaves the
  fused CPU kernel's fast path. Length buckets (2-8 re-padded groups) and jagged nested tensors were
  slower than the per-example loop at every batch size measured.
- CUDA, fp16/bf16: PyTorch's own padding-free kernel, `torch.nn.attention.varlen.varlen_attn` (torch >= 2.10, its
  bundled FlashAttention-2, sm80+: "varlen"), on the packed tokens and `cu_seqlens` as they are, so dropped tokens
  save attention time too; else flash-attn's varlen kernel when that package is installed ("flash_varlen").
- CUDA otherwise (fp32, older GPUs): one SDPA call on the re-padded block ("sdpa_padded"), which keeps the GPU to
  one launch per layer instead of one per example. "sdpa_nested" (one SDPA call on a jagged nested tensor built from
  the packed tokens, no padding) is the candidate to replace it; `utils/gpu_check.sh` times both (no GPU here yet).

Selectors that score tokens by the attention they receive need more than a fused kernel's output. With "varlen"
the kernel also returns each query's log-sum-exp (LSE), and the received attention is one more pass over the
scores, exp(q.k * scale - LSE) summed over queries, in query blocks of bounded size: no probability tensor is
kept and the context still comes from the fused kernel. Elsewhere the probabilities are formed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from transformers.utils import is_flash_attn_2_available

# Guarded so that loading a checkpoint's copy of this file with trust_remote_code does not require flash-attn.
FLASH_ATTN_AVAILABLE = is_flash_attn_2_available()
if FLASH_ATTN_AVAILABLE:
    from flash_attn import flash_attn_varlen_func
try:  # public since torch 2.10
    from torch.nn.attention.varlen import AuxRequest, varlen_attn
except ImportError:
    varlen_attn = AuxRequest = None
VARLEN_DTYPES = (torch.float16, torch.bfloat16)

# "eager" forms the probabilities explicitly (per example on CPU, on the re-padded block elsewhere), as HF's
# `attn_implementation="eager"` does; the others are fused kernels.
ATTENTION_BACKENDS = ("sdpa_per_example", "sdpa_padded", "sdpa_nested", "varlen", "flash_varlen", "eager")
# Scores held at once by the LSE pass of the received attention (fp32: 256 MiB).
RECEIVED_BLOCK_SCORES = 2**26


@dataclass(frozen=True)
class PackedBatch:
    """The live tokens of a batch, packed. Immutable: `drop_tokens` returns a new record.

    Attributes:
        hidden: `[N, H]` states of the live tokens, examples one after another, each in original order.
        indices: `[N]` int64, each live token's position in the flattened `[B * S]` grid; original
            position is `indices % seq_len`, example id is `indices // seq_len`.
        cu_seqlens: `[B + 1]` int32 cumulative live-token counts with a leading zero (flash-attn layout).
        offsets: the same offsets as Python ints, read from the device once per compaction so the
            per-example attention loop never syncs.
        max_seqlen: the longest example's live-token count.
        batch_size, seq_len: the padded grid `[B, S]` the batch came from, to restore full-length outputs.
        restore: `[B * S, H]` last states of dropped tokens, or None when the caller does not need them.
    """

    hidden: torch.Tensor
    indices: torch.Tensor
    cu_seqlens: torch.Tensor
    offsets: tuple[int, ...]
    max_seqlen: int
    batch_size: int
    seq_len: int
    restore: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return self.hidden.shape[0]

    def seqlens(self) -> torch.Tensor:
        """`[B]` int64 live-token count of each example (on the batch's device, no host sync)."""
        return (self.cu_seqlens[1:] - self.cu_seqlens[:-1]).long()

    def first_token_rows(self) -> torch.Tensor:
        """`[B]` row of each example's first live token ([CLS] for right-padded BERT inputs)."""
        return self.cu_seqlens[:-1].long()

    def first_token_mask(self) -> torch.Tensor:
        """`[N]` bool, True on each example's first live token: the row selectors must keep."""
        mask = torch.zeros(self.num_tokens, dtype=torch.bool, device=self.hidden.device)
        mask[self.first_token_rows()] = True
        return mask

    def example_ids(self) -> torch.Tensor:
        """`[N]` int64 example id of each live token."""
        return torch.div(self.indices, self.seq_len, rounding_mode="floor")

    def with_hidden(self, hidden: torch.Tensor) -> PackedBatch:
        return replace(self, hidden=hidden)


def check_attention_mask(
    attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None, vocab_size: int | None = None
) -> None:
    """Reject masks the engine (and BERT's [CLS] pooling) cannot serve, and (given `input_ids` and `vocab_size`)
    token ids outside the vocabulary, naming the bad examples."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be 2-D [batch, seq_len], got shape {tuple(attention_mask.shape)}")
    if attention_mask.shape[0] == 0:
        raise ValueError("the batch is empty: it has no examples")
    if attention_mask.shape[1] == 0:
        raise ValueError("the input is empty: seq_len is 0")
    empty, left_padded = attention_mask.sum(dim=1) == 0, attention_mask[:, 0] == 0
    out_of_vocabulary = torch.zeros_like(empty)
    if input_ids is not None and vocab_size is not None:
        out_of_vocabulary = ((input_ids < 0) | (input_ids >= vocab_size)).any(dim=1)
    if not (empty | left_padded | out_of_vocabulary).any():  # the one host sync of a valid input
        return
    if out_of_vocabulary.any():
        examples = out_of_vocabulary.nonzero().flatten().tolist()
        raise ValueError(
            f"examples {examples} hold token ids outside the model's vocabulary 0..{vocab_size - 1} (e.g. "
            f"{input_ids[examples[0]][(input_ids[examples[0]] < 0) | (input_ids[examples[0]] >= vocab_size)][0].item()}); "
            "was the text tokenized with another model's tokenizer?"
        )
    if empty.any():
        examples = empty.nonzero().flatten().tolist()
        raise ValueError(f"examples {examples} are all padding (attention_mask is all zeros); each needs a [CLS] token")
    examples = left_padded.nonzero().flatten().tolist()
    raise ValueError(
        f"examples {examples} are left-padded (attention_mask[:, 0] == 0); BERT reads [CLS] at position 0, "
        "so pad on the right (the default of BERT tokenizers)"
    )


def checked_attention_mask(
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    max_positions: int | None = None,
    vocab_size: int | None = None,
) -> torch.Tensor:
    """The `[B, S]` attention mask of a model call (all ones when None), after checking the inputs' shapes, their
    length against `max_positions` (the model's position embeddings) and `check_attention_mask` (token ids against
    `vocab_size`)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    batch_shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
    if len(batch_shape) != 2:
        raise ValueError(f"inputs must be [batch, seq_len], got shape {tuple(batch_shape)}")
    if max_positions is not None and batch_shape[1] > max_positions:
        raise ValueError(
            f"inputs have {batch_shape[1]} positions but the model has {max_positions} position embeddings "
            f"(max_position_embeddings); truncate them, e.g. tokenizer(..., truncation=True, max_length={max_positions})"
        )
    if attention_mask is None:
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        attention_mask = torch.ones(batch_shape, dtype=torch.long, device=device)
    if attention_mask.shape != batch_shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match inputs {tuple(batch_shape)}")
    check_attention_mask(attention_mask, input_ids, vocab_size)
    return attention_mask


def _offsets_from_counts(counts: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...], int]:
    # int32 cu_seqlens is what flash-attn's varlen kernels take; the host copy is the one sync per compaction.
    cu_seqlens = F.pad(counts.cumsum(0, dtype=torch.int32), (1, 0))
    offsets = tuple(cu_seqlens.tolist())
    max_seqlen = max(b - a for a, b in zip(offsets[:-1], offsets[1:]))
    return cu_seqlens, offsets, max_seqlen


def pack(hidden: torch.Tensor, attention_mask: torch.Tensor, keep_restore_buffer: bool = False) -> PackedBatch:
    """Pack `[B, S, H]` states to the live tokens given by a `[B, S]` 0/1 mask (the meaning of `unpad_input`)."""
    batch_size, seq_len, hidden_size = hidden.shape
    live = attention_mask.bool()
    indices = live.flatten().nonzero().flatten()
    cu_seqlens, offsets, max_seqlen = _offsets_from_counts(live.sum(dim=1))
    flat = hidden.reshape(batch_size * seq_len, hidden_size)
    restore = torch.zeros_like(flat) if keep_restore_buffer else None
    return PackedBatch(flat[indices], indices, cu_seqlens, offsets, max_seqlen, batch_size, seq_len, restore)


def unpack(batch: PackedBatch) -> torch.Tensor:
    """`[B, S, H]` full-length states: live tokens' current states over the restore buffer (zeros if none)."""
    hidden_size = batch.hidden.shape[-1]
    base = batch.restore if batch.restore is not None else batch.hidden.new_zeros(batch.batch_size * batch.seq_len, hidden_size)
    full = base.index_copy(0, batch.indices, batch.hidden)
    return full.view(batch.batch_size, batch.seq_len, hidden_size)


def drop_tokens(batch: PackedBatch, keep: torch.Tensor) -> PackedBatch:
    """Keep the live tokens where `keep` (`[N]` bool) is True; order within each example is preserved.

    Returns `batch` itself when nothing is dropped. Dropped tokens' current states go to the restore buffer
    when the batch carries one. The caller (a selector) guarantees each example keeps at least one token.
    """
    if keep.shape != (batch.num_tokens,) or keep.dtype != torch.bool:
        raise ValueError(f"keep must be a bool tensor of shape ({batch.num_tokens},), got {keep.dtype} {tuple(keep.shape)}")
    kept_rows = keep.nonzero().flatten()
    if kept_rows.numel() == batch.num_tokens:
        return batch
    restore = batch.restore
    if restore is not None:
        dropped_rows = (~keep).nonzero().flatten()
        restore = restore.index_copy(0, batch.indices[dropped_rows], batch.hidden[dropped_rows])
    counts = torch.bincount(batch.example_ids()[kept_rows], minlength=batch.batch_size)
    cu_seqlens, offsets, max_seqlen = _offsets_from_counts(counts)
    if min(b - a for a, b in zip(offsets[:-1], offsets[1:])) == 0:
        raise ValueError("a selector dropped every token of an example; selectors must keep each example's first token")
    return PackedBatch(
        batch.hidden[kept_rows], batch.indices[kept_rows], cu_seqlens, offsets, max_seqlen,
        batch.batch_size, batch.seq_len, restore,
    )


def repeat_examples(batch: PackedBatch, copies: int) -> PackedBatch:
    """Each example `copies` times in a row (example i becomes examples i * copies ... i * copies + copies - 1),
    as a new batch of `batch_size * copies` examples on the same padded length: the rollouts of a policy-gradient
    method, run on what earlier layers computed once. The restore buffer is repeated with them."""
    counts = batch.seqlens().repeat_interleave(copies)
    cu_seqlens, offsets, max_seqlen = _offsets_from_counts(counts)
    new_example = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    slot = torch.arange(new_example.numel(), device=counts.device) - cu_seqlens.long()[new_example]
    source_rows = batch.cu_seqlens.long()[torch.div(new_example, copies, rounding_mode="floor")] + slot
    positions = batch.indices[source_rows] % batch.seq_len
    restore = batch.restore
    if restore is not None:
        restore = restore.view(batch.batch_size, -1).repeat_interleave(copies, dim=0).view(-1, restore.shape[-1])
    return PackedBatch(
        batch.hidden[source_rows], new_example * batch.seq_len + positions, cu_seqlens, offsets, max_seqlen,
        batch.batch_size * copies, batch.seq_len, restore,
    )


def default_attention_backend(device: torch.device, dtype: torch.dtype, attn_implementation: str | None = None) -> str:
    """The kernel measured fastest for this device (see the module docstring); "eager" when the model was loaded
    with `attn_implementation="eager"`."""
    if attn_implementation == "eager":
        return "eager"
    if device.type == "cuda":
        if dtype in VARLEN_DTYPES and varlen_attn is not None and torch.cuda.get_device_capability(device) >= (8, 0):
            return "varlen"
        if dtype in VARLEN_DTYPES and FLASH_ATTN_AVAILABLE:
            return "flash_varlen"
        return "sdpa_padded"
    return "sdpa_per_example"


def configured_attention_backend(config, hidden: torch.Tensor) -> str:
    """`config.packed_attention_backend` when the user forced one, else the default for `hidden`'s device and dtype
    and the model's `attn_implementation`."""
    return getattr(config, "packed_attention_backend", None) or default_attention_backend(
        hidden.device, hidden.dtype, getattr(config, "_attn_implementation", None)
    )


def packed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, batch: PackedBatch, scale: float, backend: str
) -> torch.Tensor:
    """Attention of each example's live tokens to each other. `query/key/value`: `[N, nh, d]` -> `[N, nh, d]`."""
    if backend == "sdpa_per_example":
        return _attention_per_example(query, key, value, batch, scale)
    if backend == "sdpa_padded":
        return _attention_padded(query, key, value, batch, scale)
    if backend == "sdpa_nested":
        return _attention_nested(query, key, value, batch, scale)
    if backend == "varlen":
        return _varlen_attention(query, key, value, batch, scale)
    if backend == "flash_varlen":
        if not FLASH_ATTN_AVAILABLE or not query.is_cuda:
            raise ValueError("the flash_varlen attention backend needs CUDA tensors and the flash-attn package installed")
        return flash_attn_varlen_func(
            query, key, value, batch.cu_seqlens, batch.cu_seqlens, batch.max_seqlen, batch.max_seqlen, softmax_scale=scale
        )
    if backend == "eager":
        return packed_attention_with_received(query, key, value, batch, scale, backend)[0]
    raise ValueError(f"unknown attention backend {backend!r}; expected one of {ATTENTION_BACKENDS}")


def _attention_per_example(query, key, value, batch: PackedBatch, scale: float) -> torch.Tensor:
    out = torch.empty_like(query)
    for start, end in zip(batch.offsets[:-1], batch.offsets[1:]):
        # (1, nh, L, d) strided views: SDPA's fused CPU kernel reads them without a copy.
        q, k, v = (t[start:end].transpose(0, 1).unsqueeze(0) for t in (query, key, value))
        out[start:end] = F.scaled_dot_product_attention(q, k, v, scale=scale)[0].transpose(0, 1)
    return out


def _attention_nested(query, key, value, batch: PackedBatch, scale: float) -> torch.Tensor:
    """One SDPA call on jagged nested tensors `(B, nh, j, d)` viewing the packed tokens: no padding computed."""
    offsets = batch.cu_seqlens.long()
    q, k, v = (torch.nested.nested_tensor_from_jagged(t, offsets).transpose(1, 2) for t in (query, key, value))
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).values()


def varlen_unavailable(query: torch.Tensor) -> str | None:
    """Why torch's varlen kernel cannot run on `query`, or None when it can."""
    if varlen_attn is None or not query.is_cuda or query.dtype not in VARLEN_DTYPES:
        return (
            "the varlen attention backend needs torch >= 2.10 and fp16/bf16 CUDA tensors (an sm80+ GPU), got "
            f"{query.dtype} on {query.device}"
        )
    return None


def _varlen_attention(query, key, value, batch: PackedBatch, scale: float, with_lse: bool = False):
    """torch's FlashAttention-2 on the packed tokens as they are ([N, nh, d] and int32 cu_seqlens are its own
    layout); with `with_lse`, also each query's log-sum-exp `[nh, N]` (fp32)."""
    if problem := varlen_unavailable(query):
        raise ValueError(problem)
    aux = AuxRequest(lse=True) if with_lse else None
    return varlen_attn(
        query, key, value, batch.cu_seqlens, batch.cu_seqlens, batch.max_seqlen, batch.max_seqlen, scale=scale, return_aux=aux
    )


def received_from_lse(
    query: torch.Tensor, key: torch.Tensor, lse: torch.Tensor, batch: PackedBatch, scale: float,
    block_scores: int = RECEIVED_BLOCK_SCORES,
) -> torch.Tensor:
    """The attention each token receives, `[N]` summed over heads and its example's queries, from the queries'
    log-sum-exp `lse` `[nh, N]`: sum_h sum_i exp(scale q_i.k_j - lse_hi) = sum_h sum_i p_hij. The scores are
    formed on the re-padded block one slice of queries at a time (at most `block_scores` of them at once, in fp32);
    a padding query's LSE is +inf, so it adds exactly 0, and padding keys are never read back."""
    flat_slot, _ = _padded_layout(batch)
    q, k = (_repad(t.float(), batch, flat_slot) for t in (query, key))  # (B, nh, S, d)
    padded_lse = lse.new_full((lse.shape[0], batch.batch_size * batch.max_seqlen), float("inf"))
    padded_lse = padded_lse.index_copy(1, flat_slot, lse.float()).view(-1, batch.batch_size, batch.max_seqlen).transpose(0, 1)
    received = q.new_zeros(batch.batch_size, batch.max_seqlen)
    step = max(1, block_scores // (q.shape[0] * q.shape[1] * batch.max_seqlen))
    for start in range(0, batch.max_seqlen, step):
        scores = torch.matmul(q[:, :, start : start + step], k.transpose(-1, -2)) * scale
        received += (scores - padded_lse[:, :, start : start + step, None]).exp().sum(dim=(1, 2))
    return received.flatten()[flat_slot].to(query.dtype)


def _padded_layout(batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each live token's row in a re-padded `[B * S_max]` block, and the block's `[B, S_max]` live mask."""
    example = batch.example_ids()
    slot = torch.arange(batch.num_tokens, device=batch.hidden.device) - batch.cu_seqlens.long()[example]
    live = torch.arange(batch.max_seqlen, device=batch.hidden.device)[None, :] < batch.seqlens()[:, None]
    return example * batch.max_seqlen + slot, live


def _repad(t: torch.Tensor, batch: PackedBatch, flat_slot: torch.Tensor) -> torch.Tensor:
    """`[N, nh, d]` -> `(B, nh, S_max, d)`, zeros on padding."""
    block = t.new_zeros(batch.batch_size * batch.max_seqlen, *t.shape[1:]).index_copy(0, flat_slot, t)
    return block.view(batch.batch_size, batch.max_seqlen, *t.shape[1:]).transpose(1, 2)


def _attention_padded(query, key, value, batch: PackedBatch, scale: float) -> torch.Tensor:
    flat_slot, live = _padded_layout(batch)
    q, k, v = (_repad(t, batch, flat_slot) for t in (query, key, value))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=live[:, None, None, :], scale=scale)
    return out.transpose(1, 2).reshape(-1, *query.shape[1:])[flat_slot]


def packed_attention_with_received(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, batch: PackedBatch, scale: float, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention as `packed_attention`, plus the attention each token receives: `[N]`, summed over heads and
    over the live queries of its example (what attention-based selectors score tokens by).

    With "varlen", from the fused kernel's output and log-sum-exp (`received_from_lse`). Otherwise the probabilities
    are formed explicitly (the other fused kernels return neither): one example at a time for "sdpa_per_example" and
    for "eager" on CPU, else on the re-padded block with padding queries' rows zeroed.
    """
    if backend == "varlen":
        out, lse = _varlen_attention(query, key, value, batch, scale, with_lse=True)
        return out, received_from_lse(query, key, lse, batch, scale)
    if backend == "sdpa_per_example" or (backend == "eager" and not query.is_cuda):
        out, received = torch.empty_like(query), query.new_empty(batch.num_tokens)
        for start, end in zip(batch.offsets[:-1], batch.offsets[1:]):
            q, k, v = (t[start:end].transpose(0, 1) for t in (query, key, value))  # (nh, L, d)
            probs = (torch.matmul(q, k.transpose(1, 2)) * scale).softmax(dim=-1)
            out[start:end] = torch.matmul(probs, v).transpose(0, 1)
            received[start:end] = probs.sum(dim=(0, 1))
        return out, received
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {ATTENTION_BACKENDS}")
    flat_slot, live = _padded_layout(batch)
    q, k, v = (_repad(t, batch, flat_slot) for t in (query, key, value))
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    probs = scores.masked_fill(~live[:, None, None, :], torch.finfo(scores.dtype).min).softmax(dim=-1)
    probs = probs * live[:, None, :, None]
    out = torch.matmul(probs, v).transpose(1, 2).reshape(-1, *query.shape[1:])[flat_slot]
    return out, probs.sum(dim=(1, 2)).flatten()[flat_slot]


__all__ = [
    "ATTENTION_BACKENDS",
    "PackedBatch",
    "check_attention_mask",
    "checked_attention_mask",
    "configured_attention_backend",
    "default_attention_backend",
    "drop_tokens",
    "pack",
    "packed_attention",
    "packed_attention_with_received",
    "received_from_lse",
    "repeat_examples",
    "unpack",
]
