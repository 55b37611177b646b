"""Checkpoints that work where HF users work: `convert --to` for every model type, bad conversions refused
before anything is written, and saved folders (convert, `save_pretrained`, `Trainer.save_model`) that load
with `trust_remote_code=True` in a Python where `transformers_prune` cannot be imported, with identical logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, Trainer, TrainingArguments

from transformers_prune import MODEL_TYPES
from transformers_prune_cli import main
from transformers_prune.conversion import auto_map_for

from conftest import TINY_CONFIG_KWARGS, DictDataset, make_batch, save_checkpoint, write_tokenizer
from model_testers import TESTERS

# Settings under which each type really drops tokens in a tiny random model, so loading must reproduce pruning.
PRUNING_SETTINGS = {model_type: tester.fresh_model_drops for model_type, tester in TESTERS.items()}
AUTO_CLASS_NAMES = ("AutoConfig", "AutoModel", "AutoModelForSequenceClassification", "AutoModelForQuestionAnswering")


@pytest.fixture(scope="module")
def bert_folders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    tokenizer = write_tokenizer(folder)
    torch.manual_seed(0)
    return {
        "classifier": save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / "cls"),
        "qa": save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / "qa"),
    }


def convert(source, model_type, output_dir, **settings):
    sets = [item for key, value in settings.items() for item in ("--set", f"{key}={json.dumps(value)}")]
    main(["convert", "--to", model_type, str(source), str(output_dir), *sets])
    return str(output_dir)


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_convert_writes_a_complete_checkpoint(model_type, bert_folders, tmp_path):
    out = convert(bert_folders["qa"], model_type, tmp_path / "out", **PRUNING_SETTINGS[model_type])
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= files
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == model_type
    assert config["auto_map"] == auto_map_for(model_type) and set(AUTO_CLASS_NAMES) <= set(config["auto_map"])
    for reference in config["auto_map"].values():
        assert f"{reference.split('.')[0]}.py" in files  # every referenced module is in the folder
    head_class = MODEL_TYPES[model_type][1]
    assert config["architectures"] == [next(c.__name__ for c in head_class.values() if c.__name__.endswith("ForQuestionAnswering"))]
    for key, value in PRUNING_SETTINGS[model_type].items():
        assert config[key] == value
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"# `{model_type}`: " in card and "trust_remote_code=True" in card and "AutoModelForQuestionAnswering" in card
    import transformers

    _, loading = transformers.AutoModelForQuestionAnswering.from_pretrained(out, output_loading_info=True)
    assert not loading["missing_keys"]  # the method's new parameters were saved by convert


@pytest.mark.parametrize(
    "model_type, settings, message",
    [
        ("skimmer", {}, "unknown model_type 'skimmer'"),
        ("ltp", {"final_token_treshold": 0.1}, r"ltp has no config key\(s\) \['final_token_treshold'\]"),
        ("ltp", {"masking_mode": "mixed"}, "masking_mode='mixed' is invalid"),
        ("transkimmer-bert", {"skim_coefficient": -1}, "skim_coefficient=-1 is invalid"),
    ],
)
def test_bad_conversions_are_refused_before_anything_is_written(model_type, settings, message, bert_folders, tmp_path):
    with pytest.raises(SystemExit, match=message):
        convert(bert_folders["classifier"], model_type, tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()


def test_convert_refuses_a_missing_source(tmp_path):
    with pytest.raises(SystemExit, match="is not a checkpoint folder"):
        convert(tmp_path / "nowhere", "ltp", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- loading without the package

LOADER = textwrap.dedent(
    """
    import json, sys
    sys.modules["transformers_prune"] = None  # any import of the package now fails
    import torch
    import transformers

    jobs, input_ids, attention_mask = json.loads(sys.stdin.read())
    results = []
    for folder, auto_class in jobs:
        model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        with torch.no_grad():
            out = model(torch.tensor(input_ids), attention_mask=torch.tensor(attention_mask))
        results.append([out[key].tolist() for key in ("logits", "start_logits", "last_hidden_state") if key in out])
    print(json.dumps(results))
    """
)


def outputs_in_package(folder, auto_class, input_ids, attention_mask):
    import transformers

    model = getattr(transformers, auto_class).from_pretrained(folder).eval()
    assert type(model).__module__.startswith("transformers_prune."), type(model).__module__
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask)
    return [out[key] for key in ("logits", "start_logits", "last_hidden_state") if key in out]


def load_without_package(jobs, input_ids, attention_mask, modules_cache):
    env = {**os.environ, "HF_MODULES_CACHE": str(modules_cache), "HF_HUB_OFFLINE": "1"}
    payload = json.dumps([jobs, input_ids.tolist(), attention_mask.tolist()])
    done = subprocess.run([sys.executable, "-c", LOADER], input=payload, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def trained_with_trainer(folder, output_dir):
    """`Trainer.save_model` after two steps: the folder a user would push to the Hub."""
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    input_ids, attention_mask = make_batch((1, 12, 5, 9), seq_len=12, vocab_size=26)
    args = TrainingArguments(
        output_dir=str(output_dir), use_cpu=True, report_to="none", max_steps=2, per_device_train_batch_size=2,
        save_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=DictDataset(input_ids, attention_mask, torch.tensor([0, 1, 0, 1])))
    trainer.train()
    trainer.save_model(str(output_dir))
    return str(output_dir)


def saved_question_answering_model(folder, output_dir):
    """`save_pretrained` of a QA model loaded from a converted BERT QA checkpoint (fresh method weights saved)."""
    import transformers

    transformers.AutoModelForQuestionAnswering.from_pretrained(folder).save_pretrained(output_dir)
    return str(output_dir)


@pytest.mark.slow  # a fresh interpreter, and 12 folders built by convert, Trainer and save_pretrained
def test_saved_checkpoints_load_without_the_package_with_identical_outputs(bert_folders, tmp_path):
    # Every folder holds all its weights (nothing left to random init), so outputs must match exactly.
    jobs = []
    for model_type, settings in PRUNING_SETTINGS.items():
        classifier = convert(bert_folders["classifier"], model_type, tmp_path / f"{model_type}-cls", **settings)
        trained = trained_with_trainer(classifier, tmp_path / f"{model_type}-trainer")
        qa = convert(bert_folders["qa"], model_type, tmp_path / f"{model_type}-qa-converted", **settings)
        saved_qa = saved_question_answering_model(qa, tmp_path / f"{model_type}-qa")
        for folder in (trained, saved_qa):
            files = set(os.listdir(folder))
            assert "README.md" in files and any(name.startswith("modeling_") for name in files)
            assert set(AUTO_CLASS_NAMES) <= set(json.loads(open(os.path.join(folder, "config.json")).read())["auto_map"])
        jobs += [[trained, "AutoModel"], [trained, "AutoModelForSequenceClassification"], [saved_qa, "AutoModelForQuestionAnswering"]]
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3), seq_len=12, vocab_size=26)

    expected = [outputs_in_package(folder, auto_class, input_ids, attention_mask) for folder, auto_class in jobs]
    # The pruning settings do drop tokens, so identical outputs mean the remote code prunes identically.
    import transformers

    for folder, _ in jobs:
        model = transformers.AutoModel.from_pretrained(folder).eval()
        with torch.no_grad():
            tokens = model(input_ids, attention_mask=attention_mask).tokens_per_layer
        assert (tokens[:, -1] < attention_mask.sum(1)).any(), folder

    remote = load_without_package(jobs, input_ids, attention_mask, tmp_path / "modules")
    real = attention_mask.bool()
    for (folder, auto_class), ours, theirs in zip(jobs, expected, remote):
        for a, b in zip(ours, theirs):
            b = torch.tensor(b)
            if a.dim() >= 2 and a.shape[:2] == real.shape:
                a, b = a[real], b[real]
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"{folder} {auto_class}")
