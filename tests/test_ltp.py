"""`ltp`'s own behaviour: where pruned tokens leave a layer, top-k counts and schedule, [CLS] protection, score
normalisation, the threshold schedule and reparametrisation, soft and hard training, and loading BERT. What every
token-pruning type shares (engine parity, pruning off equals BERT, save/load, validation) is in `test_common.py`."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, Trainer, TrainingArguments

from transformers_prune import LTPConfig, LTPForQuestionAnswering, LTPForSequenceClassification, LTPModel
from transformers_prune.models.modeling_ltp import topk_schedule

from conftest import CPU_BACKENDS, DictDataset, varlen_on_cpu, assert_same_outputs, bert_twin, lengths_of, make_batch, real_token_max_diff, run
from model_testers import TESTERS, sharpen_attention

LENGTHS = (1, 12, 5, 9, 3, 11)


make_config = TESTERS["ltp"].make_config


# ----------------------------------------------------------------------------------------------- hard inference


def pruning_model(prune_mode: str, backend: str = "sdpa_per_example", **overrides):
    settings = (
        dict(final_token_threshold=0.6) if prune_mode == "absolute_threshold" else dict(token_keep_rate=0.3, num_hidden_layers=5)
    )
    model = LTPModel(make_config(prune_mode=prune_mode, packed_attention_backend=backend, **{**settings, **overrides})).eval()
    sharpen_attention(model)
    return model


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_topk_packed_matches_masked(backend):
    """test_common checks the engines agree for absolute thresholds; top-k is the other decision rule."""
    model = pruning_model("topk", backend)
    input_ids, attention_mask = make_batch(LENGTHS)
    packed = run(model, input_ids, attention_mask, "packed", output_hidden_states=True)
    masked = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)

    real = lengths_of(attention_mask)
    tokens = packed.tokens_per_layer
    assert (tokens[:, -1] < real).any() and (tokens[:, -1] > 1).any()  # some tokens dropped, not all
    assert (tokens[:, 1:] <= tokens[:, :-1]).all()  # a pruned token never returns
    assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
    assert_same_outputs(packed, masked, attention_mask, atol=1e-5, every_layer=True)


def test_pruned_token_keeps_the_state_it_entered_the_pruning_layer_with():
    model = pruning_model("absolute_threshold")
    input_ids, attention_mask = make_batch(LENGTHS)
    out = run(model, input_ids, attention_mask, "packed", output_hidden_states=True)
    # A token entering layer 2 but not layer 3 (= leaving the encoder) was pruned inside layer 2: its final
    # state is its input to layer 2, i.e. hidden_states[2]; the FFN of layer 2 never ran on it.
    full = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)
    entering_two = out.tokens_per_layer[:, 2]
    assert (entering_two > 1).any()
    kept_after = (out.last_hidden_state - full.hidden_states[2]).abs().amax(-1) > 1e-6
    dropped_in_layer_two = attention_mask.bool() & ~kept_after
    assert dropped_in_layer_two.any()
    torch.testing.assert_close(out.last_hidden_state[dropped_in_layer_two], full.hidden_states[2][dropped_in_layer_two])


def test_topk_keeps_the_scheduled_counts():
    model = pruning_model("topk")
    input_ids, attention_mask = make_batch(LENGTHS)
    tokens = run(model, input_ids, attention_mask).tokens_per_layer
    rates = topk_schedule(5, 0.3)
    assert rates[:3] == [1.0, 1.0, 1.0] and rates[-1] == pytest.approx(0.3)
    lengths = lengths_of(attention_mask).double()
    for layer in range(1, 5):
        # Tokens entering layer l+1 = round(n0 x rate_l), at least [CLS]; n0 is the input's own length.
        expected = (lengths * rates[layer - 1]).round().clamp_min(1).long()
        assert torch.equal(tokens[:, layer], expected), (layer, tokens[:, layer], expected)


def test_topk_schedule_matches_the_original_for_twelve_layers():
    rates = topk_schedule(12, 0.4)
    assert rates[:3] == [1.0] * 3  # max(3, ceil(0.15 * 12)) = 3 layers keep everything
    assert rates[3] == pytest.approx(1 - 0.6 / 9) and rates[11] == pytest.approx(0.4)
    assert min(topk_schedule(12, 0.001)) == 0.01  # the original's floor


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("prune_mode", ["absolute_threshold", "topk"])
def test_cls_is_never_pruned(engine, prune_mode):
    overrides = dict(final_token_threshold=100.0) if prune_mode == "absolute_threshold" else dict(token_keep_rate=0.001)
    model = pruning_model(prune_mode, **overrides)
    input_ids, attention_mask = make_batch(LENGTHS)
    out = run(model, input_ids, attention_mask, engine, output_hidden_states=True)
    if prune_mode == "absolute_threshold":
        # Every other token is pruned in layer 1.
        assert torch.equal(out.tokens_per_layer[:, 2:], torch.ones(len(LENGTHS), 1, dtype=torch.long))
    assert (out.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    # [CLS] went through the whole last layer, even where the last layer's decision kept only one token.
    last_layer_change = (out.hidden_states[-1][:, 0] - out.hidden_states[-2][:, 0]).abs().amax(-1)
    assert (last_layer_change > 1e-4).all()
    assert torch.isfinite(out.pooler_output).all()


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("scoring_mode", ["mean_norm", "mean"])
def test_decisions_do_not_depend_on_batch_padding(engine, scoring_mode):
    model = pruning_model("absolute_threshold", scoring_mode=scoring_mode, final_token_threshold=0.6 if scoring_mode == "mean_norm" else 0.05)
    input_ids, attention_mask = make_batch((9, 3), seq_len=9)
    alone = run(model, input_ids[1:, :3], attention_mask[1:, :3], engine)
    padded = run(model, input_ids, attention_mask, engine)
    assert padded.tokens_per_layer[1, -1] < 3  # the short example does lose tokens
    assert torch.equal(alone.tokens_per_layer[0], padded.tokens_per_layer[1])
    torch.testing.assert_close(alone.pooler_output[0], padded.pooler_output[1], rtol=0, atol=1e-5)


def test_mean_and_mean_norm_scores_differ_by_length_over_normalisation_length():
    model = pruning_model("absolute_threshold")
    encoder = model.encoder
    received = torch.tensor([[8.0, 4.0, 0.0]])
    live_queries = torch.tensor([[2]])
    heads = model.config.num_attention_heads
    torch.testing.assert_close(encoder._normalise(received, live_queries), received / (heads * 2))
    encoder.config.scoring_mode = "mean"
    torch.testing.assert_close(encoder._normalise(received, live_queries), received / (heads * 128))


def test_threshold_schedule_grows_linearly_from_zero_at_layer_zero():
    model = LTPModel(make_config(num_hidden_layers=4, final_token_threshold=0.02))
    torch.testing.assert_close(model.encoder.thresholds(), torch.tensor([0.0, 0.005, 0.01, 0.015]))
    assert [model.encoder.decision_point(layer) for layer in range(4)] == [None, *["after_attention"] * 3]
    with torch.no_grad():
        model.encoder.threshold_offsets.fill_(0.001)
    # The learned offset counts threshold_lr_scale (10 in these tests' config, 1 by default) times.
    torch.testing.assert_close(model.encoder.thresholds(), torch.tensor([0.01, 0.015, 0.02, 0.025]))


# ----------------------------------------------------------------------------------------------- training


def soft_model(**overrides):
    model = LTPForSequenceClassification(make_config(masking_mode="soft", final_token_threshold=0.6, **overrides)).train()
    sharpen_attention(model)
    return model


def test_soft_mode_scales_outputs_and_trains_thresholds():
    model = soft_model()
    input_ids, attention_mask = make_batch(LENGTHS)
    out = model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 0, 1, 1, 0]), output_hidden_states=True)
    model.eval()
    model.config.inference_engine, model.config.prune_at_inference = "masked", False
    with torch.no_grad():
        dense = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)

    real = attention_mask.bool()
    # Layer 0 does not prune: its output is BERT's. Nothing is dropped in soft mode: every token enters every layer.
    assert real_token_max_diff(out.hidden_states[1], dense.hidden_states[1], attention_mask) <= 1e-5
    assert torch.equal(out.tokens_per_layer[:, 0], lengths_of(attention_mask))
    # Layer 1 prunes: its output is BERT's scaled per token by a mask in [0, 1], and [CLS]'s by exactly 1.
    soft, unscaled = out.hidden_states[2].detach(), dense.hidden_states[2]
    factor = (soft * unscaled).sum(-1) / (unscaled * unscaled).sum(-1)
    torch.testing.assert_close(soft[real], (factor[..., None] * unscaled)[real], rtol=0, atol=1e-5)
    assert (factor[real] >= -1e-6).all() and (factor[real] <= 1 + 1e-6).all()
    assert (factor[real] < 0.99).any()
    torch.testing.assert_close(factor[:, 0], torch.ones(len(LENGTHS)), rtol=0, atol=1e-5)
    assert out.pruning_loss is not None and out.pruning_loss.item() > 0

    out.loss.backward()
    grad = model.bert.encoder.threshold_offsets.grad
    assert grad is not None
    assert grad[0] == 0  # layer 0 never prunes
    assert (grad[1:] != 0).all()


def test_soft_regulariser_is_lambda_times_summed_mean_masks():
    model = soft_model(lambda_threshold=0.5)
    input_ids, attention_mask = make_batch(LENGTHS)
    out = model(input_ids, attention_mask=attention_mask)
    zero = soft_model(lambda_threshold=0.0)
    zero.load_state_dict(model.state_dict())
    assert zero(input_ids, attention_mask=attention_mask).pruning_loss.item() == 0.0
    # Each pruning layer's mean mask is in (0, 1]; two pruning layers of three.
    assert 0 < out.pruning_loss.item() <= 0.5 * 2 + 1e-6


def test_soft_regulariser_means_over_the_fixed_length_whatever_the_padding():
    model = soft_model(lambda_threshold=0.5)
    input_ids, attention_mask = make_batch(LENGTHS)
    out = model(input_ids, attention_mask=attention_mask)
    padded = model(torch.nn.functional.pad(input_ids, (0, 8)), attention_mask=torch.nn.functional.pad(attention_mask, (0, 8)))
    # The original's mean over 128 padded positions: the batch's own padding changes nothing.
    torch.testing.assert_close(padded.pruning_loss, out.pruning_loss, rtol=0, atol=1e-6)
    # Masks of real tokens summed and divided by batch x score_normalization_length, for two pruning layers of three.
    assert 0 < out.pruning_loss.item() <= 0.5 * 2 * attention_mask.sum().item() / (len(LENGTHS) * 128) + 1e-6


def test_threshold_scale_prunes_more_at_inference_only():
    model = LTPForSequenceClassification(make_config(final_token_threshold=0.6)).eval()
    sharpen_attention(model)
    input_ids, attention_mask = make_batch(LENGTHS)
    kept = {}
    for scale in (0.5, 1.0, 2.0):
        model.config.threshold_scale = scale
        packed, masked = run(model, input_ids, attention_mask, "packed"), run(model, input_ids, attention_mask, "masked")
        assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
        torch.testing.assert_close(packed.logits, masked.logits, rtol=0, atol=1e-5)
        kept[scale] = packed.tokens_per_layer.sum().item()
    assert kept[0.5] > kept[1.0] > kept[2.0]
    model.train()
    counts = {}
    for scale in (1.0, 4.0):
        model.config.threshold_scale = scale
        counts[scale] = model(input_ids, attention_mask=attention_mask).tokens_per_layer
    assert torch.equal(counts[1.0], counts[4.0])  # training ignores it


def test_hard_mode_training_drops_tokens_and_gives_thresholds_no_gradient():
    model = LTPForSequenceClassification(make_config(masking_mode="hard", final_token_threshold=0.6)).train()
    sharpen_attention(model)
    input_ids, attention_mask = make_batch(LENGTHS)
    out = model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 0, 1, 1, 0]))
    assert out.pruning_loss is None
    assert (out.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    out.loss.backward()
    assert model.bert.encoder.threshold_offsets.grad is None
    assert model.classifier.weight.grad is not None

    # Training with dropout 0 computes what masked hard inference does.
    model.eval()
    model.config.inference_engine = "masked"
    with torch.no_grad():
        reference = model(input_ids, attention_mask=attention_mask)
    torch.testing.assert_close(out.logits.detach(), reference.logits, rtol=0, atol=1e-5)


def test_adam_moves_thresholds_threshold_lr_scale_times_the_learning_rate():
    for scale in (1.0, 10.0):
        model = LTPModel(make_config(threshold_lr_scale=scale))
        optimizer = torch.optim.AdamW([model.encoder.threshold_offsets], lr=1e-3, weight_decay=0.0)
        before = model.encoder.thresholds().detach()
        model.encoder.thresholds().sum().backward()
        optimizer.step()
        moved = before - model.encoder.thresholds().detach()
        torch.testing.assert_close(moved, torch.full((3,), scale * 1e-3), rtol=1e-3, atol=0)


def test_stock_trainer_learns_thresholds_in_soft_mode(tmp_path):
    model = soft_model(num_labels=2)
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2, 12, 4), seq_len=12)
    dataset = DictDataset(input_ids, attention_mask, torch.randint(0, 2, (10,)))
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=3, logging_steps=1, learning_rate=1e-3,
        per_device_train_batch_size=5, save_strategy="no", disable_tqdm=True,
    )
    before = model.bert.encoder.thresholds().detach().clone()
    Trainer(model=model, args=args, train_dataset=dataset).train()
    after = model.bert.encoder.thresholds().detach()
    assert after[0] == before[0]
    # The regulariser pushes thresholds up; Adam moves each about threshold_lr_scale x lr per step.
    assert (after[1:] > before[1:]).all()
    assert (after[1:] - before[1:]).max() <= 3 * 10 * 1e-3 + 1e-6


# ----------------------------------------------------------------------------------------------- loading, config


def test_bert_checkpoint_loads_with_zero_offsets(tmp_path):
    bert = bert_twin(LTPModel(make_config()), method_keys="threshold_offsets")
    bert.save_pretrained(tmp_path)
    config = LTPConfig.from_pretrained(tmp_path, prune_mode="topk")
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path, config=config)
    assert isinstance(model, LTPForQuestionAnswering)
    assert torch.equal(model.bert.encoder.threshold_offsets, torch.zeros(3))


def test_config_defaults_follow_the_original_readme():
    config = LTPConfig()
    assert config.model_type == "ltp"
    # The original's score normalisation (heads x 128 padded positions) and its threshold learning rate (= the main one).
    assert (config.scoring_mode, config.score_normalization_length, config.threshold_lr_scale) == ("mean", 128, 1.0)
    assert (config.prune_mode, config.final_token_threshold, config.masking_mode) == ("absolute_threshold", 0.01, "hard")
    assert math.isclose(config.temperature, 1e-3) and math.isclose(config.lambda_threshold, 0.1)


def test_ranks_by_comparison_equal_the_stable_sorts_ranks():
    """Top-k ranks tokens by comparison counts where a stable sort cannot go (ONNX export): same ranks, ties to the
    earlier token, padding last."""
    from unittest import mock

    from transformers_prune.models.token_engine import pack
    from transformers_prune.models.token_views import GridView, PackedView

    mask = torch.tensor([[1] * 5 + [0] * 3, [1] * 8, [1] * 2 + [0] * 6])
    for seed in range(20):
        torch.manual_seed(seed)
        scores = torch.randint(0, 3, (3, 8)).float()  # many ties
        grid = GridView(torch.randn(3, 8, 4), mask.float(), mask.bool()).segment_rank(scores)
        stable = scores.masked_fill(~mask.bool(), -torch.inf).argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
        assert torch.equal(grid, stable)
        view = PackedView(pack(torch.randn(3, 8, 4), mask))
        packed_scores = scores[mask.bool()]
        with mock.patch("torch.compiler.is_exporting", return_value=True):
            by_comparison = view.segment_rank(packed_scores)
        assert torch.equal(by_comparison, view.segment_rank(packed_scores))


@pytest.mark.parametrize("prune_mode", ["absolute_threshold", "topk"])
def test_varlen_kernel_with_received_attention_from_its_lse_keeps_what_masked_keeps(monkeypatch, prune_mode):
    """On a GPU, LTP's packed path scores tokens from torch's varlen kernel's log-sum-exp instead of explicit
    probabilities; here the kernel is its CPU equivalent, and the keep decisions must equal the masked path's."""
    from transformers_prune.models import token_engine

    monkeypatch.setattr(token_engine, "varlen_attn", varlen_on_cpu)
    monkeypatch.setattr(token_engine, "varlen_unavailable", lambda query: None)
    model = pruning_model(prune_mode, "varlen")
    input_ids, attention_mask = make_batch(LENGTHS)
    packed = run(model, input_ids, attention_mask, "packed", output_hidden_states=True)
    masked = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)
    assert (packed.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()  # tokens were dropped
    assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
    assert_same_outputs(packed, masked, attention_mask, atol=1e-5, every_layer=True)
