"""`transformers-prune finetune` and the LTP recipe it carries: stage 0 (BERT), convert, soft stage, convert,
hard stage, each a CLI call on tiny checkpoints; and its bad-input messages."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification

from transformers_prune_cli import main

from conftest import TINY_CONFIG_KWARGS, save_checkpoint, write_sst2_csv, write_tokenizer

OFFSETS = "bert.encoder.threshold_offsets"
FAST = ["--max-length", "32", "--batch-size", "4", "--logging-steps", "1", "--epochs", "1"]


@pytest.fixture
def stage0(tmp_path):
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    return {"bert": bert, "train": write_sst2_csv(tmp_path / "train.csv", rows=16), "dev": write_sst2_csv(tmp_path / "dev.csv", seed=1)}


def finetune(model, output_dir, data, *extra):
    main(["finetune", model, "--output-dir", str(output_dir), "--train-file", data["train"], "--validation-file", data["dev"], *FAST, *extra])
    return json.loads((output_dir / "eval_results.json").read_text())


def test_ltp_recipe_through_the_cli(stage0, tmp_path):
    results = finetune(stage0["bert"], tmp_path / "stage0", stage0)
    assert results["train_examples"] == 16 and 0 <= results["eval"]["accuracy"] <= 1

    main(["convert", "--to", "ltp", str(tmp_path / "stage0"), str(tmp_path / "soft-init"), "--set", "masking_mode=soft",
          "--set", "final_token_threshold=0.3", "--set", "lambda_threshold=0.5",
          "--set", "scoring_mode=mean_norm"])  # thresholds sized for scores of about 1/n on these short inputs
    results = finetune(str(tmp_path / "soft-init"), tmp_path / "soft", stage0, "--learning-rate", "1e-3")
    learned = load_file(tmp_path / "soft" / "model.safetensors")[OFFSETS]
    assert learned[0] == 0 and (learned[1:] != 0).all()  # the stock Trainer trained the thresholds
    assert results["eval"]["kept_fraction"] <= 1.0
    history = json.loads((tmp_path / "soft" / "log_history.json").read_text())
    assert any("kept_fraction_layer_2" in row for row in history)

    main(["convert", "--to", "ltp", str(tmp_path / "soft"), str(tmp_path / "hard-init"), "--set", "masking_mode=hard"])
    assert torch.equal(load_file(tmp_path / "hard-init" / "model.safetensors")[OFFSETS], learned)
    finetune(str(tmp_path / "hard-init"), tmp_path / "hard", stage0, "--learning-rate", "1e-3")
    hard = load_file(tmp_path / "hard" / "model.safetensors")
    assert torch.equal(hard[OFFSETS], learned)  # fixed in the hard stage
    config = json.loads((tmp_path / "hard" / "config.json").read_text())
    assert config["model_type"] == "ltp" and config["masking_mode"] == "hard"


def test_shuffle_seed_picks_the_training_rows_and_the_count_is_recorded(stage0, tmp_path):
    results = finetune(stage0["bert"], tmp_path / "seeded", stage0, "--max-train-samples", "6", "--shuffle-seed", "1")
    assert results["train_examples"] == 6 and results["num_labels"] == 2
    assert json.loads((tmp_path / "seeded" / "config.json").read_text())["problem_type"] == "single_label_classification"


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_train_file", "data file .*missing.csv does not exist"),
        ("missing_column", r"lacks columns \['label'\]"),
        ("missing_checkpoint", "is not a checkpoint folder"),
    ],
)
def test_bad_input_fails_with_a_clear_message(case, message, stage0, tmp_path):
    model, data = stage0["bert"], dict(stage0)
    if case == "missing_train_file":
        data["train"] = str(tmp_path / "missing.csv")
    elif case == "missing_column":
        (tmp_path / "bad.csv").write_text("sentence,score\nfun,1\n", encoding="utf-8")
        data["train"] = str(tmp_path / "bad.csv")
    else:
        model = str(tmp_path / "nowhere")
    with pytest.raises(SystemExit, match=message):
        finetune(model, tmp_path / "out", data)
    assert not (tmp_path / "out").exists()


def test_label_names_name_the_classes_in_the_saved_model(tmp_path):
    from transformers import AutoConfig, BertConfig, BertModel

    from transformers_prune_cli import main as cli_main

    from conftest import TINY_CONFIG_KWARGS, save_checkpoint, write_sst2_csv, write_tokenizer

    encoder = save_checkpoint(BertModel(BertConfig(**TINY_CONFIG_KWARGS)), write_tokenizer(tmp_path), tmp_path / "encoder")
    train = write_sst2_csv(tmp_path / "train.csv", rows=8)
    common = ["finetune", encoder, "--train-file", train, "--validation-file", "", "--max-length", "16", "--batch-size", "4"]
    cli_main([*common, "--output-dir", str(tmp_path / "out"), "--label-names", "negative", "positive"])
    assert AutoConfig.from_pretrained(tmp_path / "out").id2label == {0: "negative", 1: "positive"}
    with pytest.raises(SystemExit, match="--label-names gives 3 names for 2 classes"):
        cli_main([*common, "--output-dir", str(tmp_path / "out3"), "--label-names", "a", "b", "c"])
