"""One view of the live tokens for both layouts, so a method's keep rule is written once.

A selector (see `token_selection.py`) scores tokens and decides which to keep through a view: `GridView` over the
padded `[B, S]` batch (training and the masked engine), `PackedView` over the `[N]` packed live tokens (the packed
engine). Per-token tensors have the view's `token_shape` (`[B, S]` or `[N]`) and combine elementwise; whatever
needs the example structure goes through the view's segment operations (per-example sums, softmax, ranks).

Shapes: B = batch size, S = padded length, N = live tokens, H = hidden size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .token_engine import PackedBatch


def _ranks_along_last_dim(scores: torch.Tensor, same_row: torch.Tensor | None = None) -> torch.Tensor:
    """Rank of each entry within its row, 0 for the highest; ties go to the earlier position. `same_row` (`[S, S]`)
    restricts the comparison to entries of the same segment (packed tokens of one example).

    Counted by comparisons, `[..., S, S]`, not by a stable sort: the ONNX exporter has no stable sort, and top-k
    selection (LTP's baseline) must export; rows are one input's tokens, so S x S stays small."""
    row = scores.unsqueeze(-1)  # [..., S, 1]: the entry being ranked, against every other in its row [..., 1, S]
    other = scores.unsqueeze(-2)
    positions = torch.arange(scores.shape[-1], device=scores.device)
    earlier = positions.unsqueeze(0) < positions.unsqueeze(1)  # [S, S]: j before i
    ahead = (other > row) | ((other == row) & earlier)
    if same_row is not None:
        ahead = ahead & same_row
    return ahead.sum(dim=-1)


@dataclass(frozen=True)
class GridView:
    """The tokens of a padded batch.

    Attributes:
        hidden: `[B, S, H]` each position's state entering the decision.
        presence: `[B, S]` how present each token still is: 1 in the encoder, 0 gone or padding; values in between
            while training removes tokens softly. Keys are weighted by it, selectors' shares and counts use it.
        real: `[B, S]` bool, True on real (non-padding) tokens.
    """

    hidden: torch.Tensor
    presence: torch.Tensor
    real: torch.Tensor

    @property
    def first_token(self) -> torch.Tensor:
        """`[B, S]` bool, True at position 0 ([CLS] of a right-padded BERT input)."""
        first = torch.zeros_like(self.real)
        first[:, 0] = True
        return first

    @property
    def live(self) -> torch.Tensor:
        """`[B, S]` bool, True on tokens still in the encoder."""
        return self.presence > 0

    def counts(self) -> torch.Tensor:
        """`[B]` tokens in the encoder per example (soft: the expected count)."""
        return self.presence.sum(dim=1)

    def segment_sum(self, values: torch.Tensor) -> torch.Tensor:
        """`[B]` sums of `[B, S]` values within each example."""
        return values.sum(dim=1)

    def per_token(self, values: torch.Tensor) -> torch.Tensor:
        """`[B]` per-example values broadcast to the tokens."""
        return values[:, None]

    def segment_softmax(self, logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax of `[B, S]` logits within each example, times `weights` (default `presence`) and renormalised:
        each example's shares sum to 1 over its present tokens."""
        weights = self.presence if weights is None else weights
        shares = torch.softmax(logits.masked_fill(weights == 0, -math.inf), dim=-1) * weights
        return shares / shares.sum(dim=-1, keepdim=True)

    def segment_rank(self, scores: torch.Tensor) -> torch.Tensor:
        """`[B, S]` rank of each live token's score within its example (0 for the highest); tokens not live rank
        after every live one."""
        return _ranks_along_last_dim(scores.masked_fill(~self.live, -math.inf))

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """A `[B, S, ...]` per-position input (e.g. saliency targets) as token values: here, itself."""
        return values


@dataclass(frozen=True)
class PackedView:
    """The live tokens of a packed batch (every token present)."""

    batch: PackedBatch

    @property
    def hidden(self) -> torch.Tensor:
        return self.batch.hidden

    @property
    def presence(self) -> torch.Tensor:
        return self.batch.hidden.new_ones(self.batch.num_tokens)

    @property
    def first_token(self) -> torch.Tensor:
        return self.batch.first_token_mask()

    @property
    def live(self) -> torch.Tensor:
        return torch.ones(self.batch.num_tokens, dtype=torch.bool, device=self.batch.hidden.device)

    def counts(self) -> torch.Tensor:
        return self.batch.seqlens()

    def segment_sum(self, values: torch.Tensor) -> torch.Tensor:
        """`[B]` sums of `[N]` values within each example."""
        return values.new_zeros(self.batch.batch_size).index_add(0, self.batch.example_ids(), values)

    def per_token(self, values: torch.Tensor) -> torch.Tensor:
        return values[self.batch.example_ids()]

    def segment_softmax(self, logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax of `[N]` logits within each example (`weights`, if given, as in `GridView`)."""
        example = self.batch.example_ids()
        if weights is not None:
            logits = logits.masked_fill(weights == 0, -math.inf)
        maxima = logits.new_full((self.batch.batch_size,), -math.inf).scatter_reduce(0, example, logits, "amax")
        exp = torch.exp(logits - maxima[example])
        if weights is not None:
            exp = exp * weights
        return exp / self.segment_sum(exp)[example]

    def segment_rank(self, scores: torch.Tensor) -> torch.Tensor:
        """`[N]` rank of each token's score within its example, 0 for the highest; ties go to the earlier token."""
        example = self.batch.example_ids()
        if torch.compiler.is_exporting():  # no stable sort in ONNX: count, per token, the tokens ranked ahead of it
            return _ranks_along_last_dim(scores, same_row=example[:, None] == example[None, :])
        by_score = torch.argsort(scores, descending=True, stable=True)
        order = by_score[torch.argsort(example[by_score], stable=True)]  # grouped by example, best first
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(order.numel(), device=order.device) - self.batch.cu_seqlens.long()[example[order]]
        return ranks

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """A `[B, S, ...]` per-position input as `[N, ...]` values of the live tokens."""
        return values.flatten(0, 1)[self.batch.indices]


TokenView = GridView | PackedView

__all__ = ["GridView", "PackedView", "TokenView"]
