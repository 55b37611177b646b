"""The selector contract and the two encoder loops that run any selector.

A token-pruning method is a *selector*: its parameters, where it decides (before a layer, or inside it after
attention), its keep values for the tokens of a view (`token_views`), and its auxiliary loss. The loops here own
everything else, once for every method:

- `run_masked_layers`: the padded form (training, and `inference_engine="masked"`). Tokens stay in the `[B, S]`
  tensor; a cumulative `presence` weights them as attention keys, and a token that has left keeps its last
  state. How training removes tokens is the selector's `removal()`:
  - "hard": keep values are 0/1 (a straight-through sample in training); presence is their running product;
    a token stops being updated once it is gone (Transkimmer, LTP's hard stage, every method at inference);
  - "soft_keys": keep values in [0, 1] multiply presence, which weighs tokens down as attention keys, but every
    token is still updated (AdapLeR's soft removal);
  - "soft_output": keep values in [0, 1] scale the deciding layer's output; keys are never hidden (LTP's soft
    stage).
- `run_packed_layers`: the packed engine (inference, TR-BERT's rollouts): keep values are bool and the dropped
  tokens really leave (`drop_tokens`).

Both protect each example's first token ([CLS]): selectors never have to. Both record the tokens entering each
layer; the masked loop's counts stay differentiable, for losses that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .bert_layer_forward import feed_forward, masked_layer_forward, packed_attention_and_received, packed_layer_forward
from .token_engine import PackedBatch, drop_tokens, unpack
from .token_views import GridView, PackedView, TokenView

BEFORE_LAYER, AFTER_ATTENTION = "before_layer", "after_attention"
DecisionPoint = Literal["before_layer", "after_attention"]
Removal = Literal["hard", "soft_keys", "soft_output"]


@dataclass
class SelectionTrace:
    """What one forward's selections leave for the loss.

    Attributes:
        inputs: the method's extra inputs of this forward (e.g. AdapLeR's `saliency`, TR-BERT's `residual_scores`).
        real_tokens: scalar, the batch's real (non-padding) tokens.
        padded_positions: B x S of the padded batch (the masked form; 0 on the packed engine).
        kept_counts: `[B]` tokens entering each layer run so far (differentiable in the masked form).
        decisions: layer -> the keep values applied there, first token protected.
        method: whatever the selector carries from layer to layer in this forward (set by `begin`).
    """

    inputs: dict[str, torch.Tensor]
    real_tokens: torch.Tensor
    padded_positions: int = 0
    kept_counts: list[torch.Tensor] = field(default_factory=list)
    decisions: dict[int, torch.Tensor] = field(default_factory=dict)
    method: Any = None


class TokenSelector(nn.Module):
    """What a method defines; the loops call these. The default selects nothing."""

    def decision_point(self, index: int) -> DecisionPoint | None:
        """Where layer `index` decides which tokens go on, or None where it does not decide."""
        return None

    def removal(self) -> Removal:
        """How the masked form removes tokens in the current mode (see the module docstring)."""
        return "hard"

    def begin(self, trace: SelectionTrace, view: TokenView) -> None:
        """Prepare `trace.method` before the first layer (e.g. thresholds computed once per forward)."""

    def keep_values(
        self, index: int, view: TokenView, trace: SelectionTrace, received: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Keep values of the view's tokens at layer `index`: bool on the packed engine, 0/1 or soft values in the
        masked form. `received` (after-attention selectors only): the attention each token received, summed over
        heads and live queries."""
        raise NotImplementedError

    def pruning_loss(self, trace: SelectionTrace) -> torch.Tensor | None:
        """The auxiliary loss, coefficient applied (training only), from what the forward recorded."""
        return None


@dataclass
class EncoderResult:
    """What an encoder returns to its model.

    Attributes:
        last_hidden_state: `[B, S, H]`, or None when a packed caller needs no full-length states.
        first_token_states: `[B, H]` each example's first ([CLS]) token after the last layer, what the pooler reads.
        tokens_per_layer: `[B, L]` real tokens entering each layer.
        pruning_loss: the method's auxiliary loss (training only).
        method_outputs: further output fields of a method's own output class (e.g. TR-BERT's `action_log_prob`).
    """

    last_hidden_state: torch.Tensor | None
    first_token_states: torch.Tensor
    tokens_per_layer: torch.Tensor
    pruning_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    method_outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def _protect_first(keep: torch.Tensor, view: TokenView) -> torch.Tensor:
    if keep.dtype == torch.bool:
        return keep | view.first_token
    return torch.where(view.first_token, torch.ones_like(keep), keep)


def _maybe_checkpointed(encoder: nn.Module | None, function, *args):
    """`function(*args)`, recomputed in backward when the encoder has gradient checkpointing on (HF's
    `activation_checkpointing_enable()`, formerly `gradient_checkpointing_enable()`, sets the flag) and autograd is
    recording."""
    if encoder is not None and getattr(encoder, "gradient_checkpointing", False) and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


def run_masked_layers(
    layers: nn.ModuleList,
    hidden: torch.Tensor,
    padding_mask: torch.Tensor,
    selector: TokenSelector | None,
    trace: SelectionTrace,
    attention: str = "sdpa",
    output_hidden_states: bool = False,
    output_attentions: bool = False,
    checkpointing_owner: nn.Module | None = None,
) -> EncoderResult:
    """The padded encoder loop. `hidden`: `[B, S, H]` embeddings; `padding_mask`: `[B, S]` bool, True on real tokens.
    `selector=None` runs every token, as BERT. `attention`: "eager" computes attention explicitly everywhere;
    "sdpa" uses SDPA where the layer needs neither attention probabilities nor differentiable key weights."""
    removal = selector.removal() if selector is not None else "hard"
    real = padding_mask.to(hidden.dtype)
    view = GridView(hidden, real, padding_mask)
    if selector is not None:
        selector.begin(trace, view)
    state, counted = hidden, real  # state: each token's last state; counted: what tokens_per_layer sums
    all_hidden, all_attentions = [hidden], []
    for index, layer in enumerate(layers):
        point = selector.decision_point(index) if selector is not None else None
        if point == BEFORE_LAYER:
            keep = _protect_first(selector.keep_values(index, view, trace), view).to(hidden.dtype)
            trace.decisions[index] = keep
            view = GridView(view.hidden, view.presence * keep, padding_mask)
            counted = view.presence
        trace.kept_counts.append(view.segment_sum(counted))
        key_weights = view.presence if selector is not None and removal != "soft_output" else None
        needs_probs = point == AFTER_ATTENTION or output_attentions
        kernel = "eager" if needs_probs or (key_weights is not None and key_weights.requires_grad) else attention
        output, probs = _maybe_checkpointed(
            checkpointing_owner, masked_layer_forward, layer, view.hidden, padding_mask, key_weights, kernel
        )
        if point == AFTER_ATTENTION:
            received = (probs * view.live[:, None, :, None]).sum(dim=(1, 2))  # rows of gone queries zeroed
            keep = _protect_first(selector.keep_values(index, view, trace, received), view).to(hidden.dtype) * real
            trace.decisions[index] = keep
            if removal == "soft_output":
                output, counted = output * keep[..., None], keep
            else:
                view = GridView(view.hidden, view.presence * keep, padding_mask)
                counted = view.presence
        # A gone token keeps its last state; "hard" removal in arithmetic form, so a straight-through sample's
        # gradient reaches the selector through the states it freezes.
        state = state + (output - state) * view.presence[..., None] if removal == "hard" and selector is not None else output
        view = GridView(output, view.presence, padding_mask)
        all_hidden.append(state)
        all_attentions.append(probs)
    return EncoderResult(
        last_hidden_state=state,
        first_token_states=state[:, 0],
        tokens_per_layer=torch.stack(trace.kept_counts, dim=1).detach().round().long(),
        pruning_loss=selector.pruning_loss(trace) if selector is not None and selector.training else None,
        hidden_states=tuple(all_hidden) if output_hidden_states else None,
        attentions=tuple(all_attentions) if output_attentions else None,
    )


def run_packed_layers(
    layers: nn.ModuleList,
    batch: PackedBatch,
    attention_backend: str,
    selector: TokenSelector | None = None,
    trace: SelectionTrace | None = None,
    output_hidden_states: bool = False,
    layer_range: range | None = None,
    checkpointing_owner: nn.Module | None = None,
    drop: Callable[[PackedBatch, torch.Tensor], PackedBatch] = drop_tokens,
) -> tuple[PackedBatch, list[torch.Tensor], tuple[torch.Tensor, ...] | None]:
    """The packed encoder loop over `layer_range` (default every layer); `selector=None` is the method-free packed
    BERT. Returns the batch after the last layer, the `[B]` tokens entering each layer run, and (when asked) the
    `[B, S, H]` states after each (the input first); a dropped token's state comes from the restore buffer.
    `drop` applies a keep mask (`drop_tokens`; the ONNX export passes one without host syncs, `deploy/traceable.py`)."""
    layer_range = range(len(layers)) if layer_range is None else layer_range
    if selector is not None and layer_range.start == 0:
        selector.begin(trace, PackedView(batch))
    counts, all_hidden = [], [unpack(batch)] if output_hidden_states else None
    for index in layer_range:
        layer = layers[index]
        point = selector.decision_point(index) if selector is not None else None
        if point == BEFORE_LAYER:
            view = PackedView(batch)
            batch = drop(batch, _protect_first(selector.keep_values(index, view, trace), view))
        counts.append(batch.seqlens())
        if point == AFTER_ATTENTION:
            context, received = packed_attention_and_received(layer, batch, attention_backend)
            view = PackedView(batch)
            keep = _protect_first(selector.keep_values(index, view, trace, received), view)
            kept = drop(batch, keep)
            if kept is not batch:
                context = context[keep]
            batch = kept.with_hidden(feed_forward(layer, context, kept.hidden))
        else:
            batch = batch.with_hidden(
                _maybe_checkpointed(checkpointing_owner, packed_layer_forward, layer, batch, attention_backend)
            )
        if output_hidden_states:
            all_hidden.append(unpack(batch))
    return batch, counts, tuple(all_hidden) if output_hidden_states else None


__all__ = [
    "AFTER_ATTENTION",
    "BEFORE_LAYER",
    "EncoderResult",
    "SelectionTrace",
    "TokenSelector",
    "run_masked_layers",
    "run_packed_layers",
]
