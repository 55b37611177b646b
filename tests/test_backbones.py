"""The backbone seam: `ltp` on a RoBERTa backbone (`ltp-roberta`), against HF's RoBERTa on a tiny random config."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification, RobertaModel

from transformers_prune import LTPRobertaConfig, LTPRobertaForQuestionAnswering, LTPRobertaForSequenceClassification, LTPRobertaModel
from transformers_prune_cli import main

from conftest import TINY_CONFIG_KWARGS, make_batch, real_token_max_diff, run

LENGTHS = (1, 12, 5, 9, 3, 11)
ROBERTA_KWARGS = {**TINY_CONFIG_KWARGS, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1}


def roberta_batch():
    input_ids, attention_mask = make_batch(LENGTHS)
    return input_ids.masked_fill(attention_mask == 0, 1), attention_mask  # RoBERTa pads with id 1


@pytest.fixture
def roberta_folder(tmp_path):
    torch.manual_seed(0)
    RobertaForSequenceClassification(RobertaConfig(**ROBERTA_KWARGS)).save_pretrained(tmp_path / "roberta")
    return tmp_path / "roberta"


@pytest.mark.parametrize("engine", ["packed", "masked"])
def test_ltp_roberta_with_pruning_off_is_roberta(roberta_folder, engine):
    reference = RobertaForSequenceClassification.from_pretrained(roberta_folder).eval()
    ours, loading = LTPRobertaForSequenceClassification.from_pretrained(
        roberta_folder, final_token_threshold=0.0, inference_engine=engine, output_loading_info=True
    )
    assert set(loading["missing_keys"]) == {"roberta.encoder.threshold_offsets"}
    input_ids, attention_mask = roberta_batch()
    with torch.no_grad():
        expected = reference(input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(run(ours.eval(), input_ids, attention_mask, engine).logits, expected, rtol=0, atol=1e-5)


def dropping_roberta(cls, folder):
    model = cls.from_pretrained(folder, scoring_mode="mean_norm", final_token_threshold=0.6).eval()
    with torch.no_grad():  # peaked attention: tokens receive very different amounts of it
        for layer in model.base_model.encoder.layer:
            layer.attention.self.query.weight.normal_(0.0, 0.6)
            layer.attention.self.key.weight.normal_(0.0, 0.6)
    return model


@pytest.mark.parametrize("cls", [LTPRobertaForSequenceClassification, LTPRobertaForQuestionAnswering])
def test_ltp_roberta_packed_matches_masked_with_drops(roberta_folder, cls):
    model = dropping_roberta(cls, roberta_folder)
    input_ids, attention_mask = roberta_batch()
    packed, masked = run(model, input_ids, attention_mask, "packed"), run(model, input_ids, attention_mask, "masked")
    assert (packed.tokens_per_layer[:, -1] < attention_mask.sum(dim=1)).any()
    assert torch.equal(packed.tokens_per_layer, masked.tokens_per_layer)
    for name in ("logits",) if cls is LTPRobertaForSequenceClassification else ("start_logits", "end_logits"):
        real = attention_mask.bool() if name != "logits" else slice(None)
        torch.testing.assert_close(getattr(packed, name)[real], getattr(masked, name)[real], rtol=0, atol=1e-5)


def test_base_model_keeps_robertas_prefix_and_names(roberta_folder):
    bare = RobertaModel(RobertaConfig(**ROBERTA_KWARGS), add_pooling_layer=False)
    ours = LTPRobertaModel(LTPRobertaConfig(**ROBERTA_KWARGS, final_token_threshold=0.0), add_pooling_layer=False)
    assert set(ours.state_dict()) - set(bare.state_dict()) == {"encoder.threshold_offsets"}
    with torch.no_grad():
        ours.load_state_dict(bare.state_dict(), strict=False)
    input_ids, attention_mask = roberta_batch()
    with torch.no_grad():
        expected = bare.eval()(input_ids, attention_mask=attention_mask).last_hidden_state
    assert real_token_max_diff(run(ours.eval(), input_ids, attention_mask).last_hidden_state, expected, attention_mask) < 1e-5


def test_convert_takes_a_roberta_checkpoint_and_refuses_bert(roberta_folder, tmp_path):
    (roberta_folder / "vocab.json").write_text("{}")  # convert copies whatever tokenizer files are there
    main(["convert", "--to", "ltp-roberta", str(roberta_folder), str(tmp_path / "ltp")])
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ltp")
    assert isinstance(model, LTPRobertaForSequenceClassification) and model.config.model_type == "ltp-roberta"
    with pytest.raises(SystemExit, match="needs a 'bert'"):
        main(["convert", "--to", "ltp", str(roberta_folder), str(tmp_path / "wrong")])
