"""`transkimmer-bert`: equality with BERT, packed vs masked engines, heads, training, save/load, Auto classes,
config and input validation, the Trainer contract, and a real MiniLM checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import CrossEntropyLoss
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertModel,
    Trainer,
    TrainingArguments,
)

import transformers_prune
from transformers_prune import (
    KeepRatioCallback,
    TranskimmerConfig,
    TranskimmerForQuestionAnswering,
    TranskimmerForSequenceClassification,
    TranskimmerForTokenClassification,
    TranskimmerModel,
)

from conftest import (
    CPU_BACKENDS,
    TINY_CONFIG_KWARGS,
    DictDataset,
    assert_pruning_off_equals_bert,
    assert_same_outputs,
    lengths_of,
    bert_twin,
    make_batch,
    make_tiny_config,
    randomise_predictors,
    real_token_max_diff,
    skim_predictors,
)

KEEP, SKIM = 1, 0


# ----------------------------------------------------------------------------------------------- equality with BERT


def test_fresh_predictors_start_with_unbalanced_bias(tiny_config):
    model = TranskimmerModel(tiny_config)
    for predictor in skim_predictors(model):
        bias = predictor.classifier.bias.detach()
        assert abs(bias[KEEP].item() - 5.0) < 0.2
        assert abs(bias[SKIM].item() + 5.0) < 0.2


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_keep_all_equals_bert(engine, backend, batch):
    config = make_tiny_config(inference_engine=engine, packed_attention_backend=backend)
    model = TranskimmerModel(config).eval()
    bert = bert_twin(model)
    input_ids, attention_mask = batch
    assert (attention_mask == 0).any()  # padding is present

    with torch.no_grad():
        ours = model(input_ids, attention_mask=attention_mask)
        reference = bert(input_ids, attention_mask=attention_mask)

    assert_same_outputs(ours, reference, attention_mask, atol=1e-4)
    # Fresh predictors keep every real token in every layer.
    expected = lengths_of(attention_mask)[:, None].expand(-1, config.num_hidden_layers)
    assert torch.equal(ours.tokens_per_layer, expected)


@pytest.mark.parametrize("engine", ["packed", "masked"])
def test_prune_at_inference_false_equals_bert_with_skimming_predictors(engine, batch):
    model = TranskimmerModel(make_tiny_config()).eval()
    randomise_predictors(model, weight_std=1.0, keep_bias=-3.0, skim_bias=3.0)  # would skim nearly everything
    input_ids, attention_mask = batch
    assert_pruning_off_equals_bert(model, input_ids, attention_mask, engine, method_keys=".skim_predictors.")


# ----------------------------------------------------------------------------------------------- packed vs masked


CASES = {
    # name: (lengths, predictor settings)
    "random_half": ((1, 12, 5, 9, 3, 11), dict(weight_std=1.0, keep_bias=0.0, skim_bias=0.0)),
    "keep_only_cls": ((1, 12, 5, 9, 3, 11), dict(weight_std=0.0, keep_bias=-1e4, skim_bias=1e4)),
    "batch_size_1": ((12,), dict(weight_std=1.0, keep_bias=0.0, skim_bias=0.0)),
}


def run_engine(model, engine, input_ids, attention_mask):
    model.config.inference_engine = engine
    with torch.no_grad():
        return model(input_ids, attention_mask=attention_mask, output_hidden_states=True)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_packed_matches_masked_with_drops(backend, case):
    lengths, predictor_settings = CASES[case]
    model = TranskimmerModel(make_tiny_config(packed_attention_backend=backend)).eval()
    randomise_predictors(model, **predictor_settings)
    input_ids, attention_mask = make_batch(lengths, seq_len=12)

    packed = run_engine(model, "packed", input_ids, attention_mask)
    masked = run_engine(model, "masked", input_ids, attention_mask)

    real = lengths_of(attention_mask)
    tokens = packed.tokens_per_layer
    if case == "keep_only_cls":
        assert torch.equal(tokens, torch.ones_like(tokens))
    else:
        # Tokens really are skimmed, but not all of them, and the decisions are cumulative.
        assert (tokens[:, 0] < real).any()
        assert (tokens[:, 0] > 1).any()
        assert (tokens[:, 1:] <= tokens[:, :-1]).all()
    assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
    assert_same_outputs(packed, masked, attention_mask, atol=1e-5)
    torch.testing.assert_close(packed.pruning_loss, masked.pruning_loss, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_packed_matches_masked(dtype):
    model = TranskimmerModel(make_tiny_config()).eval()
    # Large predictor weights give decisions far from the keep/skim boundary, so half-precision rounding
    # differences between the engines cannot flip them.
    randomise_predictors(model, weight_std=10.0, keep_bias=0.0, skim_bias=0.0)
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11), seq_len=12)
    model = model.to(dtype)
    packed = run_engine(model, "packed", input_ids, attention_mask)
    masked = run_engine(model, "masked", input_ids, attention_mask)
    assert packed.last_hidden_state.dtype == dtype
    assert (packed.tokens_per_layer[:, 0] < lengths_of(attention_mask)).any()
    assert (packed.tokens_per_layer[:, 0] > 1).any()
    assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
    assert real_token_max_diff(packed.last_hidden_state.float(), masked.last_hidden_state.float(), attention_mask) <= 5e-2


def test_skimmed_token_keeps_state_of_last_kept_layer():
    """A token skimmed before layer 0 leaves the encoder with its embedding (its last state)."""
    model = TranskimmerModel(make_tiny_config()).eval()
    randomise_predictors(model, weight_std=0.0, keep_bias=-1e4, skim_bias=1e4)  # keep only [CLS]
    input_ids, attention_mask = make_batch((4, 6), seq_len=6)
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        embeddings = model.embeddings(input_ids=input_ids)
    real = attention_mask.bool().clone()
    real[:, 0] = False
    torch.testing.assert_close(out.last_hidden_state[real], embeddings[real], rtol=0, atol=1e-6)
    assert (out.last_hidden_state[:, 0] - embeddings[:, 0]).abs().max() > 1e-3  # [CLS] went through the layers


def test_masked_hidden_states_consistent_with_last_hidden_state_and_packed():
    model = TranskimmerModel(make_tiny_config()).eval()
    randomise_predictors(model)
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11), seq_len=12)
    packed = run_engine(model, "packed", input_ids, attention_mask)
    masked = run_engine(model, "masked", input_ids, attention_mask)
    assert (packed.tokens_per_layer < lengths_of(attention_mask)[:, None]).any()
    # The packed engine is self-consistent: the last entry is the model output.
    assert real_token_max_diff(packed.hidden_states[-1], packed.last_hidden_state, attention_mask) == 0
    # The masked engine should be too, and agree with the packed engine layer by layer.
    assert real_token_max_diff(masked.hidden_states[-1], masked.last_hidden_state, attention_mask) <= 1e-5
    for packed_layer, masked_layer in zip(packed.hidden_states, masked.hidden_states):
        assert real_token_max_diff(packed_layer, masked_layer, attention_mask) <= 1e-5


@pytest.mark.parametrize("engine", ["packed", "masked"])
def test_cls_is_never_skimmed(engine, batch):
    model = TranskimmerModel(make_tiny_config(inference_engine=engine)).eval()
    randomise_predictors(model, weight_std=0.0, keep_bias=-1e4, skim_bias=1e4)  # predictors say "skim" everywhere
    input_ids, attention_mask = batch
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask)
    assert (out.tokens_per_layer >= 1).all()
    assert torch.equal(out.tokens_per_layer, torch.ones_like(out.tokens_per_layer))


def test_cls_is_never_skimmed_in_training(batch):
    model = TranskimmerModel(make_tiny_config()).train()
    randomise_predictors(model, weight_std=0.0, keep_bias=-1e4, skim_bias=1e4)
    input_ids, attention_mask = batch
    out = model(input_ids, attention_mask=attention_mask)
    assert torch.equal(out.tokens_per_layer, torch.ones_like(out.tokens_per_layer))


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_tokens_per_layer_shape_dtype_and_no_padding(engine, mode, batch):
    model = TranskimmerModel(make_tiny_config(inference_engine=engine))
    model.train(mode == "train")
    input_ids, attention_mask = batch
    with torch.set_grad_enabled(mode == "train"):
        out = model(input_ids, attention_mask=attention_mask)
    tokens = out.tokens_per_layer
    assert tokens.shape == (input_ids.shape[0], model.config.num_hidden_layers)
    assert tokens.dtype == torch.long
    # All-keep model: every layer counts exactly the real tokens of each example, never padding.
    assert torch.equal(tokens, lengths_of(attention_mask)[:, None].expand_as(tokens))
    assert torch.equal(tokens.sum(dim=1), attention_mask.sum(dim=1) * model.config.num_hidden_layers)


def test_eval_is_deterministic_and_training_samples(batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(num_labels=3))
    # Balanced predictors: keep and skim logits equal, so a Gumbel sample keeps each token with probability 1/2.
    randomise_predictors(model, weight_std=0.0, keep_bias=0.0, skim_bias=0.0)
    input_ids, attention_mask = make_batch((1, 12, 12, 12, 9, 11), seq_len=12)

    model.eval()
    with torch.no_grad():
        first = model(input_ids, attention_mask=attention_mask)
        second = model(input_ids, attention_mask=attention_mask)
    assert torch.equal(first.logits, second.logits)
    assert torch.equal(first.tokens_per_layer, second.tokens_per_layer)
    # Deterministic rule: keep only where keep-logit > skim-logit, so ties skim everything but [CLS].
    assert torch.equal(first.tokens_per_layer, torch.ones_like(first.tokens_per_layer))

    model.train()  # dropout is 0 in the tiny config: only the Gumbel samples can differ between forwards
    samples = [model(input_ids, attention_mask=attention_mask).tokens_per_layer for _ in range(3)]
    assert any(not torch.equal(samples[0], s) for s in samples[1:])
    assert any((s > 1).any() for s in samples)  # unlike eval, sampling keeps some non-[CLS] tokens


# ----------------------------------------------------------------------------------------------- training


def test_training_step_loss_and_gradients(batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(num_labels=3, skim_coefficient=0.5)).train()
    input_ids, attention_mask = batch
    labels = torch.tensor([0, 1, 2, 1, 0])
    out = model(input_ids, attention_mask=attention_mask, labels=labels)

    task_loss = CrossEntropyLoss()(out.logits, labels)
    torch.testing.assert_close(out.loss - out.pruning_loss, task_loss, rtol=0, atol=1e-6)
    # All tokens kept at init: skim loss = coefficient x kept fraction = 0.5 x ~1.
    assert 0.45 < out.pruning_loss.item() <= 0.5 + 1e-5

    out.loss.backward()
    for name, param in model.named_parameters():
        if ".skim_predictors." in name or ".layer." in name:
            assert param.grad is not None, f"no gradient reached {name}"
    predictor_grads = [p.grad.abs().sum() for p in skim_predictors(model).parameters()]
    assert sum(predictor_grads) > 0
    bert_weights = [
        model.bert.encoder.layer[0].attention.self.query.weight,
        model.bert.encoder.layer[-1].output.dense.weight,
        model.bert.embeddings.word_embeddings.weight,
    ]
    for weight in bert_weights:
        assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_skim_loss_reaches_predictors_through_gumbel(batch):
    """The skim loss alone (no task loss) drives the predictors: straight-through gradients are not zero."""
    model = TranskimmerModel(make_tiny_config()).train()
    randomise_predictors(model, weight_std=0.1, keep_bias=0.0, skim_bias=0.0)
    input_ids, attention_mask = batch
    out = model(input_ids, attention_mask=attention_mask)
    out.pruning_loss.backward()
    for predictor in skim_predictors(model):
        assert predictor.classifier.bias.grad is not None
        assert predictor.classifier.bias.grad.abs().sum() > 0


def test_zero_skim_coefficient_gives_zero_pruning_loss(batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(skim_coefficient=0)).train()
    input_ids, attention_mask = batch
    labels = torch.tensor([0, 1, 1, 0, 1])
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.pruning_loss.item() == 0.0
    torch.testing.assert_close(out.loss, CrossEntropyLoss()(out.logits, labels), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------- heads


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_question_answering_head_full_length_with_drops(backend, batch):
    model = TranskimmerForQuestionAnswering(make_tiny_config(packed_attention_backend=backend)).eval()
    randomise_predictors(model)
    input_ids, attention_mask = batch
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask)
    assert out.start_logits.shape == input_ids.shape
    assert out.end_logits.shape == input_ids.shape
    assert (out.tokens_per_layer < lengths_of(attention_mask)[:, None]).any()  # tokens were dropped
    assert out.loss is None

    # Dropped tokens' logits come from their restored states: same as the masked engine on every real position.
    model.config.inference_engine = "masked"
    with torch.no_grad():
        masked = model(input_ids, attention_mask=attention_mask)
    real = attention_mask.bool()
    torch.testing.assert_close(out.start_logits[real], masked.start_logits[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.end_logits[real], masked.end_logits[real], rtol=0, atol=1e-5)

    model.config.inference_engine = "packed"
    start_positions, end_positions = torch.tensor([0, 3, 1, 2, 0]), torch.tensor([0, 7, 4, 5, 2])
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask, start_positions=start_positions, end_positions=end_positions)
    loss_fct = CrossEntropyLoss()
    task_loss = (loss_fct(out.start_logits, start_positions) + loss_fct(out.end_logits, end_positions)) / 2
    # At evaluation the loss is the task loss alone (no skim loss), as for every model type.
    assert out.pruning_loss is None
    torch.testing.assert_close(out.loss, task_loss, rtol=0, atol=1e-5)


def test_question_answering_training_loss(batch):
    model = TranskimmerForQuestionAnswering(make_tiny_config()).train()
    input_ids, attention_mask = batch
    out = model(
        input_ids, attention_mask=attention_mask, start_positions=torch.tensor([0, 1, 2, 3, 4]),
        end_positions=torch.tensor([0, 2, 3, 4, 50]),  # 50 is outside the input: ignored
    )
    assert out.start_logits.shape == input_ids.shape
    out.loss.backward()
    assert model.qa_outputs.weight.grad is not None


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_token_classification_head(mode, batch):
    model = TranskimmerForTokenClassification(make_tiny_config(num_labels=5))
    model.train(mode == "train")
    if mode == "eval":
        randomise_predictors(model)
    input_ids, attention_mask = batch
    labels = torch.randint(0, 5, input_ids.shape).masked_fill(attention_mask == 0, -100)
    with torch.set_grad_enabled(mode == "train"):
        out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (*input_ids.shape, 5)
    task_loss = CrossEntropyLoss()(out.logits.view(-1, 5), labels.view(-1))
    # The skim loss joins the task loss in training only.
    assert (out.pruning_loss is not None) == (mode == "train")
    torch.testing.assert_close(out.loss, task_loss + (out.pruning_loss if mode == "train" else 0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_labels", [1, 3])
def test_sequence_classification_head(num_labels, batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(num_labels=num_labels)).eval()
    input_ids, attention_mask = batch
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask)
    assert out.logits.shape == (input_ids.shape[0], num_labels)
    assert out.loss is None
    assert out.tokens_per_layer.shape == (input_ids.shape[0], 3)


# ----------------------------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip_keeps_trained_predictors(tmp_path, batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(num_labels=3, skim_coefficient=0.3)).eval()
    randomise_predictors(model, weight_std=1.0, keep_bias=0.75, skim_bias=-0.25)  # non-default (trained) values
    input_ids, attention_mask = batch
    with torch.no_grad():
        before = model(input_ids, attention_mask=attention_mask)
    assert (before.tokens_per_layer < lengths_of(attention_mask)[:, None]).any()

    model.save_pretrained(tmp_path)
    loaded = TranskimmerForSequenceClassification.from_pretrained(tmp_path).eval()
    auto_loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()

    assert isinstance(auto_loaded, TranskimmerForSequenceClassification)
    assert loaded.config.skim_coefficient == 0.3
    for reloaded in (loaded, auto_loaded):
        for original, restored in zip(skim_predictors(model), skim_predictors(reloaded)):
            assert torch.equal(restored.classifier.bias, original.classifier.bias)  # not re-initialised to +-5
            assert torch.equal(restored.classifier.weight, original.classifier.weight)
        with torch.no_grad():
            after = reloaded(input_ids, attention_mask=attention_mask)
        assert torch.equal(after.logits, before.logits)
        assert torch.equal(after.tokens_per_layer, before.tokens_per_layer)


def test_base_model_checkpoint_loads_into_heads(tmp_path, batch):
    """A TranskimmerModel checkpoint (no `bert.` prefix) loads into a head model with its predictors intact."""
    base = TranskimmerModel(make_tiny_config()).eval()
    randomise_predictors(base, keep_bias=0.5, skim_bias=-0.5)
    base.save_pretrained(tmp_path)
    head = TranskimmerForQuestionAnswering.from_pretrained(tmp_path).eval()
    for original, restored in zip(skim_predictors(base), skim_predictors(head)):
        assert torch.equal(restored.classifier.bias, original.classifier.bias)
    input_ids, attention_mask = batch
    with torch.no_grad():
        expected = base(input_ids, attention_mask=attention_mask)
        got = head.bert(input_ids, attention_mask=attention_mask)
    assert torch.equal(expected.tokens_per_layer, got.tokens_per_layer)
    assert real_token_max_diff(expected.last_hidden_state, got.last_hidden_state, attention_mask) == 0


# ----------------------------------------------------------------------------------------------- Auto classes


def test_auto_classes_resolve_to_transkimmer():
    config = AutoConfig.for_model("transkimmer-bert", **TINY_CONFIG_KWARGS)
    assert isinstance(config, TranskimmerConfig)
    assert config.model_type == "transkimmer-bert"
    assert type(AutoModel.from_config(config)) is TranskimmerModel
    assert type(AutoModelForSequenceClassification.from_config(config)) is TranskimmerForSequenceClassification
    assert type(AutoModelForQuestionAnswering.from_config(config)) is TranskimmerForQuestionAnswering
    assert type(AutoModelForTokenClassification.from_config(config)) is TranskimmerForTokenClassification
    assert "transkimmer-bert" in transformers_prune.MODEL_TYPES


def test_auto_config_from_saved_dir(tmp_path):
    make_tiny_config(skim_coefficient=0.2).save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, TranskimmerConfig)
    assert config.skim_coefficient == 0.2


# ----------------------------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "key,value",
    [
        ("skim_coefficient", -1),
        ("skim_gumbel_tau", 0),
        ("inference_engine", "foo"),
        ("packed_attention_backend", "foo"),
        ("skim_predictor_hidden_size", 0),
    ],
)
def test_bad_config_value_raises(key, value):
    with pytest.raises(ValueError, match=key):
        make_tiny_config(**{key: value})


def test_good_config_values_accepted():
    config = make_tiny_config(
        skim_coefficient=0, skim_gumbel_tau=0.5, inference_engine="masked",
        packed_attention_backend="sdpa_padded", skim_predictor_hidden_size=8,
    )
    assert config.skim_predictor_hidden_size == 8
    model = TranskimmerModel(config)
    assert skim_predictors(model)[0].dense.out_features == 8


@pytest.mark.parametrize(
    "key,value",
    [("skim_gumbel_tau", 0), ("inference_engine", "foo"), ("skim_coefficient", -0.5), ("packed_attention_backend", "bar")],
)
def test_loading_edited_bad_config_raises(tmp_path, key, value):
    make_tiny_config().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    assert key in data or key == "packed_attention_backend"
    data[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=key):
        TranskimmerConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=key):
        AutoConfig.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------- input validation


@pytest.fixture
def eval_model():
    return TranskimmerForSequenceClassification(make_tiny_config()).eval()


def test_all_padding_example_raises(eval_model):
    input_ids, attention_mask = make_batch((3, 5))
    attention_mask[1] = 0
    with pytest.raises(ValueError, match=r"examples \[1\] are all padding"):
        eval_model(input_ids, attention_mask=attention_mask)


def test_left_padding_raises(eval_model):
    input_ids, attention_mask = make_batch((3, 5))
    attention_mask[0] = torch.tensor([0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="left-padded"):
        eval_model(input_ids, attention_mask=attention_mask)


def test_mismatched_attention_mask_shape_raises(eval_model):
    input_ids, attention_mask = make_batch((3, 5))
    with pytest.raises(ValueError, match="does not match inputs"):
        eval_model(input_ids, attention_mask=attention_mask[:, :4])


def test_one_dimensional_input_ids_raise(eval_model):
    with pytest.raises(ValueError, match=r"must be \[batch, seq_len\]"):
        eval_model(torch.tensor([2, 5, 6, 7]))


def test_output_attentions_with_packed_engine_raises(eval_model, batch):
    input_ids, attention_mask = batch
    with pytest.raises(ValueError, match="output_attentions needs inference_engine='masked'"):
        eval_model(input_ids, attention_mask=attention_mask, output_attentions=True)


def test_output_attentions_with_masked_engine(batch):
    model = TranskimmerForSequenceClassification(make_tiny_config(inference_engine="masked")).eval()
    randomise_predictors(model)
    input_ids, attention_mask = batch
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 3
    batch_size, seq_len = input_ids.shape
    for attention in out.attentions:
        assert attention.shape == (batch_size, 4, seq_len, seq_len)
        torch.testing.assert_close(attention.sum(-1), torch.ones(batch_size, 4, seq_len), rtol=0, atol=1e-5)
        # No query attends to a padding key.
        assert attention.masked_select(~attention_mask.bool()[:, None, None, :]).abs().max() == 0
    # Keys skimmed before the last layer get no attention in it (tokens_per_layer counts the kept keys).
    kept_keys = (out.attentions[-1][:, 0, 0] > 0).sum(dim=1)
    assert torch.equal(kept_keys, out.tokens_per_layer[:, -1])
    assert (out.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()


def test_return_dict_false_gives_tuple(eval_model, batch):
    input_ids, attention_mask = batch
    with torch.no_grad():
        as_tuple = eval_model(input_ids, attention_mask=attention_mask, return_dict=False)
        as_output = eval_model(input_ids, attention_mask=attention_mask)
    assert isinstance(as_tuple, tuple)
    assert torch.equal(as_tuple[0], as_output.logits)  # no labels: logits come first


def test_flash_varlen_without_flash_attn_gives_clear_error(batch):
    from transformers.utils import is_flash_attn_2_available

    if is_flash_attn_2_available() and torch.cuda.is_available():
        pytest.skip("flash-attn is usable here")
    input_ids, attention_mask = batch
    with pytest.raises((ValueError, ImportError, RuntimeError), match="flash"):
        model = TranskimmerModel(make_tiny_config(packed_attention_backend="flash_varlen")).eval()
        with torch.no_grad():
            model(input_ids, attention_mask=attention_mask)


def test_attention_mask_defaults_to_all_ones(eval_model):
    input_ids, _ = make_batch((6, 6))
    with torch.no_grad():
        out = eval_model(input_ids)
    assert torch.equal(out.tokens_per_layer, torch.full((2, 3), 6))


# ----------------------------------------------------------------------------------------------- Trainer contract


def test_trainer_contract_attributes():
    model = TranskimmerForSequenceClassification(make_tiny_config())
    assert model.accepts_loss_kwargs is False
    assert "tokens_per_layer" in model.config.keys_to_ignore_at_inference
    assert "pruning_loss" in model.config.keys_to_ignore_at_inference


def test_trainer_logs_kept_fraction_and_predicts_plain_logits(tmp_path):
    import transformers.trainer as trainer_module

    assert KeepRatioCallback in trainer_module.DEFAULT_CALLBACKS
    num_labels, n = 3, 10
    model = TranskimmerForSequenceClassification(make_tiny_config(num_labels=num_labels, skim_coefficient=0.5))
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2, 12, 4), seq_len=12)
    dataset = DictDataset(input_ids, attention_mask, torch.randint(0, num_labels, (n,)))
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=4, logging_steps=2,
        per_device_train_batch_size=4, per_device_eval_batch_size=4, save_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    assert any(isinstance(cb, KeepRatioCallback) for cb in trainer.callback_handler.callbacks)
    trainer.train()

    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    for entry in logged:
        assert "kept_fraction" in entry and "kept_fraction_layer_0" in entry
        layers = [entry[f"kept_fraction_layer_{i}"] for i in range(3)]
        assert all(0 < value <= 1 + 1e-6 for value in layers)  # fractions of real tokens, padding excluded
        assert entry["kept_fraction"] == pytest.approx(sum(layers) / 3)

    prediction = trainer.predict(dataset)
    assert isinstance(prediction.predictions, np.ndarray)
    assert prediction.predictions.shape == (n, num_labels)
    model.eval()
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask).logits
    np.testing.assert_allclose(prediction.predictions, expected.numpy(), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------- real checkpoint

SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window.",
    "Transformers learn to skim tokens layer by layer.",
    "Short one",
]


def test_real_minilm_checkpoint_equals_bert(minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    inputs = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    attention_mask = inputs["attention_mask"]
    assert (attention_mask == 0).any()  # the batch is padded

    config = TranskimmerConfig.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path, config=config).eval()
    assert isinstance(model, TranskimmerModel)
    bert = BertModel.from_pretrained(minilm_path).eval()
    with torch.no_grad():
        ours = model(**inputs)
        reference = bert(**inputs)

    assert real_token_max_diff(ours.last_hidden_state, reference.last_hidden_state, attention_mask) <= 1e-4
    expected_tokens = attention_mask.sum(dim=1)[:, None].expand(-1, config.num_hidden_layers)
    assert torch.equal(ours.tokens_per_layer, expected_tokens)
