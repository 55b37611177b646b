"""Commands under careless or hostile use: outputs written whole or not at all and never over their own inputs,
input errors as one line naming the file and row (exit status 2), labels taken from the whole file or the model,
converted checkpoints that hold every tensor, config values checked at construction, load and assignment, and
the import layering (the command line on top, nothing imports a command)."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import time
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

import transformers_prune
from transformers_prune import MODEL_TYPES, AdapLeRConfig, AutoBertConfig, LTPConfig, TranskimmerConfig
import transformers_prune_cli
from transformers_prune_cli import COMMANDS, main
from transformers_prune.data_files import read_labelled_rows
from transformers_prune.folders import staged_output_file, staged_output_folder

from conftest import TINY_CONFIG_KWARGS, make_batch, save_checkpoint, write_sst2_csv, write_tokenizer

PACKAGE_DIR = os.path.dirname(transformers_prune.__file__)
FAST = ["--max-length", "32", "--batch-size", "4", "--logging-steps", "1"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    tokenizer = write_tokenizer(folder)
    torch.manual_seed(0)
    return save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / "cls")


def fingerprint(folder) -> dict[str, str]:
    """Every file of `folder` (recursively) -> its md5."""
    result = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = hashlib.md5(f.read()).hexdigest()
    return result


def leftovers(folder) -> list[str]:
    """Staging folders or files a command left beside its target."""
    return [name for name in os.listdir(folder) if ".partial-" in name or ".previous-" in name]


# ------------------------------------------------------------------------------------------------ staged outputs


def test_a_staged_folder_replaces_the_target_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "model.safetensors").write_text("stale")
    with pytest.raises(ValueError, match="not empty; pass --overwrite"):
        with staged_output_folder(str(target)):
            pass
    with staged_output_folder(str(target), overwrite=True) as staged:
        (tmp_path / "out" / "model.safetensors").read_text()  # the old content stays readable until the end
        with open(os.path.join(staged, "model-00001-of-00002.safetensors"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(target)) == ["model-00001-of-00002.safetensors"] and leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_or_interrupted_block_leaves_the_target_as_it_was(error, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "config.json").write_text("{}")
    before = fingerprint(target)
    with pytest.raises(error):
        with staged_output_folder(str(target), overwrite=True) as staged:
            with open(os.path.join(staged, "config.json"), "w") as f:
                f.write("half")
            raise error()
    assert fingerprint(target) == before and leftovers(tmp_path) == []
    with pytest.raises(error):
        with staged_output_folder(str(tmp_path / "fresh")):
            raise error()
    assert not (tmp_path / "fresh").exists() and leftovers(tmp_path) == []


def test_a_staged_file_is_replaced_only_with_overwrite_and_never_half_written(tmp_path):
    path = tmp_path / "rows.jsonl"
    with staged_output_file(str(path)) as f:
        f.write("first\n")
    with pytest.raises(ValueError, match="already exists; pass --overwrite"):
        with staged_output_file(str(path)):
            pass
    with pytest.raises(RuntimeError):
        with staged_output_file(str(path), overwrite=True) as f:
            f.write("half")
            raise RuntimeError()
    assert path.read_text() == "first\n" and leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="is the input"):
        with staged_output_file(str(path), overwrite=True, inputs=[str(path)]):
            pass


@pytest.mark.parametrize("where", ["same", "parent", "link"])
def test_an_output_is_never_its_own_input(where, tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text("{}")
    if where == "link":
        os.symlink(source, tmp_path / "alias")
    target = {"same": source, "parent": tmp_path, "link": tmp_path / "alias"}[where]
    with pytest.raises(ValueError, match="(is|holds) the input"):
        with staged_output_folder(str(target), overwrite=True, inputs=[str(source)]):
            pass
    assert (source / "config.json").read_text() == "{}"


def test_convert_and_compress_refuse_their_own_source_before_writing(bert, tmp_path):
    copy = tmp_path / "copy"
    main(["convert", "--to", "ltp", bert, str(copy)])
    main(["convert", "--to", "ltp", str(copy), str(tmp_path / "ltp")])
    before = fingerprint(copy)
    with pytest.raises(SystemExit, match="is the input"):
        main(["convert", "--to", "ltp", str(copy), str(copy), "--set", "final_token_threshold=0.02", "--overwrite"])
    bert_copy = tmp_path / "bert-copy"
    main(["finetune", bert, "--output-dir", str(bert_copy), "--train-file", write_sst2_csv(tmp_path / "t.csv"),
          "--validation-file", "", *FAST])
    bert_before = fingerprint(bert_copy)
    with pytest.raises(SystemExit, match="is the input"):
        main(["compress", str(bert_copy), str(bert_copy), "--method", "svd", "--targets", "key", "--ratio", "2", "--overwrite"])
    assert fingerprint(copy) == before and fingerprint(bert_copy) == bert_before


def test_convert_over_an_older_folder_leaves_no_stale_file(bert, tmp_path):
    stale = tmp_path / "out"
    main(["convert", "--to", "transkimmer-bert", bert, str(stale)])
    (stale / "model-00001-of-00009.safetensors").write_text("stale shard")
    with pytest.raises(SystemExit, match="already exists and is not empty; pass --overwrite"):
        main(["convert", "--to", "ltp", bert, str(stale)])
    main(["convert", "--to", "ltp", bert, str(stale), "--overwrite"])
    main(["convert", "--to", "ltp", bert, str(tmp_path / "fresh")])
    assert sorted(os.listdir(stale)) == sorted(os.listdir(tmp_path / "fresh"))
    card = (stale / "README.md").read_text()
    assert card.startswith("---") and "# `ltp`: LTPForSequenceClassification" in card and "- ltp\n" in card
    assert "transkimmer" not in card.lower() and leftovers(tmp_path) == []


def test_a_failed_convert_writes_nothing(bert, tmp_path):
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text(open(os.path.join(bert, "config.json")).read())
    with pytest.raises(SystemExit, match="has a config.json but no weights"):
        main(["convert", "--to", "ltp", str(config_only), str(tmp_path / "out")])
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit, match="exists and is a file"):
        main(["convert", "--to", "ltp", bert, str(tmp_path / "afile")])
    nameless = tmp_path / "nameless"  # a classifier whose config.json lost its architectures: the head would be lost
    shutil.copytree(bert, nameless)
    config = json.loads((nameless / "config.json").read_text())
    del config["architectures"]
    (nameless / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"names no architecture, so convert cannot tell which head its tensors classifier"):
        main(["convert", "--to", "ltp", str(nameless), str(tmp_path / "out")])
    assert sorted(os.listdir(tmp_path)) == ["afile", "config-only", "nameless"]


def test_finetune_trains_in_place_only_with_overwrite_and_replaces_the_folder(bert, tmp_path):
    folder = tmp_path / "model"
    main(["convert", "--to", "ltp", bert, str(folder)])
    train = write_sst2_csv(tmp_path / "train.csv", rows=8)
    (folder / "notes.txt").write_text("mine")
    command = ["finetune", str(folder), "--output-dir", str(folder), "--train-file", train, "--validation-file", "", *FAST]
    before = fingerprint(folder)
    with pytest.raises(SystemExit, match="pass --overwrite"):
        main(command)
    assert fingerprint(folder) == before
    main([*command, "--overwrite"])
    files = set(os.listdir(folder))
    assert "notes.txt" not in files and {"model.safetensors", "eval_results.json", "log_history.json"} <= files
    assert leftovers(tmp_path) == []


def test_outputs_refuse_to_swallow_an_input(bert, tmp_path):
    (tmp_path / "data").mkdir()
    train = write_sst2_csv(tmp_path / "data" / "train.csv")
    with pytest.raises(SystemExit, match="holds the input"):
        main(["finetune", bert, "--output-dir", str(tmp_path / "data"), "--overwrite", "--train-file", train,
              "--validation-file", "", *FAST])
    with pytest.raises(SystemExit, match="is the input"):
        main(["saliency", bert, "--data-file", train, "--output-file", train, "--overwrite"])
    assert os.path.isfile(train)


def test_saliency_writes_its_file_whole_and_replaces_it_only_with_overwrite(bert, tmp_path):
    train = write_sst2_csv(tmp_path / "train.csv", rows=6)
    output = tmp_path / "saliency.jsonl"
    command = ["saliency", bert, "--data-file", train, "--output-file", str(output), "--max-length", "16"]
    main(command)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(row["label"], int) and len(row["saliency"]) == 16 for row in rows)
    with pytest.raises(SystemExit, match="already exists; pass --overwrite"):
        main(command)
    main([*command, "--max-samples", "2", "--overwrite"])
    assert len(output.read_text().splitlines()) == 2 and leftovers(tmp_path) == []


def test_bench_refuses_a_used_output_folder_before_measuring(bert, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bench.json").write_text("{}")
    data = write_sst2_csv(tmp_path / "dev.csv")
    with pytest.raises(SystemExit, match="already exists and is not empty; pass --overwrite"):
        main(["bench", bert, "--task", "sst2", "--data-file", data, "--output-dir", str(out)])
    assert (out / "bench.json").read_text() == "{}"


# --------------------------------------------------------------------------------------- one-line input errors

BAD_TRAIN_FILES = {
    "bad.jsonl": ('{"sentence": "good", "label": 1}\n{this is not json\n', r"bad.jsonl line 2 is not valid JSON"),
    "missing.jsonl": ('{"sentence": "good", "label": 1}\n{"sentence": "bad"}\n', r"missing.jsonl line 2: the 'label' value is missing"),
    "semicolon.csv": ("sentence;label\ngood, really;1\nbad;0\n", r"semicolon.csv: its header 'sentence;label' looks ';'-separated"),
    "names.csv": ("sentence,label\ngood,pos\nbad,neg\n", r"names.csv line 2: label 'pos' is not a class id .*map class names"),
    "negative.csv": ("sentence,label\ngood,-1\nbad,-1\n", r"negative.csv line 2: label '-1' is not a class id \(an integer >= 0\)"),
    "real.csv": ("sentence,label\ngood,0.75\nbad,0.25\n", r"real.csv line 2: label '0.75' is not a class id .*regression"),
    "real.jsonl": ('{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0.5}\n', r"real.jsonl line 2: label 0.5"),
    "empty_text.csv": ("sentence,label\ngood,1\n,0\n", r"empty_text.csv line 3: the 'sentence' cell is empty"),
    "extra_field.csv": ("sentence,label\ngood,1\nbad, really,0\n", r"extra_field.csv line 3 has 3 fields, the header 2"),
    "header_only.csv": ("sentence,label\n", r"header_only.csv has no data rows"),
    "not_objects.jsonl": ("[1, 2]\n", r"not_objects.jsonl item 1 is not a JSON object"),
}


@pytest.mark.parametrize("name", sorted(BAD_TRAIN_FILES))
def test_a_bad_training_file_is_one_line_naming_file_and_row(name, bert, tmp_path, capsys):
    content, message = BAD_TRAIN_FILES[name]
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit, match=message) as failure:
        main(["finetune", bert, "--output-dir", str(tmp_path / "out"), "--train-file", str(tmp_path / name),
              "--validation-file", "", *FAST])
    assert failure.value.code == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(printed) and printed[-1].startswith("transformers-prune finetune: ") and str(tmp_path / name) in printed[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, value",
    [("--max-train-samples", "0"), ("--max-eval-samples", "0"), ("--max-length", "0"), ("--batch-size", "0"), ("--epochs", "0")],
)
def test_zero_never_means_all(option, value, bert, tmp_path, capsys):
    with pytest.raises(SystemExit) as failure:
        main(["finetune", bert, "--output-dir", str(tmp_path / "out"), option, value])
    assert failure.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_samples must be at least 1"):
        read_labelled_rows(write_sst2_csv(tmp_path / "t.csv"), "sentence", "label", max_samples=0)


@pytest.mark.parametrize("option", ["--max-samples", "--max-length", "--batch-size"])
def test_zero_never_means_all_for_saliency(option, bert, tmp_path, capsys):
    with pytest.raises(SystemExit) as failure:
        main(["saliency", bert, "--data-file", write_sst2_csv(tmp_path / "t.csv"), "--output-file", str(tmp_path / "s.jsonl"),
              option, "0"])
    assert failure.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "s.jsonl").exists()


def test_finetune_into_a_file_is_refused_before_training(bert, tmp_path):
    (tmp_path / "afile").write_text("kept")
    with pytest.raises(SystemExit, match="exists and is a file"):
        main(["finetune", bert, "--output-dir", str(tmp_path / "afile"), "--train-file", write_sst2_csv(tmp_path / "t.csv"),
              "--validation-file", "", *FAST])
    assert (tmp_path / "afile").read_text() == "kept"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "skim_coefficient=true"], r"Field 'skim_coefficient' with value True doesn't match any type"),
        (["--set", "skim_coefficient=Infinity"], r"skim_coefficient=inf is invalid; allowed: a finite number >= 0"),
        (["--set", "num_labels=3"], r"changes the shape of 2 trained tensor\(s\) \(classifier.bias \[2\] -> \[3\]"),
        (["--set", "hidden_size=30"], r"hidden_size=30 is invalid; allowed: a multiple of num_attention_heads \(= 4\)"),
        (["--set", "hidden_size=40"], r"changes the shape of 53 trained tensor\(s\) \(bert.embeddings.LayerNorm.bias \[32\] -> \[40\]"),
        (["--set", "num_hidden_layers=2"], r"has no place for 16 of its encoder tensors \(bert.encoder.layer.\*\)"),
        (["--set", "skim_predictor_hidden_size"], r"--set expects KEY=VALUE"),
    ],
)
def test_bad_convert_settings_are_one_line_and_write_nothing(extra, message, bert, tmp_path):
    with pytest.raises(SystemExit, match=message) as failure:
        main(["convert", "--to", "transkimmer-bert", bert, str(tmp_path / "out"), *extra])
    assert failure.value.code == 2 and not (tmp_path / "out").exists()


def test_build_time_keys_that_would_orphan_trained_tensors_are_refused(bert, tmp_path):
    main(["convert", "--to", "autobert", bert, str(tmp_path / "autobert"), "--set", "selection_layers=[0, 2]"])
    main(["convert", "--to", "transkimmer-bert", bert, str(tmp_path / "skimmer")])
    with pytest.raises(SystemExit, match=r"has no place for 4 of its encoder tensors \(bert.encoder.selectors.\*\)"):
        main(["convert", "--to", "autobert", str(tmp_path / "autobert"), str(tmp_path / "a"), "--set", "selection_layers=[2]"])
    with pytest.raises(SystemExit, match=r"changes the shape of .*skim_predictors"):
        main(["convert", "--to", "transkimmer-bert", str(tmp_path / "skimmer"), str(tmp_path / "b"),
              "--set", "skim_predictor_hidden_size=8"])
    main(["convert", "--to", "transkimmer-bert", str(tmp_path / "skimmer"), str(tmp_path / "c"), "--set", "skim_coefficient=0.3"])
    assert json.loads((tmp_path / "c" / "config.json").read_text())["skim_coefficient"] == 0.3


def test_rank_beyond_the_matrix_and_a_missing_compressed_module_are_clear(bert, tmp_path):
    with pytest.raises(SystemExit, match=r"--rank 100 is too large for the 32 x 32 key matrices; svd allows at most 32"):
        main(["compress", bert, str(tmp_path / "out"), "--method", "svd", "--targets", "key", "--rank", "100"])
    assert not (tmp_path / "out").exists()
    main(["compress", bert, str(tmp_path / "svd"), "--method", "svd", "--targets", "key", "--rank", "2"])
    config = json.loads((tmp_path / "svd" / "config.json").read_text())
    config["compressed_modules"] = {"encoder.nope": {"kind": "low_rank", "rank": 2}}
    (tmp_path / "svd" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"compressed_modules\['encoder.nope'\] names no module of the model"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "svd")


def test_bench_on_a_folder_without_weights_is_one_line(bert, tmp_path):
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text(open(os.path.join(bert, "config.json")).read())
    with pytest.raises(SystemExit, match="config-only has a config.json but no weights"):
        main(["bench", str(tmp_path / "config-only"), "--task", "sst2", "--data-file", write_sst2_csv(tmp_path / "d.csv"),
              "--output-dir", str(tmp_path / "out")])


def test_debug_shows_the_error_itself(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a checkpoint folder"):
        main(["convert", "--to", "ltp", str(tmp_path / "nowhere"), str(tmp_path / "o"), "--debug"])


# ------------------------------------------------------------------------------------------------------- labels


def write_rows(path, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)
    return str(path)


def test_a_single_class_training_set_is_refused_unless_allowed(tmp_path, bert):
    encoder = save_checkpoint(AutoModel.from_config(BertConfig(**TINY_CONFIG_KWARGS)), write_tokenizer(tmp_path), tmp_path / "encoder")
    sorted_file = write_rows(tmp_path / "sorted.csv", [("bad film", 0)] * 6 + [("good film", 1)] * 6)  # IMDB-like
    command = ["finetune", encoder, "--train-file", sorted_file, "--validation-file", "", "--max-train-samples", "4", *FAST]
    with pytest.raises(SystemExit, match=r"all 4 training rows used have label 0 \(the whole file has labels \[0, 1\].*--shuffle-seed"):
        main([*command, "--output-dir", str(tmp_path / "a")])
    main([*command, "--output-dir", str(tmp_path / "b"), "--allow-single-class"])
    config = AutoConfig.from_pretrained(tmp_path / "b")
    assert config.num_labels == 2 and config.problem_type == "single_label_classification"  # never a regression head
    main([*command, "--output-dir", str(tmp_path / "c"), "--shuffle-seed", "3"])
    assert json.loads((tmp_path / "c" / "eval_results.json").read_text())["num_labels"] == 2


def test_labels_come_from_the_whole_file_or_the_classifier_head(tmp_path, bert):
    encoder = save_checkpoint(AutoModel.from_config(BertConfig(**TINY_CONFIG_KWARGS)), write_tokenizer(tmp_path), tmp_path / "encoder")
    three = write_rows(tmp_path / "three.csv", [("bad", 0), ("good", 1), ("bad", 0), ("good", 1), ("so so", 2)])
    main(["finetune", encoder, "--output-dir", str(tmp_path / "a"), "--train-file", three, "--validation-file", "",
          "--max-train-samples", "4", *FAST])
    assert AutoConfig.from_pretrained(tmp_path / "a").num_labels == 3  # label 2 is past row 4
    with pytest.raises(SystemExit, match=r"three.csv line 6: label 2 is not one of the model's 2 classes"):
        main(["finetune", bert, "--output-dir", str(tmp_path / "b"), "--train-file", three, "--validation-file", "", *FAST])
    two = write_rows(tmp_path / "two.csv", [("bad", 0), ("good", 1)])
    with pytest.raises(SystemExit, match=r"three.csv line 6: label 2 is not one of the model's 2 classes"):
        main(["finetune", bert, "--output-dir", str(tmp_path / "c"), "--train-file", two, "--validation-file", three, *FAST])


def test_shuffle_seed_draws_the_rows_a_shuffled_list_of_rows_gives(tmp_path):
    path = write_sst2_csv(tmp_path / "rows.csv", rows=40)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for seed in (0, 7, 1234):
        shuffled = list(rows)
        random.Random(seed).shuffle(shuffled)
        drawn = read_labelled_rows(path, "sentence", "label", max_samples=15, shuffle_seed=seed)
        assert drawn.texts == [row["sentence"] for row in shuffled[:15]]
        assert drawn.labels == [int(row["label"]) for row in shuffled[:15]]
    first = read_labelled_rows(path, "sentence", "label", max_samples=15)
    assert first.texts == [row["sentence"] for row in rows[:15]] and len(first.file_labels) == 40


# ------------------------------------------------------------------------------------------- complete conversions


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_a_converted_folder_holds_every_tensor_and_loads_identically(model_type, bert, tmp_path):
    out = tmp_path / "out"
    main(["convert", "--to", model_type, bert, str(out), "--seed", "5"])
    source, converted = load_file(os.path.join(bert, "model.safetensors")), load_file(out / "model.safetensors")
    for key, tensor in source.items():
        assert torch.equal(converted[key], tensor), key  # carried over unchanged
    new = sorted(set(converted) - set(source))
    assert new, "the method's parameters are saved"
    loaded = [AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True) for _ in range(2)]
    assert all(not info["missing_keys"] and not info["mismatched_keys"] for _, info in loaded)
    input_ids, attention_mask = make_batch((1, 12, 5, 9), seq_len=12, vocab_size=26)
    outputs = []
    for model, _ in loaded:
        with torch.no_grad():
            outputs.append(model.eval()(input_ids, attention_mask=attention_mask).logits)
    assert torch.equal(outputs[0], outputs[1])
    main(["convert", "--to", model_type, bert, str(tmp_path / "same"), "--seed", "5"])
    main(["convert", "--to", model_type, bert, str(tmp_path / "other"), "--seed", "6"])
    same, other = load_file(tmp_path / "same" / "model.safetensors"), load_file(tmp_path / "other" / "model.safetensors")
    assert all(torch.equal(same[key], converted[key]) for key in new)
    if model_type != "ltp":  # ltp's only new tensor, threshold_offsets, starts at zero whatever the seed
        assert any(not torch.equal(other[key], converted[key]) for key in new)
    card = (out / "README.md").read_text()
    assert f"# `{model_type}`: " in card and "`bert`" not in card


# --------------------------------------------------------------------------------------- config assignment


@pytest.mark.parametrize(
    "config_class, key, bad, good",
    [
        (TranskimmerConfig, "inference_engine", "foo", "masked"),
        (TranskimmerConfig, "skim_coefficient", -3, 0.2),
        (LTPConfig, "threshold_lr_scale", float("inf"), 5.0),
        (LTPConfig, "masking_mode", "mixed", "soft"),
        (AdapLeRConfig, "eta_scale", float("nan"), 1.5),
        (AutoBertConfig, "selection_layers", [9], [2]),
        (AutoBertConfig, "hidden_dropout_prob", 1.5, 0.2),
    ],
)
def test_an_assigned_config_value_is_checked_and_a_bad_one_undone(config_class, key, bad, good):
    config = config_class(**TINY_CONFIG_KWARGS)
    before = getattr(config, key)
    with pytest.raises(ValueError, match=key):
        setattr(config, key, bad)
    assert getattr(config, key) == before
    setattr(config, key, good)
    assert getattr(config, key) == good


def test_hf_internals_that_set_config_attributes_still_work(tmp_path):
    config = LTPConfig(**TINY_CONFIG_KWARGS, masking_mode="soft")
    config._attn_implementation = "eager"
    config.problem_type = "single_label_classification"  # what a head's forward sets on its first labelled batch
    config.num_labels = 3
    config.save_pretrained(tmp_path)
    loaded = LTPConfig.from_pretrained(tmp_path, temperature=0.002)
    assert loaded.temperature == 0.002 and loaded.num_labels == 3 and loaded.masking_mode == "soft"
    assert LTPConfig.from_dict(loaded.to_dict()).to_dict() == loaded.to_dict()
    with pytest.raises(ValueError, match="temperature"):
        LTPConfig.from_pretrained(tmp_path, temperature=float("inf"))


# ------------------------------------------------------------------------------------------------ import layering

CLI_DIR = os.path.dirname(transformers_prune_cli.__file__)
COMMAND_MODULES = {module for module, _ in COMMANDS.values()}
SHARED_CLI_MODULES = {"common", "choices"}  # what every command may import from the command line's package


def package_imports(package_dir: str) -> dict[str, set[str]]:
    """Module of a package (dotted, relative to it: `benchmark.runner`; `__init__` for the package itself) ->
    what it imports: modules of the same package dotted the same way, others by their absolute name."""
    graph = {}
    for root, _, names in os.walk(package_dir):
        for name in (name for name in names if name.endswith(".py")):
            parts = os.path.relpath(os.path.join(root, name), package_dir)[:-3].split(os.sep)
            package = parts[:-1]  # what a relative import of level 1 starts from
            module = ".".join(parts if name != "__init__.py" else package) or "__init__"
            imported = set()
            for node in ast.walk(ast.parse(open(os.path.join(root, name), encoding="utf-8").read())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
                    imported |= {target, *(f"{target}.{alias.name}".strip(".") for alias in node.names)}
                elif isinstance(node, ast.ImportFrom):
                    imported.add(node.module or "")
                elif isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
            graph[module] = imported
    return graph


def test_commands_sit_on_top_and_nothing_imports_a_command():
    """The import contract: transformers_prune_cli (the command line) -> transformers_prune (benchmark / deploy /
    training / compression -> models). The library never imports the command line (`python -m transformers_prune`
    is the command line itself); a command imports no other command (`common` and `choices` are their shared
    options); `models/` imports nothing of the package outside itself (it is copied into every checkpoint)."""
    for module, imported in package_imports(PACKAGE_DIR).items():
        if module != "__main__":
            assert not {name for name in imported if name.startswith("transformers_prune_cli")}, f"{module} imports the command line"
        if module.startswith("models."):
            outside = {name for name in imported if not name.startswith("models.") and name.startswith("transformers_prune")}
            assert not outside, f"{module} imports {sorted(outside)} from outside models/"
    graph = package_imports(CLI_DIR)
    assert COMMAND_MODULES <= set(graph)
    for module in COMMAND_MODULES | SHARED_CLI_MODULES:
        others = {name.split(".")[0] for name in graph[module]} & (COMMAND_MODULES - {module})
        assert not others, f"{module} imports the command module(s) {sorted(others)}"


def test_tests_import_the_library_not_commands():
    """Tests drive commands through the command line (`transformers_prune_cli.main`); the one exception is the
    shared runner of every command, whose signal and error handling a test exercises directly."""
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(tests_dir)):
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(open(os.path.join(tests_dir, name), encoding="utf-8").read())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transformers_prune_cli."):
                assert node.module in ("transformers_prune_cli.common", "transformers_prune_cli.choices"), f"{name} imports {node.module}"


def test_help_of_every_command_loads_no_library_and_an_input_error_exits_2_with_one_line(tmp_path):
    """`--help` must answer at once: neither torch, transformers nor our library (whose import registers the model
    types) is loaded for it. One fresh process: every command's `--help`, then a failing command as its last act."""
    nowhere = str(tmp_path / "nowhere")
    code = (
        "import sys\nfrom transformers_prune_cli import COMMANDS, main\n"
        "for argv in [['--help'], *([name, '--help'] for name in COMMANDS)]:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'transformers_prune', 'matplotlib')), flush=True)\n"
        f"main(['convert', '--to', 'ltp', {nowhere!r}, {str(tmp_path / 'out')!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr[-2000:]
    assert "transformers-prune demo" in done.stdout and "--latency-rounds" in done.stdout  # every help was printed
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"transformers-prune convert: {nowhere} is not a checkpoint folder: it has no config.json"


def test_the_command_lines_copies_of_library_values_are_the_librarys():
    from transformers_prune.benchmark.data import TASKS
    from transformers_prune.benchmark.peers import PEER_CHOICES
    from transformers_prune.benchmark.runner import DTYPES
    from transformers_prune.compression import (
        AE_GROUPINGS, AE_RECIPES, DEFAULT_FISHER_FLOOR, DEFAULT_FISHER_SAMPLES, DEFAULT_HELDOUT_SAMPLES, METHODS,
        ROW_SCALES, TARGETS, FitSettings,
    )
    from transformers_prune.conversion import CONVERTIBLE_TYPES
    from transformers_prune.deploy import INT8_WEIGHTS
    from transformers_prune.deploy.checkpoint_loading import HEADS
    from transformers_prune.deploy.onnx_export import FORMATS
    from transformers_prune_cli import choices

    assert choices.MODEL_TYPES == tuple(CONVERTIBLE_TYPES)
    assert choices.TASKS == tuple(TASKS) and choices.PEERS == tuple(PEER_CHOICES) and choices.DTYPES == tuple(DTYPES)
    assert choices.EXPORT_HEADS == tuple(HEADS) and choices.INT8_WEIGHTS == tuple(INT8_WEIGHTS)
    assert choices.EXPORT_FORMATS == FORMATS
    assert (choices.COMPRESSION_METHODS, choices.COMPRESSION_TARGETS) == (METHODS, TARGETS)
    defaults = FitSettings()
    assert choices.AE_GROUPINGS == AE_GROUPINGS and choices.AE_GROUPINGS[0] == defaults.ae_grouping
    assert choices.AE_RECIPES == AE_RECIPES and choices.AE_RECIPES[0] == defaults.autoencoder.name
    assert choices.ROW_SCALES == ROW_SCALES
    assert (choices.FISHER_SAMPLES, choices.FISHER_FLOOR, choices.HELDOUT_SAMPLES) == (
        DEFAULT_FISHER_SAMPLES, DEFAULT_FISHER_FLOOR, DEFAULT_HELDOUT_SAMPLES,
    )
    assert (defaults.refine_steps, defaults.device, defaults.seed) == (0, "cpu", 0)  # compress's option defaults


@pytest.mark.slow  # a fresh interpreter
def test_python_m_runs_any_command():
    done = subprocess.run([sys.executable, "-m", "transformers_prune", "bench", "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "--overwrite" in done.stdout


# ------------------------------------------------------------------ outputs inside inputs, races, SIGTERM


def test_an_output_inside_an_input_folder_is_refused_before_anything_runs(bert, tmp_path):
    train = write_sst2_csv(tmp_path / "train.csv", rows=4)
    before = fingerprint(bert)
    with pytest.raises(SystemExit, match="lies inside the input"):
        main(["saliency", bert, "--data-file", train, "--output-file", os.path.join(bert, "model.safetensors"), "--overwrite"])
    with pytest.raises(SystemExit, match="lies inside the input"):
        main(["autobert-targets", bert, "--data-file", train, "--output-file", os.path.join(bert, "t.jsonl")])
    with pytest.raises(SystemExit, match="lies inside the input"):
        main(["convert", "--to", "ltp", bert, os.path.join(bert, "ltp")])
    assert fingerprint(bert) == before


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_an_output_written_by_someone_else_meanwhile_is_never_replaced(kind, tmp_path):
    target = tmp_path / "out"
    staged_output = staged_output_folder if kind == "folder" else staged_output_file
    with pytest.raises(FileExistsError, match="written by someone else while this command ran"):
        with staged_output(str(target)) as staged:
            if kind == "folder":
                (tmp_path / "out").mkdir()  # a second run, or a user, gets there first
                (target / "theirs.txt").write_text("keep me")
                open(os.path.join(staged, "ours.txt"), "w").close()
            else:
                target.write_text("keep me")
                staged.write("ours")
    assert (target / "theirs.txt" if kind == "folder" else target).read_text() == "keep me"
    assert leftovers(tmp_path) == []
    with staged_output(str(target), overwrite=True) as staged:  # asked for: replaced whole
        if kind == "folder":
            open(os.path.join(staged, "ours.txt"), "w").close()
        else:
            staged.write("ours")
    assert (os.listdir(target) == ["ours.txt"]) if kind == "folder" else target.read_text() == "ours"


def test_two_converts_into_one_folder_one_wins_and_the_other_says_so(bert, tmp_path):
    out = tmp_path / "ltp"
    runs = [
        subprocess.Popen([sys.executable, "-m", "transformers_prune", "convert", "--to", "ltp", bert, str(out)],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 2], [0, 0]), results  # [0, 0] only when the first finished before the second checked
    if codes == [0, 2]:
        assert any("ltp" in message and ("already exists" in message or "someone else" in message) for _, message in results)
    AutoConfig.from_pretrained(out)  # the winner's folder is whole
    assert leftovers(tmp_path) == []


@pytest.mark.slow  # a fresh interpreter
def test_sigterm_cleans_up_the_staging_as_ctrl_c_does(tmp_path):
    script = f"""
import argparse, time
from transformers_prune_cli.common import run_command
from transformers_prune.folders import staged_output_folder
def handler(args):
    with staged_output_folder({str(tmp_path / "out")!r}) as staged:
        open(staged + "/started", "w").close()
        time.sleep(60)
run_command("transformers-prune test", handler, argparse.Namespace(debug=False))
"""
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if any(".partial-" in name and os.path.exists(tmp_path / name / "started") for name in os.listdir(tmp_path)):
            break
        time.sleep(0.05)
    process.terminate()
    assert process.wait(timeout=60) == 143
    assert "terminated" in process.stderr.read()
    assert os.listdir(tmp_path) == []  # no staging left, no output


# ------------------------------------------------------------ inputs that would be silently wrong are refused


def test_a_checkpoint_without_a_tokenizer_is_refused_naming_the_folder(bert, tmp_path):
    bare = tmp_path / "bare"
    AutoModelForSequenceClassification.from_pretrained(bert).save_pretrained(bare)  # weights and config only
    train = write_sst2_csv(tmp_path / "train.csv", rows=4)
    commands = [
        ["finetune", str(bare), "--output-dir", str(tmp_path / "out"), "--train-file", train, "--validation-file", "", *FAST],
        ["saliency", str(bare), "--data-file", train, "--output-file", str(tmp_path / "s.jsonl"), "--max-length", "16"],
        ["export", str(bare), str(tmp_path / "onnx"), "--max-length", "16"],
    ]
    for command in commands:
        with pytest.raises(SystemExit, match=f"{bare} has no tokenizer"):
            main(command)
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "onnx")


def test_targets_from_a_checkpoint_without_the_trained_head_are_refused(tmp_path):
    from transformers import BertModel

    headless = save_checkpoint(BertModel(BertConfig(**TINY_CONFIG_KWARGS)), write_tokenizer(tmp_path), tmp_path / "encoder")
    train = write_sst2_csv(tmp_path / "train.csv", rows=4)
    for command in ("saliency", "autobert-targets"):
        with pytest.raises(SystemExit, match="has no trained SequenceClassification head .*fine-tuned on the task"):
            main([command, headless, "--data-file", train, "--output-file", str(tmp_path / f"{command}.jsonl"), "--max-length", "16"])


def test_max_length_beyond_the_models_positions_is_refused_by_every_command(bert, tmp_path):
    train = write_sst2_csv(tmp_path / "train.csv", rows=4)
    for command in (
        ["saliency", bert, "--data-file", train, "--output-file", str(tmp_path / "s.jsonl"), "--max-length", "65"],
        ["autobert-targets", bert, "--data-file", train, "--output-file", str(tmp_path / "t.jsonl"), "--max-length", "65"],
        ["finetune-qa", bert, "--train-file", train, "--output-dir", str(tmp_path / "qa"), "--max-length", "65",
         "--doc-stride", "16"],
    ):
        with pytest.raises(SystemExit, match="--max-length 65 exceeds .*max_position_embeddings \\(64\\)"):
            main(command)


@pytest.mark.parametrize("damage", ["empty", "truncated", "text"])
def test_damaged_weights_are_refused_in_one_line(damage, bert, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bert, broken)
    weights = broken / "model.safetensors"
    content = weights.read_bytes()
    weights.write_bytes({"empty": b"", "truncated": content[: len(content) // 2], "text": b"not weights"}[damage])
    for command in (["convert", "--to", "ltp", str(broken), str(tmp_path / "ltp")], ["export", str(broken), str(tmp_path / "onnx")]):
        with pytest.raises(SystemExit, match="model.safetensors is not a readable safetensors file"):
            main(command)


def squad_file(path, questions: list[dict], context: str = "the cat sat on the mat") -> str:
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": questions}]}]}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "answer, problem",
    [
        ({"text": "mat", "answer_start": 99}, "outside its 22-character context"),
        ({"text": "mat", "answer_start": -1}, "outside its"),
        ({"text": "mat", "answer_start": "19"}, "answer_start '19' is not an integer"),
        ({"text": "mat", "answer_start": 19.0}, "answer_start 19.0 is not an integer"),
        ({"text": "mat", "answer_start": 4}, "reads 'cat', not the answer 'mat'"),
        ({"text": "", "answer_start": 4}, "is not a non-empty string"),
    ],
)
def test_squad_answers_are_checked_question_by_question(answer, problem, tmp_path):
    from transformers_prune.benchmark.data import load_squad

    good = {"id": "a", "question": "where?", "answers": [{"text": "mat", "answer_start": 19}]}
    path = squad_file(tmp_path / "squad.json", [good, {"id": "b", "question": "what?", "answers": [answer]}])
    with pytest.raises(ValueError, match=f"squad.json: question 2 \\(id 'b'\\): .*{problem}"):
        load_squad(path, None)


def test_squad_ids_questions_and_contexts_are_checked(tmp_path):
    from transformers_prune.benchmark.data import load_squad

    answer = [{"text": "mat", "answer_start": 19}]
    cases = {
        "its id is used by an earlier question": [{"id": "a", "question": "q?", "answers": answer}] * 2,
        "its question is empty": [{"id": "a", "question": " ", "answers": answer}],
    }
    for problem, questions in cases.items():
        with pytest.raises(ValueError, match=problem):
            load_squad(squad_file(tmp_path / "s.json", questions), None)
    with pytest.raises(ValueError, match="context is empty"):
        load_squad(squad_file(tmp_path / "s.json", [{"id": "a", "question": "q?", "answers": answer}], context=""), None)


def test_a_question_too_long_for_the_windows_is_refused_not_a_panic(bert, tmp_path):
    long_question = " ".join(["cat"] * 60) + "?"
    path = squad_file(tmp_path / "squad.json", [{"id": "long", "question": long_question, "answers": [{"text": "mat", "answer_start": 19}]}])
    with pytest.raises(SystemExit, match="question 'long' has 61 tokens: at max length 64 that leaves 0 for the context"):
        main(["finetune-qa", bert, "--train-file", path, "--output-dir", str(tmp_path / "qa"), "--max-length", "64",
              "--doc-stride", "16"])
