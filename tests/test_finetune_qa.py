"""`transformers-prune finetune-qa`: SQuAD training targets from the tokenizer's offsets, and stock-Trainer runs of a
plain BERT and a token-pruning type that `bench --task squad` then scores."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertConfig, BertForQuestionAnswering

from transformers_prune.benchmark.data import load_squad
from transformers_prune.benchmark.squad import answer_token_positions, prepare_features
from transformers_prune_cli import main

from conftest import TINY_CONFIG_KWARGS, save_checkpoint, tiny_squad, write_tokenizer

SQUAD_DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "squad", "v1.1", "dev-v1.1.json")


@pytest.mark.skipif(not os.path.isfile(SQUAD_DEV), reason="../shared/data is not there")
def test_answer_positions_span_the_answer_text_in_every_window_that_holds_it(minilm_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    examples = load_squad(SQUAD_DEV, 200).examples
    features = prepare_features(tokenizer, examples, max_length=128, stride=32)  # short windows: many lack the answer
    starts, ends = answer_token_positions(features, examples)
    inside = outside = 0
    for feature, (start, end) in enumerate(zip(starts, ends)):
        example, offsets = examples[features.example_index[feature]], features.context_offsets[feature]
        if start == end == 0:
            outside += 1
            covered = [span for span in offsets if span is not None]
            answer = (example.answer_starts[0], example.answer_starts[0] + len(example.answers[0]))
            assert covered[0][0] > answer[0] or covered[-1][1] < answer[1]  # the window misses part of it
            continue
        inside += 1
        first, last = example.answer_starts[0], example.answer_starts[0] + len(example.answers[0])
        # The shortest token span that covers the answer's characters (a word piece may run past its end).
        assert offsets[start][0] <= first < offsets[start][1] and offsets[end][0] < last <= offsets[end][1]
    assert inside > 150 and outside > 10


def test_finetune_qa_trains_bert_and_a_token_pruning_type(tmp_path):
    tokenizer = write_tokenizer(tmp_path)
    torch.manual_seed(0)
    bert = save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    train_file = tiny_squad(tmp_path / "train.json")
    main(["finetune-qa", bert, "--output-dir", str(tmp_path / "dense"), "--train-file", train_file,
          "--max-length", "32", "--doc-stride", "8", "--batch-size", "2", "--epochs", "2", "--learning-rate", "1e-3"])
    trained = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "dense")
    before = BertForQuestionAnswering.from_pretrained(bert)
    assert not torch.equal(trained.qa_outputs.weight, before.qa_outputs.weight)
    history = json.loads((tmp_path / "dense" / "log_history.json").read_text())
    assert history[-1]["train_loss"] > 0

    main(["convert", "--to", "transkimmer-bert", bert, str(tmp_path / "tk-init")])
    main(["finetune-qa", str(tmp_path / "tk-init"), "--output-dir", str(tmp_path / "tk"), "--train-file", train_file,
          "--max-length", "32", "--doc-stride", "8", "--batch-size", "2", "--learning-rate", "1e-3"])
    assert type(AutoModelForQuestionAnswering.from_pretrained(tmp_path / "tk")).__name__ == "TranskimmerForQuestionAnswering"


def test_finetune_qa_refuses_bad_settings(tmp_path):
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    with pytest.raises(SystemExit):
        main(["finetune-qa", bert, "--output-dir", str(tmp_path / "out"), "--train-file", tiny_squad(tmp_path / "t.json"),
              "--max-length", "32", "--doc-stride", "32"])
    assert not (tmp_path / "out").exists()
