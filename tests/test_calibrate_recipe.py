"""examples/stock_scripts/calibrate.py, the recipes' last step: a trained model's inference-time pruning strength set
on held-out rows. It must stop at the first value within tolerance, fall back to the best-scoring one when none is,
leave the chosen value in the output folder, and change nothing but that field (no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForSequenceClassification

from transformers_prune.conversion import convert_bert_checkpoint

from conftest import TINY_CONFIG_KWARGS
from test_stock_scripts import DATA_DIR, head_of_csv, needs_data

CALIBRATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "stock_scripts", "calibrate.py")


@pytest.fixture
def ltp_model(tmp_path_factory, minilm_path) -> str:
    """A tiny LTP classifier that prunes real SST-2 sentences at threshold_scale 1 (final threshold 0.3)."""
    root = tmp_path_factory.mktemp("calibrate")
    torch.manual_seed(0)
    settings = {**TINY_CONFIG_KWARGS, "vocab_size": 30522, "max_position_embeddings": 512, "num_labels": 2}
    BertForSequenceClassification(BertConfig(**settings)).save_pretrained(root / "bert")
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(root / "bert")
    return convert_bert_checkpoint(str(root / "bert"), "ltp", str(root / "ltp"), final_token_threshold=0.3)


def calibrate(model: str, output: str, tmp_path, reference: float, values: list[str]) -> dict:
    sst2 = os.path.join(DATA_DIR, "glue", "sst2", "train.csv")
    train = head_of_csv(sst2, tmp_path / "train.csv", rows=16)
    tuning = head_of_csv(sst2, tmp_path / "tuning.csv", rows=24, skip=16)
    command = [sys.executable, CALIBRATE, model, output, "--key", "threshold_scale", "--values", *values,
               "--reference", str(reference), "--train-file", train, "--tuning-file", tuning, "--max-seq-length", "32"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@needs_data
def test_stops_at_the_first_value_within_tolerance(ltp_model, tmp_path):
    chosen = calibrate(ltp_model, str(tmp_path / "out"), tmp_path, reference=-1000.0, values=["1", "0.01"])
    assert chosen["passed"] and chosen["value"] == 1 and [entry["value"] for entry in chosen["tried"]] == [1]
    assert AutoConfig.from_pretrained(tmp_path / "out", trust_remote_code=True).threshold_scale == 1


@needs_data
def test_falls_back_to_the_best_scoring_value_and_changes_only_that_field(ltp_model, tmp_path):
    chosen = calibrate(ltp_model, str(tmp_path / "out"), tmp_path, reference=1000.0, values=["1", "0.01"])
    strong, weak = chosen["tried"]
    assert sum(weak["kept_per_layer"]) > sum(strong["kept_per_layer"])  # a smaller threshold keeps more: the value reached the model
    best = strong if strong["score"] >= weak["score"] else weak  # the stronger pruning on a tie
    assert not chosen["passed"] and chosen["value"] == best["value"] and chosen["tuning_score"] == best["score"]
    assert AutoConfig.from_pretrained(tmp_path / "out", trust_remote_code=True).threshold_scale == best["value"]
    before, after = load_file(os.path.join(ltp_model, "model.safetensors")), load_file(tmp_path / "out" / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
