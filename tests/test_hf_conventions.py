"""HF conventions every model type keeps: attention implementations, gradient checkpointing, input length checks,
what a sequence classifier computes, TR-BERT's stage freeze after loading, and the method-free packed BERT."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from transformers_prune import AutoBertConfig, AutoBertForSequenceClassification, LTPConfig, LTPForSequenceClassification
from transformers_prune import TranskimmerForSequenceClassification
from transformers_prune.models.modeling_packed_bert import PackedBertForSequenceClassification

from conftest import TINY_CONFIG_KWARGS, make_batch, real_token_max_diff
from model_testers import TESTERS, randomise_predictors

LENGTHS = (1, 12, 5, 9, 3)
LABELS = torch.tensor([0, 1, 1, 0, 1])


def dropping_transkimmer():
    model = TranskimmerForSequenceClassification(TESTERS["transkimmer-bert"].make_config())
    randomise_predictors(model, weight_std=1.0, keep_bias=0.5)
    return model


@pytest.mark.parametrize("implementation", ["flash_attention_2", "flex_attention"])
def test_unsupported_attention_implementations_are_refused(tmp_path, implementation):
    dropping_transkimmer().save_pretrained(tmp_path)
    with pytest.raises((ValueError, ImportError)):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation=implementation)


@pytest.mark.parametrize("engine", ["packed", "masked"])
def test_eager_and_sdpa_give_the_same_outputs(tmp_path, engine):
    dropping_transkimmer().save_pretrained(tmp_path)
    input_ids, attention_mask = make_batch(LENGTHS)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation=implementation, inference_engine=engine)
        assert model.config._attn_implementation == implementation
        with torch.no_grad():
            outputs[implementation] = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    assert (outputs["sdpa"].tokens_per_layer < attention_mask.sum(dim=1, keepdim=True)).any()
    assert torch.equal(outputs["eager"].tokens_per_layer, outputs["sdpa"].tokens_per_layer)
    torch.testing.assert_close(outputs["eager"].logits, outputs["sdpa"].logits, rtol=0, atol=1e-5)
    assert real_token_max_diff(outputs["eager"].hidden_states[-1], outputs["sdpa"].hidden_states[-1], attention_mask) < 1e-5


def training_step(model, input_ids, attention_mask, seed: int = 0):
    torch.manual_seed(seed)  # the same Gumbel samples / rollouts with and without checkpointing
    loss = model(input_ids, attention_mask=attention_mask, labels=LABELS).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return loss.detach(), grads


@pytest.mark.parametrize(
    "make_model",
    [
        dropping_transkimmer,
        lambda: LTPForSequenceClassification(LTPConfig(**TINY_CONFIG_KWARGS, masking_mode="soft", final_token_threshold=0.3)),
        lambda: AutoBertForSequenceClassification(AutoBertConfig(**TINY_CONFIG_KWARGS, training_stage="train_both", rl_num_samples=2)),
    ],
    ids=["transkimmer-masked", "ltp-soft", "autobert-rollouts"],
)
def test_gradient_checkpointing_gives_the_same_training_step(make_model):
    model = make_model().train()
    input_ids, attention_mask = make_batch(LENGTHS)
    loss, grads = training_step(model, input_ids, attention_mask)
    model.activation_checkpointing_enable()  # transformers 5.x name; gradient_checkpointing_enable is deprecated
    assert model.bert.encoder.gradient_checkpointing
    checkpointed_loss, checkpointed_grads = training_step(model, input_ids, attention_mask)
    torch.testing.assert_close(checkpointed_loss, loss)
    assert checkpointed_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_inputs_longer_than_the_position_embeddings_are_refused():
    model = TranskimmerForSequenceClassification(TESTERS["transkimmer-bert"].make_config()).eval()
    input_ids, attention_mask = make_batch((65,), seq_len=65)  # the tiny config has 64 positions
    with pytest.raises(ValueError, match="65 positions but the model has 64 position embeddings"):
        model(input_ids, attention_mask=attention_mask)


def test_a_sequence_classifier_reads_cls_rows_without_restoring_every_position():
    model = dropping_transkimmer().eval()
    input_ids, attention_mask = make_batch(LENGTHS)
    assert model.bert.every_position is False
    with torch.no_grad():
        base = model.bert(input_ids, attention_mask=attention_mask)
        assert base.last_hidden_state is None and base.pooler_output.shape == (len(LENGTHS), model.config.hidden_size)
        packed = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        model.config.inference_engine = "masked"
        masked = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    torch.testing.assert_close(packed.logits, masked.logits, rtol=0, atol=1e-5)
    # Asked for hidden states, the packed engine restores the dropped tokens' last states too.
    for packed_layer, masked_layer in zip(packed.hidden_states, masked.hidden_states, strict=True):
        assert real_token_max_diff(packed_layer, masked_layer, attention_mask) < 1e-5


@pytest.mark.parametrize("loader", ["class", "auto"])
def test_train_rl_freeze_holds_after_from_pretrained(tmp_path, loader):
    AutoBertForSequenceClassification(AutoBertConfig(**TINY_CONFIG_KWARGS, training_stage="train_rl")).save_pretrained(tmp_path)
    load = AutoBertForSequenceClassification if loader == "class" else AutoModelForSequenceClassification
    model = load.from_pretrained(tmp_path)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".selectors." in name for name in trainable)
    both = load.from_pretrained(tmp_path, training_stage="train_both")
    assert all(p.requires_grad for p in both.parameters())


def test_packed_bert_computes_hf_bert(tmp_path):
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)).save_pretrained(tmp_path)
    hf = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    packed = PackedBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert packed.bert.runs_packed({})
    input_ids, attention_mask = make_batch(LENGTHS)
    with torch.no_grad():
        expected, ours = hf(input_ids, attention_mask=attention_mask), packed(input_ids, attention_mask=attention_mask)
    torch.testing.assert_close(ours.logits, expected.logits, rtol=0, atol=1e-5)


def test_a_model_refuses_to_run_once_a_field_that_shaped_it_has_changed():
    model = AutoBertForSequenceClassification(AutoBertConfig(**TINY_CONFIG_KWARGS, selection_layers=[1])).eval()
    input_ids, attention_mask = make_batch(LENGTHS)
    model.config.selection_layers = [2]  # a valid value, but the selectors were built for layer 1
    with pytest.raises(ValueError, match=r"selection_layers=\[2\] differs from \[1\], the value this model was built with"):
        model(input_ids, attention_mask=attention_mask)
    model.config.selection_layers.append(2)  # changed in place: the same refusal
    with pytest.raises(ValueError, match="selection_layers"):
        model(input_ids, attention_mask=attention_mask)
    model.config.selection_layers = [1]
    model(input_ids, attention_mask=attention_mask)
