"""One tester per token-pruning model type: what the shared tests (`test_common.py`) need to build a tiny model of
that type, make it drop tokens, turn its pruning off and feed it bad settings.

This is Hugging Face's `ModelTester` idea as plain data. Everything goes through the public surface: the config,
the HF classes, outputs and `tokens_per_layer`, and parameters found by their checkpoint keys, which stay stable
whatever the modeling code looks like inside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from transformers import (
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedModel,
)

from transformers_prune import MODEL_TYPES

from conftest import TINY_CONFIG_KWARGS, run

# Head name -> the Auto class that builds it; "base" is the bare encoder (`XModel`).
HEAD_AUTO_CLASSES = {
    "base": AutoModel,
    "sequence_classification": AutoModelForSequenceClassification,
    "question_answering": AutoModelForQuestionAnswering,
    "token_classification": AutoModelForTokenClassification,
}
HEADS = tuple(HEAD_AUTO_CLASSES)

Prepare = Callable[[PreTrainedModel, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class DropRecipe:
    """How a tiny random model drops tokens: `config` overrides at construction, then `prepare(model, input_ids,
    attention_mask)` edits the method's weights in place for the batch the model will see (None: fresh weights)."""

    config: dict = field(default_factory=dict)
    prepare: Prepare | None = None


@dataclass(frozen=True)
class BadConfig:
    """Config `overrides` that must be refused with a ValueError naming `key`."""

    key: str
    overrides: dict


def bad(key: str, value, **also) -> BadConfig:
    return BadConfig(key, {key: value, **also})


# Keys every token-pruning config validates (`TokenPruningConfig`).
SHARED_BAD_CONFIGS = (bad("inference_engine", "foo"), bad("packed_attention_backend", "foo"))
# Values of the wrong type, which the strict dataclass refuses before our checks run.
SHARED_WRONGLY_TYPED_CONFIGS = (bad("prune_at_inference", "yes"), bad("inference_engine", 3))


@dataclass(frozen=True)
class TokenPruningTester:
    """Attributes:
        model_type: the registered `model_type`.
        method_keys: substrings, one of which is in every checkpoint key the method adds to BERT's.
        first_dropping_layer: the first layer whose entering token count can fall below the input's length.
        some_dropped: drops some real tokens of a test batch, not all, with decisions away from the keep/drop
            boundary (so float noise between engines or batch layouts cannot flip one).
        only_cls_kept: every layer from `first_dropping_layer` on runs [CLS] alone.
        every_token_kept: the method decides in every layer it would, and keeps every token by a wide margin
            (what half-precision tests use: rounding cannot flip such decisions).
        pruning_off: settings, each of which makes the model run every real token (equal to its BERT twin).
        fresh_model_drops: settings under which a freshly initialised or converted tiny model drops tokens, with
            no weight edits (decisions near the boundary: for checkpoints that must prune, not for parity).
        bad_configs: settings the config must refuse with a ValueError naming the key.
        wrongly_typed_configs: values of the wrong type, refused by the strict dataclass's own type check.
        config_defaults: tiny-config settings of this type on top of `TINY_CONFIG_KWARGS`.
    """

    model_type: str
    method_keys: tuple[str, ...]
    first_dropping_layer: int
    some_dropped: DropRecipe
    only_cls_kept: DropRecipe
    every_token_kept: DropRecipe
    pruning_off: tuple[dict, ...]
    fresh_model_drops: dict
    bad_configs: tuple[BadConfig, ...]
    wrongly_typed_configs: tuple[BadConfig, ...] = SHARED_WRONGLY_TYPED_CONFIGS
    config_defaults: dict = field(default_factory=dict)

    @property
    def config_class(self):
        return MODEL_TYPES[self.model_type][0]

    def model_class(self, head: str) -> type[PreTrainedModel]:
        return MODEL_TYPES[self.model_type][1][HEAD_AUTO_CLASSES[head]]

    def make_config(self, **overrides):
        return self.config_class(**{**TINY_CONFIG_KWARGS, **self.config_defaults, **overrides})

    def make_model(self, head: str = "base", input_ids=None, attention_mask=None, recipe: str = "some_dropped", **overrides):
        """An eval-mode model of `head` built by `recipe` (an attribute name) for the batch `input_ids`."""
        drop_recipe: DropRecipe = getattr(self, recipe)
        model = self.model_class(head)(self.make_config(**{**drop_recipe.config, **overrides})).eval()
        if drop_recipe.prepare is not None:
            drop_recipe.prepare(model, input_ids, attention_mask)
        return model


def parameters_named(model, *name_parts: str) -> dict:
    """The parameters whose checkpoint key contains every one of `name_parts`, by key."""
    return {name: p for name, p in model.named_parameters() if all(part in name for part in name_parts)}


# --------------------------------------------------------------------------------------------------- transkimmer


@torch.no_grad()
def randomise_predictors(model, weight_std: float = 1.0, keep_bias: float = 0.0, skim_bias: float = 0.0) -> None:
    """Overwrite every skim predictor's last Linear: random weights, the given (skim, keep) biases."""
    for name, param in parameters_named(model, ".skim_predictors.", ".classifier.").items():
        if name.endswith("weight"):
            param.normal_(0.0, weight_std)
        else:
            param.copy_(torch.tensor([skim_bias, keep_bias]))


def _ignore_batch(edit: Callable[[PreTrainedModel], None]) -> Prepare:
    return lambda model, input_ids, attention_mask: edit(model)


TRANSKIMMER = TokenPruningTester(
    model_type="transkimmer-bert",
    method_keys=(".skim_predictors.",),
    first_dropping_layer=0,
    some_dropped=DropRecipe(prepare=_ignore_batch(randomise_predictors)),
    only_cls_kept=DropRecipe(
        prepare=_ignore_batch(partial(randomise_predictors, weight_std=0.0, keep_bias=-1e4, skim_bias=1e4))
    ),
    every_token_kept=DropRecipe(),  # fresh predictors: keep logit about +5, skim logit about -5
    pruning_off=({"prune_at_inference": False},),
    fresh_model_drops={"skim_init_bias": -0.5},
    bad_configs=SHARED_BAD_CONFIGS + (
        bad("skim_coefficient", -1),
        bad("skim_gumbel_tau", 0),
        bad("skim_predictor_hidden_size", 0),
        bad("skim_init_bias", float("inf")),
        bad("skim_lr_scale", 0),
        bad("keep_threshold", 0.0),
        bad("keep_threshold", 1.0),
    ),
)


# ------------------------------------------------------------------------------------------------------------ ltp


@torch.no_grad()
def sharpen_attention(model, std: float = 0.6) -> None:
    """Large random query/key weights: peaked attention, so tokens receive very different amounts of it."""
    for name, param in model.named_parameters():
        if name.endswith(("attention.self.query.weight", "attention.self.key.weight")):
            param.normal_(0.0, std)


LTP = TokenPruningTester(
    model_type="ltp",
    method_keys=(".threshold_offsets",),
    first_dropping_layer=2,  # layer 0 never prunes; layer 1 prunes inside itself, so layer 2 is the first to see fewer
    some_dropped=DropRecipe({"final_token_threshold": 0.4}, _ignore_batch(sharpen_attention)),
    only_cls_kept=DropRecipe({"final_token_threshold": 100.0}, _ignore_batch(sharpen_attention)),  # scores are <= 1
    # Near-uniform attention of fresh weights scores every token about 1 / length, far above this threshold.
    every_token_kept=DropRecipe({"final_token_threshold": 1e-6}),
    pruning_off=(
        {"prune_at_inference": False},
        {"final_token_threshold": 0.0},
        {"prune_mode": "topk", "token_keep_rate": 1.0},
    ),
    fresh_model_drops={"final_token_threshold": 0.3},
    bad_configs=SHARED_BAD_CONFIGS + (
        bad("prune_mode", "threshold"),
        bad("final_token_threshold", -0.1),
        bad("scoring_mode", "max"),
        bad("score_normalization_length", 0),
        bad("token_keep_rate", 0.0),
        bad("token_keep_rate", 1.5),
        bad("masking_mode", "mixed"),
        bad("masking_mode", "soft", prune_mode="topk"),  # top-k has no thresholds to learn
        bad("temperature", 0.0),
        bad("lambda_threshold", -1.0),
        bad("threshold_lr_scale", 0.0),
        bad("threshold_scale", 0.0),
    ),
    # The recipes' thresholds are sized for mean_norm scores (about 1/n on an input of n tokens), which spread
    # widely on these short inputs; the default "mean" scores (about 1/128) would all sit near zero.
    config_defaults={"scoring_mode": "mean_norm", "threshold_lr_scale": 10.0},
)


# --------------------------------------------------------------------------------------------------- adapler-bert


@torch.no_grad()
def randomise_contribution_predictors(model, std: float = 0.3) -> None:
    """Large random predictor weights: uneven shares, so eta / n really drops some tokens."""
    for name, param in parameters_named(model, ".contribution_predictors.").items():
        if name.endswith(("dense.weight", "output.weight")):
            param.normal_(0.0, std)


ADAPLER = TokenPruningTester(
    model_type="adapler-bert",
    method_keys=(".contribution_predictors.", ".eta_logits", ".theta_offsets"),
    first_dropping_layer=0,
    some_dropped=DropRecipe({"eta_init": 0.6}, _ignore_batch(randomise_contribution_predictors)),
    # eta x 1000 / n is above every share (<= 1) for inputs up to 600 tokens.
    only_cls_kept=DropRecipe({"eta_init": 0.6, "eta_scale": 1000.0}, _ignore_batch(randomise_contribution_predictors)),
    every_token_kept=DropRecipe({"eta_scale": 1e-3}),  # fresh predictors give near-uniform shares, ~1 / n each
    pruning_off=({"prune_at_inference": False},),
    fresh_model_drops={"eta_init": 0.999},  # near-uniform shares of fresh predictors: eta just under 1 drops some
    bad_configs=SHARED_BAD_CONFIGS + (
        bad("cp_hidden_size", 0),
        bad("cp_lr_scale", float("nan")),
        bad("eta_min", 0.0),
        bad("eta_init", 1.0),
        bad("eta_lr_scale", 0),
        bad("gamma", -1.0),
        bad("phi", -0.1),
        bad("soft_removal_beta", -1.0),
        bad("sharpness_start", 0.0),
        bad("sharpness_end", 1.0),
        bad("eta_scale", 0.0),
        bad("theta_lr_scale", 0.0),
    ),
)


# ------------------------------------------------------------------------------------------------------- autobert


@torch.no_grad()
def centre_selectors(model, input_ids, attention_mask) -> None:
    """Random selectors whose decision boundary (keep_threshold 0.5, logit 0) lies halfway between the two middle
    keep-logits of the batch's real tokens, so each selector keeps about half of them and no token sits on the
    boundary. (The hidden states of a tiny random BERT point in similar directions, so uncentred random selectors
    keep all or nothing.) Logits are taken on the unpruned states of each selector's layer input."""
    config = model.config
    prune, config.prune_at_inference = config.prune_at_inference, False
    hidden_states = run(model.base_model, input_ids, attention_mask, output_hidden_states=True).hidden_states
    config.prune_at_inference = prune
    decided = attention_mask.bool().clone()
    decided[:, 0] = False  # [CLS] is always kept
    selectors = model.base_model.get_submodule("encoder.selectors")
    for selector, layer in zip(selectors, config.selection_layers, strict=True):
        selector.dense.weight.normal_(0.0, 1.0)
        selector.output.weight.normal_(0.0, 1.0)
        logits = torch.logit(selector(hidden_states[layer]).double())[decided].sort().values
        middle = len(logits) // 2
        selector.output.bias -= ((logits[middle - 1] + logits[middle]) / 2).to(selector.output.bias.dtype)


AUTOBERT = TokenPruningTester(
    model_type="autobert",
    method_keys=(".selectors.",),
    first_dropping_layer=1,
    some_dropped=DropRecipe(prepare=centre_selectors),
    only_cls_kept=DropRecipe({"keep_threshold": 1.0}),  # fresh selectors give p ~ 0.5, never 1
    every_token_kept=DropRecipe({"keep_threshold": 0.0}),
    pruning_off=({"prune_at_inference": False}, {"keep_threshold": 0.0}),
    fresh_model_drops={"keep_threshold": 0.5, "rl_num_samples": 2},  # fresh selectors give p ~ 0.5: about half dropped
    bad_configs=SHARED_BAD_CONFIGS + (
        bad("selection_layers", [2, 1]),
        bad("selection_layers", [3]),
        bad("selection_layers", []),
        bad("selector_hidden_size", 0),
        bad("keep_threshold", 1.5),
        bad("training_stage", "rl"),
        bad("rl_num_samples", 1),
        bad("alpha", -1.0),
        bad("guide_rate", 2.0),
        bad("kd_temperature", 0.0),
    ),
    wrongly_typed_configs=SHARED_WRONGLY_TYPED_CONFIGS + (bad("train_teacher", "yes"),),
    config_defaults={"selection_layers": [1, 2]},
)


TESTERS = {tester.model_type: tester for tester in (TRANSKIMMER, LTP, ADAPLER, AUTOBERT)}
assert set(TESTERS) == set(MODEL_TYPES), "every token-pruning model type needs a tester"
