"""The layout-neutral token views and the two generic encoder loops, with a method-free toy selector."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from transformers_prune.models.token_engine import pack, unpack
from transformers_prune.models.token_selection import (
    AFTER_ATTENTION,
    BEFORE_LAYER,
    SelectionTrace,
    TokenSelector,
    run_masked_layers,
    run_packed_layers,
)
from transformers_prune.models.token_views import GridView, PackedView

from conftest import CPU_BACKENDS, TINY_CONFIG_KWARGS, make_batch, real_token_max_diff

LENGTHS = (1, 12, 5, 9, 3)


def views_of(hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[GridView, PackedView]:
    real = attention_mask.bool()
    return GridView(hidden, real.to(hidden.dtype), real), PackedView(pack(hidden, attention_mask))


def as_grid(values: torch.Tensor, view: PackedView) -> torch.Tensor:
    """`[N]` packed token values on the `[B, S]` grid (0 elsewhere)."""
    return unpack(view.batch.with_hidden(values[:, None].to(torch.float64))).squeeze(-1)


def test_segment_operations_agree_between_layouts():
    _, attention_mask = make_batch(LENGTHS)
    hidden = torch.randn(*attention_mask.shape, 4)
    grid, packed = views_of(hidden, attention_mask)
    real = attention_mask.bool()
    logits = torch.randn(attention_mask.shape).masked_fill(~real, 0.0)
    packed_logits = packed.from_grid(logits)

    torch.testing.assert_close(grid.segment_sum(logits), packed.segment_sum(packed_logits))
    torch.testing.assert_close(grid.counts(), packed.counts().to(grid.counts().dtype))
    shares = grid.segment_softmax(logits)
    torch.testing.assert_close(shares[real], packed.segment_softmax(packed_logits))
    torch.testing.assert_close(shares.sum(dim=1), torch.ones(len(LENGTHS)))
    ranks = grid.segment_rank(logits)
    assert torch.equal(ranks[real], packed.segment_rank(packed_logits))
    # Ranks are a permutation of 0 .. n - 1 within each example.
    for row, length in enumerate(LENGTHS):
        assert sorted(ranks[row, :length].tolist()) == list(range(length))
    assert torch.equal(grid.first_token[real], packed.first_token)
    assert torch.equal(as_grid(packed.per_token(torch.arange(5.0)), packed)[real], grid.per_token(torch.arange(5.0)).expand_as(logits)[real])


def test_ties_rank_by_position_in_both_layouts():
    _, attention_mask = make_batch((4, 4))
    grid, packed = views_of(torch.zeros(2, 4, 1), attention_mask)
    scores = torch.tensor([[1.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
    assert grid.segment_rank(scores).tolist() == [[2, 0, 1, 3], [0, 1, 2, 3]]
    assert packed.segment_rank(packed.from_grid(scores)).tolist() == [2, 0, 1, 3, 0, 1, 2, 3]


def test_weighted_softmax_ignores_gone_tokens():
    _, attention_mask = make_batch((4,))
    grid, _ = views_of(torch.zeros(1, 4, 1), attention_mask)
    weights = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    shares = grid.segment_softmax(torch.zeros(1, 4), weights)
    torch.testing.assert_close(shares, torch.tensor([[1 / 3, 0.0, 1 / 3, 1 / 3]]))


class ToySelector(TokenSelector):
    """Keeps a token while a fixed random score of its hidden state is positive; decides where told."""

    def __init__(self, hidden_size: int, point: str, layers: set[int]):
        super().__init__()
        self.score = torch.nn.Linear(hidden_size, 1)
        self.point, self.layers = point, layers

    def decision_point(self, index):
        return self.point if index in self.layers else None

    def keep_values(self, index, view, trace, received=None):
        score = self.score(view.hidden).squeeze(-1)
        if received is not None:
            score = score + received - view.per_token(view.segment_sum(received * view.presence) / view.counts())
        return score > 0


@pytest.fixture
def bert():
    torch.manual_seed(0)
    return BertModel(BertConfig(**TINY_CONFIG_KWARGS), add_pooling_layer=False).eval()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("point", [BEFORE_LAYER, AFTER_ATTENTION])
def test_masked_and_packed_loops_agree_for_any_selector(bert, backend, point):
    input_ids, attention_mask = make_batch(LENGTHS)
    torch.manual_seed(3)
    selector = ToySelector(bert.config.hidden_size, point, {1, 2}).eval()
    with torch.no_grad():
        hidden = bert.embeddings(input_ids=input_ids)
        masked = run_masked_layers(
            bert.encoder.layer, hidden, attention_mask.bool(), selector, SelectionTrace({}, attention_mask.sum()),
            output_hidden_states=True,
        )
        batch, counts, states = run_packed_layers(
            bert.encoder.layer, pack(hidden, attention_mask, keep_restore_buffer=True), backend, selector,
            SelectionTrace({}, attention_mask.sum()), output_hidden_states=True,
        )
    tokens = torch.stack(counts, dim=1)
    assert torch.equal(masked.tokens_per_layer, tokens)
    assert (tokens[:, -1] < attention_mask.sum(dim=1)).any() and (tokens >= 1).all()  # dropped, never emptied
    assert real_token_max_diff(masked.last_hidden_state, unpack(batch), attention_mask) < 1e-5
    for masked_layer, packed_layer in zip(masked.hidden_states, states, strict=True):
        assert real_token_max_diff(masked_layer, packed_layer, attention_mask) < 1e-5


def test_loops_without_selector_are_bert(bert):
    input_ids, attention_mask = make_batch(LENGTHS)
    with torch.no_grad():
        reference = bert(input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = bert.embeddings(input_ids=input_ids)
        for attention in ("eager", "sdpa"):
            masked = run_masked_layers(
                bert.encoder.layer, hidden, attention_mask.bool(), None, SelectionTrace({}, attention_mask.sum()), attention
            )
            assert real_token_max_diff(masked.last_hidden_state, reference, attention_mask) < 1e-5
        batch, _, _ = run_packed_layers(bert.encoder.layer, pack(hidden, attention_mask), "sdpa_per_example")
    assert real_token_max_diff(unpack(batch), reference, attention_mask) < 1e-5


def test_selectors_never_drop_the_first_token(bert):
    class DropAll(ToySelector):
        def keep_values(self, index, view, trace, received=None):
            return torch.zeros_like(view.first_token)

    input_ids, attention_mask = make_batch(LENGTHS)
    selector = DropAll(bert.config.hidden_size, BEFORE_LAYER, {1})
    with torch.no_grad():
        hidden = bert.embeddings(input_ids=input_ids)
        _, counts, _ = run_packed_layers(bert.encoder.layer, pack(hidden, attention_mask), "sdpa_per_example", selector)
        masked = run_masked_layers(bert.encoder.layer, hidden, attention_mask.bool(), selector, SelectionTrace({}, 0))
    assert torch.stack(counts, dim=1)[:, 1:].eq(1).all()
    assert masked.tokens_per_layer[:, 1:].eq(1).all()
