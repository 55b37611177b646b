"""The packed token engine: pack/unpack, drop_tokens, the restore buffer, input checks, attention backends."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transformers.utils import is_flash_attn_2_available

from transformers_prune.models.token_engine import (
    check_attention_mask,
    drop_tokens,
    pack,
    packed_attention,
    packed_attention_with_received,
    unpack,
)

from transformers_prune.models import token_engine

from conftest import CPU_BACKENDS, varlen_on_cpu

HIDDEN = 6


def mask_from_lengths(lengths, seq_len=None):
    seq_len = max(lengths) if seq_len is None else seq_len
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return mask


def position_coded_hidden(batch_size, seq_len, hidden=HIDDEN):
    """`[B, S, H]` whose every entry of token (b, s) is 100 * b + s, so rows identify their origin."""
    code = 100 * torch.arange(batch_size)[:, None] + torch.arange(seq_len)[None, :]
    return code[..., None].expand(batch_size, seq_len, hidden).float().clone()


# ----------------------------------------------------------------------------------------------- pack / unpack


@pytest.mark.parametrize("lengths,seq_len", [((1, 7, 4), 7), ((3,), 5), ((1,), 1), ((2, 2, 6, 1), 8)])
def test_pack_unpack_round_trip(lengths, seq_len):
    mask = mask_from_lengths(lengths, seq_len)
    hidden = torch.randn(len(lengths), seq_len, HIDDEN)
    batch = pack(hidden, mask)

    assert batch.num_tokens == sum(lengths)
    assert batch.hidden.shape == (sum(lengths), HIDDEN)
    assert batch.cu_seqlens.dtype == torch.int32
    expected_offsets = [0]
    for length in lengths:
        expected_offsets.append(expected_offsets[-1] + length)
    assert list(batch.offsets) == expected_offsets
    assert batch.cu_seqlens.tolist() == expected_offsets
    assert batch.max_seqlen == max(lengths)
    assert batch.seqlens().tolist() == list(lengths)
    assert (batch.batch_size, batch.seq_len) == (len(lengths), seq_len)
    # Live tokens come out in example order, each example in its original token order.
    torch.testing.assert_close(batch.hidden, hidden[mask.bool()], rtol=0, atol=0)
    assert torch.equal(batch.indices, mask.flatten().nonzero().flatten())

    full = unpack(batch)
    assert full.shape == hidden.shape
    real = mask.bool()
    assert torch.equal(full[real], hidden[real])
    assert torch.count_nonzero(full[~real]) == 0  # no restore buffer: padding comes back as zeros


def test_pack_restore_buffer_is_optional():
    mask = mask_from_lengths((2, 4))
    hidden = torch.randn(2, 4, HIDDEN)
    assert pack(hidden, mask).restore is None
    batch = pack(hidden, mask, keep_restore_buffer=True)
    assert batch.restore.shape == (8, HIDDEN)
    assert torch.count_nonzero(batch.restore) == 0


# ----------------------------------------------------------------------------------------------- drop_tokens


def test_drop_tokens_keeps_order_and_rebuilds_offsets():
    lengths, seq_len = (4, 1, 6, 3), 6
    mask = mask_from_lengths(lengths, seq_len)
    batch = pack(position_coded_hidden(len(lengths), seq_len), mask)
    # Live tokens (example, position), in packed order:
    # ex0: 0..3, ex1: 0, ex2: 0..5, ex3: 0..2
    keep_positions = {0: [0, 2, 3], 1: [0], 2: [0, 1, 4], 3: [0]}
    keep = torch.tensor([pos in keep_positions[ex] for ex, length in enumerate(lengths) for pos in range(length)])

    dropped = drop_tokens(batch, keep)

    expected_codes = [100 * ex + pos for ex in range(len(lengths)) for pos in keep_positions[ex]]
    assert dropped.hidden[:, 0].tolist() == expected_codes  # order within and across examples preserved
    assert dropped.hidden.shape == (len(expected_codes), HIDDEN)
    assert dropped.indices.tolist() == [ex * seq_len + pos for ex in range(len(lengths)) for pos in keep_positions[ex]]
    assert list(dropped.offsets) == [0, 3, 4, 7, 8]
    assert dropped.cu_seqlens.tolist() == [0, 3, 4, 7, 8]
    assert dropped.cu_seqlens.dtype == torch.int32
    assert dropped.max_seqlen == 3
    assert dropped.seqlens().tolist() == [3, 1, 3, 1]
    assert (dropped.batch_size, dropped.seq_len) == (batch.batch_size, batch.seq_len)
    assert dropped.first_token_rows().tolist() == [0, 3, 4, 7]
    assert dropped.example_ids().tolist() == [0, 0, 0, 1, 2, 2, 2, 3]
    # The input record is immutable and unchanged.
    assert batch.num_tokens == sum(lengths)
    assert list(batch.offsets) == [0, 4, 5, 11, 14]


def test_drop_tokens_all_true_returns_same_object():
    mask = mask_from_lengths((3, 5))
    batch = pack(torch.randn(2, 5, HIDDEN), mask, keep_restore_buffer=True)
    assert drop_tokens(batch, torch.ones(batch.num_tokens, dtype=torch.bool)) is batch


def test_restore_buffer_holds_dropped_states_at_original_positions():
    lengths, seq_len = (5, 2, 4), 5
    mask = mask_from_lengths(lengths, seq_len)
    hidden = position_coded_hidden(len(lengths), seq_len)
    batch = pack(hidden, mask, keep_restore_buffer=True)

    # Layer 1 "updates" every live token; then some tokens are dropped.
    batch = batch.with_hidden(batch.hidden + 0.5)
    keep = torch.tensor([True, False, True, False, True, True, False, True, True, False, False])
    batch = drop_tokens(batch, keep)
    # Layer 2 updates only the surviving tokens; a second drop happens later.
    batch = batch.with_hidden(batch.hidden + 0.25)
    keep2 = torch.ones(batch.num_tokens, dtype=torch.bool)
    keep2[1] = False  # example 0, position 2
    batch = drop_tokens(batch, keep2)
    batch = batch.with_hidden(batch.hidden + 0.125)

    full = unpack(batch)[..., 0]
    code = hidden[..., 0]
    expected = torch.zeros(len(lengths), seq_len)
    # Example 0: positions 0 and 4 survive both drops; 2 is dropped after layer 2; 1, 3 after layer 1.
    expected[0, 0] = code[0, 0] + 0.875
    expected[0, 1] = code[0, 1] + 0.5
    expected[0, 2] = code[0, 2] + 0.75
    expected[0, 3] = code[0, 3] + 0.5
    expected[0, 4] = code[0, 4] + 0.875
    # Example 1: position 0 survives, 1 dropped after layer 1.
    expected[1, 0] = code[1, 0] + 0.875
    expected[1, 1] = code[1, 1] + 0.5
    # Example 2: positions 0, 1 survive, 2 and 3 dropped after layer 1; position 4 is padding (zeros).
    expected[2, 0] = code[2, 0] + 0.875
    expected[2, 1] = code[2, 1] + 0.875
    expected[2, 2] = code[2, 2] + 0.5
    expected[2, 3] = code[2, 3] + 0.5
    torch.testing.assert_close(full, expected, rtol=0, atol=0)


def test_drop_tokens_rejects_wrong_shape():
    batch = pack(torch.randn(2, 4, HIDDEN), mask_from_lengths((4, 2)))
    with pytest.raises(ValueError, match="keep must be a bool tensor of shape"):
        drop_tokens(batch, torch.ones(batch.num_tokens + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="keep must be a bool tensor of shape"):
        drop_tokens(batch, torch.ones(1, batch.num_tokens, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.long, torch.float32, torch.uint8])
def test_drop_tokens_rejects_non_bool(dtype):
    batch = pack(torch.randn(2, 4, HIDDEN), mask_from_lengths((4, 2)))
    with pytest.raises(ValueError, match="bool"):
        drop_tokens(batch, torch.ones(batch.num_tokens, dtype=dtype))


def test_drop_tokens_rejects_emptied_example():
    batch = pack(torch.randn(3, 4, HIDDEN), mask_from_lengths((4, 2, 3)), keep_restore_buffer=True)
    keep = torch.ones(batch.num_tokens, dtype=torch.bool)
    keep[4:6] = False  # both tokens of example 1
    with pytest.raises(ValueError, match="dropped every token of an example"):
        drop_tokens(batch, keep)


# ----------------------------------------------------------------------------------------------- check_attention_mask


def test_check_attention_mask_accepts_right_padding():
    check_attention_mask(mask_from_lengths((1, 4, 2)))  # no exception


@pytest.mark.parametrize(
    "mask,message",
    [
        (torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0]]), r"examples \[1\] are all padding"),
        (torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1]]), r"examples \[1, 2\] are left-padded"),
        (torch.zeros(2, 0, dtype=torch.long), "seq_len is 0"),
        (torch.ones(4, dtype=torch.long), "must be 2-D"),
        (torch.ones(2, 3, 4, dtype=torch.long), "must be 2-D"),
    ],
    ids=["all_padding", "left_padding", "empty_seq_len", "1d", "3d"],
)
def test_check_attention_mask_rejects(mask, message):
    with pytest.raises(ValueError, match=message):
        check_attention_mask(mask)


# ----------------------------------------------------------------------------------------------- packed_attention

NUM_HEADS, HEAD_SIZE = 3, 8
LENGTH_MIXES = [
    ((1, 9, 4, 6), 9),
    ((9,), 9),
    ((1,), 1),
    ((2, 1, 1, 7, 3), 10),
]


# Not SDPA's default 1 / sqrt(head size): a backend that ignored the scale would show.
SCALE = 0.5 * HEAD_SIZE**-0.5


def reference_attention(query, key, value, batch, scale):
    """Per-example softmax attention in float64, written out explicitly: `[N, nh, d]` outputs and the `[N]`
    attention each token receives, summed over heads and its example's queries."""
    out = torch.empty(query.shape, dtype=torch.float64, device=query.device)
    received = torch.empty(batch.num_tokens, dtype=torch.float64, device=query.device)
    for start, end in zip(batch.offsets[:-1], batch.offsets[1:]):
        q, k, v = (t[start:end].double() for t in (query, key, value))  # [L, nh, d]
        probs = (torch.einsum("qhd,khd->hqk", q, k) * scale).softmax(dim=-1)
        out[start:end] = torch.einsum("hqk,khd->qhd", probs, v)
        received[start:end] = probs.sum(dim=(0, 1))
    return out, received


def random_qkv(batch, dtype=torch.float32):
    shape = (batch.num_tokens, NUM_HEADS, HEAD_SIZE)
    return tuple(torch.randn(shape).to(dtype) for _ in range(3))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("lengths,seq_len", LENGTH_MIXES)
def test_packed_attention_matches_reference(backend, lengths, seq_len):
    batch = pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    query, key, value = random_qkv(batch)
    out = packed_attention(query, key, value, batch, SCALE, backend)
    assert out.shape == query.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference_attention(query, key, value, batch, SCALE)[0], rtol=0, atol=1e-5)


def dropped_batch():
    """A packed batch after a drop: its examples' surviving tokens sit at non-contiguous original positions."""
    lengths, seq_len = (6, 1, 5, 8), 8
    batch = pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    keep = torch.rand(batch.num_tokens) < 0.5
    keep[batch.first_token_rows()] = True
    return drop_tokens(batch, keep)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_packed_attention_after_drop_matches_reference(backend):
    """Examples attend only among their surviving tokens after a drop (non-contiguous indices)."""
    batch = dropped_batch()
    query, key, value = random_qkv(batch)
    out = packed_attention(query, key, value, batch, 0.3, backend)
    torch.testing.assert_close(out.double(), reference_attention(query, key, value, batch, 0.3)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dropped", [False, True], ids=["packed", "after_drop"])
def test_packed_attention_with_received_matches_reference(backend, dropped):
    """The attention-received scores attention-based selectors (LTP) decide by, besides the outputs."""
    lengths, seq_len = LENGTH_MIXES[0]
    batch = dropped_batch() if dropped else pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    query, key, value = random_qkv(batch)
    out, received = packed_attention_with_received(query, key, value, batch, SCALE, backend)
    expected_out, expected_received = reference_attention(query, key, value, batch, SCALE)
    torch.testing.assert_close(out.double(), expected_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(received.double(), expected_received, rtol=0, atol=1e-5)
    # Each query's probabilities sum to 1 over its heads: an example's received scores add up to heads x length.
    per_example = torch.zeros(batch.batch_size, dtype=torch.float64).index_add(0, batch.example_ids(), received.double())
    torch.testing.assert_close(per_example, NUM_HEADS * batch.seqlens().double(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_packed_attention_bf16_close_to_fp32(backend):
    lengths, seq_len = (1, 9, 4, 6), 9
    batch = pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    query, key, value = random_qkv(batch)
    scale = HEAD_SIZE**-0.5
    reference = packed_attention(query, key, value, batch, scale, backend)
    out = packed_attention(query.bfloat16(), key.bfloat16(), value.bfloat16(), batch, scale, backend)
    assert out.dtype == torch.bfloat16
    assert out.shape == query.shape
    torch.testing.assert_close(out.float(), reference, rtol=5e-2, atol=5e-2)


def test_packed_attention_unknown_backend():
    batch = pack(torch.randn(1, 3, HIDDEN), mask_from_lengths((3,)))
    query, key, value = random_qkv(batch)
    for attention in (packed_attention, packed_attention_with_received):
        with pytest.raises(ValueError, match="unknown attention backend 'foo'"):
            attention(query, key, value, batch, 1.0, "foo")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["sdpa_padded", "varlen", "flash_varlen"])
@pytest.mark.parametrize("dropped", [False, True], ids=["packed", "after_drop"])
def test_cuda_half_precision_attention_is_as_close_to_float64_as_per_example_sdpa(backend, dtype, dropped):
    """The GPU kernels in half precision, measured against float64 with the error of plain per-example SDPA in
    the same precision as the yardstick (the flash-attn tests' rule)."""
    if backend == "flash_varlen" and not is_flash_attn_2_available():
        pytest.skip("flash-attn is not installed")
    if backend == "varlen" and (token_engine.varlen_attn is None or torch.cuda.get_device_capability() < (8, 0)):
        pytest.skip("torch's varlen_attn needs torch >= 2.10 and an sm80+ GPU")
    lengths, seq_len = LENGTH_MIXES[3]
    batch = dropped_batch() if dropped else pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    batch = dataclasses.replace(batch, hidden=batch.hidden.cuda(), indices=batch.indices.cuda(), cu_seqlens=batch.cu_seqlens.cuda())
    query, key, value = (t.cuda() for t in random_qkv(batch))
    expected = reference_attention(query, key, value, batch, SCALE)[0]
    half = tuple(t.to(dtype) for t in (query, key, value))
    yardstick = (packed_attention(*half, batch, SCALE, "sdpa_per_example").double() - expected).abs().max().item()
    out = packed_attention(*half, batch, SCALE, backend)
    assert out.dtype == dtype and out.shape == query.shape
    assert (out.double() - expected).abs().max().item() <= 3 * yardstick + torch.finfo(dtype).eps


@pytest.mark.parametrize(
    "device, dtype, capability, varlen, flash, attn_implementation, expected",
    [
        ("cpu", torch.float32, None, True, False, None, "sdpa_per_example"),
        ("cpu", torch.bfloat16, None, True, True, None, "sdpa_per_example"),
        ("cuda", torch.bfloat16, (9, 0), True, True, None, "varlen"),
        ("cuda", torch.float16, (8, 0), True, False, None, "varlen"),
        ("cuda", torch.bfloat16, (7, 5), True, True, None, "flash_varlen"),  # varlen_attn needs sm80+
        ("cuda", torch.bfloat16, (9, 0), False, True, None, "flash_varlen"),  # torch before 2.10
        ("cuda", torch.bfloat16, (9, 0), False, False, None, "sdpa_padded"),
        ("cuda", torch.float32, (9, 0), True, True, None, "sdpa_padded"),
        ("cuda", torch.bfloat16, (9, 0), True, True, "eager", "eager"),
    ],
)
def test_default_backend_for_each_device_dtype_and_torch(monkeypatch, device, dtype, capability, varlen, flash, attn_implementation, expected):
    monkeypatch.setattr(token_engine, "varlen_attn", object() if varlen else None)
    monkeypatch.setattr(token_engine, "FLASH_ATTN_AVAILABLE", flash)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert token_engine.default_attention_backend(torch.device(device), dtype, attn_implementation) == expected


def test_varlen_backend_refuses_what_its_kernel_cannot_run():
    batch = pack(torch.randn(2, 5, HIDDEN), mask_from_lengths([5, 3], 5))
    query, key, value = random_qkv(batch)
    with pytest.raises(ValueError, match="varlen attention backend needs torch >= 2.10 and fp16/bf16 CUDA tensors"):
        packed_attention(query, key, value, batch, SCALE, "varlen")


def test_token_budget_batches_fill_a_budget_of_real_tokens():
    from hypothesis import given, settings, strategies as st

    from transformers_prune.batching import token_budget_batches

    assert token_budget_batches([3, 4, 5, 2, 9], max_tokens=8) == [[0, 1], [2, 3], [4]]
    assert token_budget_batches([3, 4, 5, 2, 9], max_tokens=8, sort_by_length=True) == [[4], [2], [1, 0], [3]]
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        token_budget_batches([3], max_tokens=0)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(1, 50), max_size=40), st.integers(1, 120), st.booleans())
    def every_input_once_and_no_batch_over_budget_but_a_lone_long_input(lengths, budget, sort):
        batches = token_budget_batches(lengths, budget, sort)
        assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
        for batch in batches:
            assert batch and (sum(lengths[i] for i in batch) <= budget or len(batch) == 1)

    every_input_once_and_no_batch_over_budget_but_a_lone_long_input()


# ------------------------------------------------------------------- received attention from the kernel's LSE


@pytest.mark.parametrize("block_scores", [1, 100, 2**26], ids=["one-query-row", "small-blocks", "one-block"])
@pytest.mark.parametrize("case", [*range(len(LENGTH_MIXES)), "after_drop"])
def test_received_from_lse_equals_the_explicit_probabilities(case, block_scores):
    if case == "after_drop":
        batch = dropped_batch()
    else:
        lengths, seq_len = LENGTH_MIXES[case]
        batch = pack(torch.randn(len(lengths), seq_len, HIDDEN), mask_from_lengths(lengths, seq_len))
    query, key, value = random_qkv(batch)
    _, lse = varlen_on_cpu(query, key, value, batch.cu_seqlens, None, 0, 0, scale=SCALE, return_aux=token_engine.AuxRequest(lse=True))
    received = token_engine.received_from_lse(query, key, lse, batch, SCALE, block_scores=block_scores)
    expected = reference_attention(query, key, value, batch, SCALE)[1]
    torch.testing.assert_close(received.double(), expected, rtol=1e-5, atol=1e-5)


def test_varlen_backend_returns_the_kernels_output_and_received_attention(monkeypatch):
    monkeypatch.setattr(token_engine, "varlen_attn", varlen_on_cpu)
    monkeypatch.setattr(token_engine, "varlen_unavailable", lambda query: None)
    batch = dropped_batch()
    query, key, value = random_qkv(batch)
    out, received = packed_attention_with_received(query, key, value, batch, SCALE, "varlen")
    expected_out, expected_received = reference_attention(query, key, value, batch, SCALE)
    torch.testing.assert_close(out.double(), expected_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(received.double(), expected_received, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed_attention(query, key, value, batch, SCALE, "varlen").double(), expected_out, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------- the masked engine's attention


def test_masked_attention_survives_a_dropped_key_scoring_far_above_every_kept_one():
    """Hidden keys (weight 0) leave the kept keys' attention as if they were absent, however high they score: the
    softmax is shifted by the kept keys' largest score. Shifted by all keys', a gap of ~87 (fp32) zeroed every kept
    key's exp and with it the layer's context; the weight's gradient stays finite."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    from transformers_prune.models.bert_layer_forward import masked_layer_forward

    torch.manual_seed(0)
    layer = BertLayer(BertConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64)).eval()
    hidden = torch.randn(1, 5, 32)
    hidden[0, 2] *= 300  # its key scores hundreds above the others for some queries
    keep = torch.tensor([True, True, False, True, False])
    weights = keep[None].float().requires_grad_()
    out, probs = masked_layer_forward(layer, hidden, torch.ones(1, 5, dtype=torch.bool), weights)
    alone, _ = masked_layer_forward(layer, hidden[:, keep], torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(out[:, keep], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), rtol=0, atol=1e-5)
    out[:, keep].sum().backward()
    assert torch.isfinite(weights.grad).all() and (weights.grad[0, ~keep] != 0).all()  # hidden keys still get a gradient
