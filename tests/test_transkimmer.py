"""`transkimmer-bert`'s own behaviour: the unbalanced init, skimmed tokens jumping to the output, deterministic
eval and Gumbel training, the skim loss and its gradients, the heads' training losses, the Trainer callback, and a
real MiniLM checkpoint. What every token-pruning type shares (engine parity, save/load, validation, pipelines)
is in `test_common.py`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, BertModel, Trainer, TrainingArguments

from transformers_prune import (
    KeepRatioCallback,
    TranskimmerConfig,
    TranskimmerForQuestionAnswering,
    TranskimmerForSequenceClassification,
    TranskimmerForTokenClassification,
    TranskimmerModel,
)

from conftest import DictDataset, assert_same_outputs, bert_twin, lengths_of, make_batch, real_token_max_diff, run
from model_testers import TESTERS, randomise_predictors

KEEP, SKIM = 1, 0
make_tiny_config = TESTERS["transkimmer-bert"].make_config


def skim_predictors(model):
    return model.base_model.encoder.skim_predictors


# ----------------------------------------------------------------------------------------------- init


def test_fresh_predictors_start_with_unbalanced_bias():
    model = TranskimmerModel(make_tiny_config())
    for predictor in skim_predictors(model):
        bias = predictor.classifier.bias.detach()
        assert abs(bias[KEEP].item() - 5.0) < 0.2
        assert abs(bias[SKIM].item() + 5.0) < 0.2


@pytest.mark.parametrize("engine", ["packed", "masked"])
def test_fresh_predictors_keep_every_token_and_equal_bert(engine, batch):
    model = TranskimmerModel(make_tiny_config(inference_engine=engine)).eval()
    input_ids, attention_mask = batch
    assert (attention_mask == 0).any()  # padding is present
    ours = run(model, input_ids, attention_mask, engine)
    with torch.no_grad():
        reference = bert_twin(model, ".skim_predictors.")(input_ids, attention_mask=attention_mask)
    assert_same_outputs(ours, reference, attention_mask, atol=1e-4)
    expected = lengths_of(attention_mask)[:, None].expand(-1, model.config.num_hidden_layers)
    assert torch.equal(ours.tokens_per_layer, expected)


# ----------------------------------------------------------------------------------------------- skimming


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_packed_matches_masked(dtype):
    model = TranskimmerModel(make_tiny_config()).eval()
    # Large predictor weights give decisions far from the keep/skim boundary, so half-precision rounding
    # differences between the engines cannot flip them.
    randomise_predictors(model, weight_std=10.0, keep_bias=0.0, skim_bias=0.0)
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11), seq_len=12)
    model = model.to(dtype)
    packed = run(model, input_ids, attention_mask, "packed")
    masked = run(model, input_ids, attention_mask, "masked")
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


def test_cls_is_never_skimmed_in_training(batch):
    model = TranskimmerModel(make_tiny_config()).train()
    randomise_predictors(model, weight_std=0.0, keep_bias=-1e4, skim_bias=1e4)
    input_ids, attention_mask = batch
    out = model(input_ids, attention_mask=attention_mask)
    assert torch.equal(out.tokens_per_layer, torch.ones_like(out.tokens_per_layer))


def test_training_counts_real_tokens_only(batch):
    model = TranskimmerModel(make_tiny_config()).train()  # fresh predictors: every token kept
    input_ids, attention_mask = batch
    tokens = model(input_ids, attention_mask=attention_mask).tokens_per_layer
    assert tokens.dtype == torch.long
    assert torch.equal(tokens, lengths_of(attention_mask)[:, None].expand(-1, model.config.num_hidden_layers))


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

    task_loss = F.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss - out.pruning_loss, task_loss, rtol=0, atol=1e-6)
    # All tokens kept at init: skim loss = coefficient x real tokens / padded positions, the original's normalisation.
    real_share = (attention_mask.sum() / attention_mask.numel()).item()
    assert 0.5 * real_share * 0.9 < out.pruning_loss.item() <= 0.5 * real_share + 1e-5

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
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------- heads


def test_question_answering_training_loss_ignores_positions_outside_the_input(batch):
    model = TranskimmerForQuestionAnswering(make_tiny_config()).train()
    input_ids, attention_mask = batch
    start_positions, end_positions = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 2, 3, 4, 50])  # 50: past the input
    out = model(input_ids, attention_mask=attention_mask, start_positions=start_positions, end_positions=end_positions)
    assert out.start_logits.shape == out.end_logits.shape == input_ids.shape
    # The out-of-range end position drops out of the end loss's mean; every start position counts.
    end_loss = F.cross_entropy(out.end_logits[:4], end_positions[:4])
    task_loss = (F.cross_entropy(out.start_logits, start_positions) + end_loss) / 2
    torch.testing.assert_close(out.loss - out.pruning_loss, task_loss, rtol=0, atol=1e-6)
    out.loss.backward()
    assert model.qa_outputs.weight.grad.abs().sum() > 0


def test_token_classification_training_loss_adds_the_skim_loss(batch):
    model = TranskimmerForTokenClassification(make_tiny_config(num_labels=5)).train()
    input_ids, attention_mask = batch
    labels = torch.randint(0, 5, input_ids.shape).masked_fill(attention_mask == 0, -100)
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (*input_ids.shape, 5)
    task_loss = F.cross_entropy(out.logits.view(-1, 5), labels.view(-1))
    assert out.pruning_loss > 0
    torch.testing.assert_close(out.loss, task_loss + out.pruning_loss, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------- config


def test_good_config_values_accepted():
    config = make_tiny_config(
        skim_coefficient=0, skim_gumbel_tau=0.5, inference_engine="masked",
        packed_attention_backend="sdpa_padded", skim_predictor_hidden_size=8,
    )
    assert skim_predictors(TranskimmerModel(config))[0].dense.out_features == 8
    assert skim_predictors(TranskimmerModel(make_tiny_config()))[0].dense.out_features == config.hidden_size  # None


# ----------------------------------------------------------------------------------------------- Trainer


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


def test_keep_threshold_trades_tokens_at_inference(batch):
    model = TranskimmerForSequenceClassification(make_tiny_config())
    randomise_predictors(model, weight_std=1.0)
    model.eval()
    input_ids, attention_mask = batch
    kept = {}
    for threshold in (0.2, 0.5, 0.8):
        model.config.keep_threshold = threshold
        packed = run(model, input_ids, attention_mask, "packed")
        masked = run(model, input_ids, attention_mask, "masked")
        assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
        torch.testing.assert_close(packed.logits, masked.logits, rtol=0, atol=1e-5)
        kept[threshold] = packed.tokens_per_layer.sum().item()
    assert kept[0.2] > kept[0.5] > kept[0.8]
    # 0.5 is the paper's argmax of the two logits.
    model.config.keep_threshold = 0.5
    with torch.no_grad():
        logits = skim_predictors(model)[0](model.bert.embeddings(input_ids=input_ids))
    argmax_kept = ((logits[..., KEEP] > logits[..., SKIM]) | (torch.arange(input_ids.shape[1]) == 0)) & attention_mask.bool()
    assert torch.equal(run(model, input_ids, attention_mask).tokens_per_layer[:, 0], argmax_kept.sum(dim=1))
