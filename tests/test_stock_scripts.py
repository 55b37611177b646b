"""The contract HF's `run_glue.py` and `run_qa.py` (transformers 5.x, examples/pytorch) rely on, for every model
type plus plain BERT as a control.

The scripts themselves cannot ship here, so each test drives a small copy of their calls, in their order, on
real GLUE / SQuAD rows from the shared offline data: `HfArgumentParser` over the CLI, local files through
`load_dataset`, Auto classes with `trust_remote_code=True`, run_glue's padded tokenization or run_qa's
overflowing features, the stock `Trainer` with `processing_class=` and `default_data_collator`, then train,
evaluate, predict. What they need from our models: predictions shaped exactly like BERT's (our extra outputs
dropped through `config.keys_to_ignore_at_inference`), checkpoints that reload, and the kept-token callback in
`log_history`. Also the `transformers-prune run SCRIPT ARGS` launcher that runs such scripts unchanged.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from datasets import load_dataset
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
    EvalPrediction,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

from transformers_prune import MODEL_TYPES
from transformers_prune.benchmark.latency import torch_threads
from transformers_prune.benchmark.squad import f1_score, normalize_answer
from transformers_prune.conversion import convert_bert_checkpoint

from conftest import TINY_CONFIG_KWARGS
from model_testers import TESTERS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
needs_data = pytest.mark.skipif(
    not os.path.isdir(DATA_DIR), reason=f"the offline GLUE/SQuAD data is not at {DATA_DIR} (shared/data beside the repo)"
)

# Settings under which each type really drops tokens in a tiny random model on real text, so evaluation and
# prediction run the pruning (packed) path whose extra outputs must not leak into the predictions. A tiny random
# model attends almost uniformly (score ~ 1/length), and with 3 layers only layer 1's threshold,
# final_token_threshold / 3, shows in `tokens_per_layer`: LTP's 0.3 prunes SST-2's short sentences too.
PRUNING_SETTINGS = {model_type: tester.fresh_model_drops for model_type, tester in TESTERS.items()}
MODEL_TYPE_CASES = [*sorted(MODEL_TYPES), "bert"]  # plain BERT is the control: what the scripts were written for


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine waking them made each op ~50x
    slower (this file: 80 s with 2 threads, 16 s with 1)."""
    with torch_threads(1):
        yield


# ------------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def _checkpoint_cache(tmp_path_factory):
    return {"root": tmp_path_factory.mktemp("stock_scripts_checkpoints")}


# The types that refuse to train from a newly initialised head (docs/stock_scripts.md) start from a tiny BERT saved
# with the head the script trains, as from a fine-tuned checkpoint; the others from a headless one.
FINE_TUNED_START_TYPES = {"ltp", "autobert"}
SOURCE_HEADS = {
    "headless": lambda settings: BertModel(BertConfig(**settings)),
    "sst2": lambda settings: BertForSequenceClassification(BertConfig(**settings, num_labels=2)),
    "stsb": lambda settings: BertForSequenceClassification(BertConfig(**settings, num_labels=1)),
    "qa": lambda settings: BertForQuestionAnswering(BertConfig(**settings)),
}


@pytest.fixture
def checkpoint(_checkpoint_cache, minilm_path):
    """`checkpoint(model_type, task)`: a folder as the scripts' `--model_name_or_path` gets it, built once per module.

    A tiny random BERT with BERT's full vocabulary and positions, saved with the real MiniLM tokenizer so real
    sentences tokenize properly; headless (as bert-base-uncased is) or, for the types that need a fine-tuned start,
    with `task`'s head ("sst2", "stsb", "qa"); converted for our types.
    """
    cache, root = _checkpoint_cache, _checkpoint_cache["root"]

    def source(head: str) -> str:
        if head not in cache:
            torch.manual_seed(0)
            settings = {**TINY_CONFIG_KWARGS, "vocab_size": 30522, "max_position_embeddings": 512}
            SOURCE_HEADS[head](settings).save_pretrained(root / f"bert-{head}")
            AutoTokenizer.from_pretrained(minilm_path).save_pretrained(root / f"bert-{head}")
            cache[head] = str(root / f"bert-{head}")
        return cache[head]

    def get(model_type: str, task: str = "sst2") -> str:
        head = task if model_type in FINE_TUNED_START_TYPES else "headless"
        if model_type == "bert":
            return source("headless")
        if (model_type, head) not in cache:
            cache[model_type, head] = convert_bert_checkpoint(
                source(head), model_type, str(root / f"{model_type}-{head}"), **PRUNING_SETTINGS[model_type]
            )
        return cache[model_type, head]

    return get


def head_of_csv(source: str, destination, rows: int, skip: int = 0) -> str:
    """The header plus `rows` data rows (after skipping `skip`) of a real CSV: real text, fast to load."""
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        body = [row for _, row in zip(range(skip + rows), reader)][skip:]
    with open(destination, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *body])
    return str(destination)


def assert_prunes_on(model, features: dict) -> None:
    """The eval-mode model drops real tokens on these inputs, so the pruning path is what the Trainer ran."""
    model.eval()
    inputs = {key: torch.tensor(features[key]) for key in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        tokens = model(**inputs).tokens_per_layer
    assert (tokens[:, -1] < inputs["attention_mask"].sum(1)).any(), tokens


def kept_fraction_logs(trainer) -> list[float]:
    return [row["kept_fraction"] for row in trainer.state.log_history if "kept_fraction" in row]


# ---------------------------------------------------------------------------------------------- run_glue calls


@dataclass
class GlueModelArguments:
    """The run_glue ModelArguments these tests use (same names, same defaults)."""

    model_name_or_path: str
    cache_dir: str | None = None
    trust_remote_code: bool = False
    ignore_mismatched_sizes: bool = False


@dataclass
class GlueDataTrainingArguments:
    """The run_glue DataTrainingArguments these tests use (same names, same defaults)."""

    task_name: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    max_seq_length: int = 128
    pad_to_max_length: bool = True
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


@dataclass
class GlueRun:
    trainer: Trainer
    eval_metrics: dict
    predictions: object  # what `trainer.predict` returned, before run_glue's argmax/squeeze
    predictions_seen_by_compute_metrics: list
    eval_dataset: object


def run_glue_like(argv: list[str], finetuning_task: str, text_columns: tuple[str, ...] | None = None) -> GlueRun:
    """run_glue.py's `main()` for local CSV or JSON files, call for call; `finetuning_task` stands in for
    `--task_name`, which would make run_glue download GLUE from the Hub. `text_columns` replaces run_glue's rule for
    choosing them: the one-line edit its comments invite, which a file with AdapLeR's `saliency` column needs."""
    parser = HfArgumentParser((GlueModelArguments, GlueDataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)

    data_files = {"train": data_args.train_file, "validation": data_args.validation_file}
    loader = "csv" if data_args.train_file.endswith(".csv") else "json"
    raw_datasets = load_dataset(loader, data_files=data_files, cache_dir=model_args.cache_dir)

    is_regression = raw_datasets["train"].features["label"].dtype in ["float32", "float64"]
    if is_regression:
        num_labels, label_list = 1, None
    else:
        label_list = sorted(raw_datasets["train"].unique("label"))
        num_labels = len(label_list)

    config = AutoConfig.from_pretrained(
        model_args.model_name_or_path, num_labels=num_labels, finetuning_task=finetuning_task,
        cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code,
    )
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )

    # run_glue's column rule: sentence1+sentence2 if present, else the first two non-label columns, else one.
    non_label_columns = [name for name in raw_datasets["train"].column_names if name != "label"]
    if "sentence1" in non_label_columns and "sentence2" in non_label_columns:
        sentence1_key, sentence2_key = "sentence1", "sentence2"
    elif len(non_label_columns) >= 2:
        sentence1_key, sentence2_key = non_label_columns[:2]
    else:
        sentence1_key, sentence2_key = non_label_columns[0], None
    if text_columns is not None:
        sentence1_key, sentence2_key = (*text_columns, None)[:2]

    label_to_id = None
    if not is_regression:
        label_to_id = {label: i for i, label in enumerate(label_list)}
        model.config.label2id = label_to_id
        model.config.id2label = {i: label for label, i in label_to_id.items()}

    padding = "max_length" if data_args.pad_to_max_length else False
    max_seq_length = min(data_args.max_seq_length, tokenizer.model_max_length)

    def preprocess_function(examples):
        texts = (examples[sentence1_key],) if sentence2_key is None else (examples[sentence1_key], examples[sentence2_key])
        result = tokenizer(*texts, padding=padding, max_length=max_seq_length, truncation=True)
        if label_to_id is not None and "label" in examples:
            result["label"] = [label_to_id[label] if label != -1 else -1 for label in examples["label"]]
        return result

    with training_args.main_process_first(desc="dataset map pre-processing"):
        raw_datasets = raw_datasets.map(preprocess_function, batched=True, desc="Running tokenizer on dataset")
    train_dataset = raw_datasets["train"].select(range(min(len(raw_datasets["train"]), data_args.max_train_samples)))
    eval_dataset = raw_datasets["validation"].select(range(min(len(raw_datasets["validation"]), data_args.max_eval_samples)))

    seen = []

    def compute_metrics(p: EvalPrediction):
        seen.append(p.predictions)
        preds = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        preds = np.squeeze(preds) if is_regression else np.argmax(preds, axis=1)
        # evaluate.load("glue", ...) needs the Hub; these are its accuracy and mse, in numpy.
        if is_regression:
            return {"mse": ((preds - p.label_ids) ** 2).mean().item()}
        return {"accuracy": (preds == p.label_ids).astype(np.float32).mean().item()}

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        compute_metrics=compute_metrics,
        processing_class=tokenizer,
        data_collator=default_data_collator,  # run_glue's choice with pad_to_max_length (its default)
    )
    train_result = trainer.train()
    trainer.save_model()
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    eval_metrics = trainer.evaluate(eval_dataset=eval_dataset)
    # run_glue predicts on the test split with its labels removed; the validation rows stand in for it here.
    predict_dataset = eval_dataset.remove_columns("label")
    predictions = trainer.predict(predict_dataset, metric_key_prefix="predict").predictions
    return GlueRun(trainer, eval_metrics, predictions, seen, eval_dataset)


GLUE_TASKS = {
    # task: (train CSV and rows to skip, validation CSV and rows to skip, expected num_labels, eval metric)
    "sst2": (("sst2/train.csv", 0), ("sst2/dev.csv", 0), 2, "eval_accuracy"),
    "stsb": (("stsb/dev.csv", 0), ("stsb/dev.csv", 64), 1, "eval_mse"),  # STS-B: disjoint slices of dev
}


@pytest.mark.slow  # 10 short Trainer runs on real GLUE rows
@needs_data
@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
@pytest.mark.parametrize("model_type", MODEL_TYPE_CASES)
def test_run_glue_calls_train_evaluate_predict(model_type, task, checkpoint, tmp_path):
    (train_csv, train_skip), (dev_csv, dev_skip), num_labels, metric = GLUE_TASKS[task]
    train_file = head_of_csv(os.path.join(DATA_DIR, "glue", train_csv), tmp_path / "train.csv", 64, train_skip)
    validation_file = head_of_csv(os.path.join(DATA_DIR, "glue", dev_csv), tmp_path / "dev.csv", 64, dev_skip)
    model_dir = checkpoint(model_type, task)
    output_dir = tmp_path / "out"
    argv = [
        "--model_name_or_path", model_dir, "--train_file", train_file, "--validation_file", validation_file,
        "--do_train", "--do_eval", "--output_dir", str(output_dir), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--trust_remote_code",
        "--max_train_samples", "16", "--max_eval_samples", "16", "--use_cpu", "--report_to", "none",
        "--logging_steps", "1", "--cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true",
    ]
    run = run_glue_like(argv, finetuning_task=task)
    model = run.trainer.model

    assert model.config.model_type == model_type and model.config.num_labels == num_labels
    if model_type != "bert":
        # The package is imported, so its registered classes win over the folder's code copy.
        assert type(model).__module__.startswith("transformers_prune."), type(model).__module__

    assert run.trainer.state.global_step == 2
    assert math.isfinite(run.eval_metrics["eval_loss"])
    assert math.isfinite(run.eval_metrics[metric])
    if metric == "eval_accuracy":
        assert 0.0 <= run.eval_metrics[metric] <= 1.0

    # Plain arrays, as from BERT: tokens_per_layer / pruning_loss must not ride along as extra outputs.
    for predictions in (run.predictions, *run.predictions_seen_by_compute_metrics):
        assert isinstance(predictions, np.ndarray), type(predictions)
        assert predictions.shape == (16, num_labels) and np.isfinite(predictions).all()

    # `trainer.save_model()` wrote a folder that reloads (with its labels) and computes the same function.
    reloaded = AutoModelForSequenceClassification.from_pretrained(str(output_dir), trust_remote_code=True).eval()
    assert type(reloaded) is type(model) and reloaded.config.num_labels == num_labels
    if num_labels > 1:
        assert {int(i): int(label) for i, label in reloaded.config.id2label.items()} == {0: 0, 1: 1}
    batch = {key: torch.tensor(run.eval_dataset[:8][key]) for key in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model.eval()(**batch).logits)

    if model_type == "bert":
        assert kept_fraction_logs(run.trainer) == []  # the callback leaves models without statistics alone
    else:
        kept = kept_fraction_logs(run.trainer)
        assert len(kept) == 2 and all(0.0 < value <= 1.0 for value in kept), run.trainer.state.log_history
        assert_prunes_on(model, run.eval_dataset[:16])


# ------------------------------------------------------------------------------------------------ run_qa calls

QA_MAX_SEQ_LENGTH, QA_DOC_STRIDE = 128, 32  # smaller than run_qa's 384/128 so real contexts overflow
QA_EXAMPLES = 16


def squad_json(path) -> str:
    """The first SQuAD dev records wrapped as `{"data": [...]}`, the layout run_qa's `field="data"` reads."""
    with open(os.path.join(DATA_DIR, "squad", "v1.1", "dev.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(QA_EXAMPLES), f)]
    path.write_text(json.dumps({"data": records}), encoding="utf-8")
    return str(path)


def qa_feature_makers(tokenizer, max_seq_length: int, doc_stride: int):
    """run_qa's `prepare_train_features` and `prepare_validation_features` (context on the right)."""
    assert tokenizer.padding_side == "right"

    def tokenize(examples):
        questions = [question.lstrip() for question in examples["question"]]  # long leading blanks eat the window
        return tokenizer(
            questions, examples["context"], truncation="only_second", max_length=max_seq_length, stride=doc_stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length",
        )

    def prepare_train_features(examples):
        tokenized = tokenize(examples)
        sample_mapping = tokenized.pop("overflow_to_sample_mapping")
        offset_mapping = tokenized.pop("offset_mapping")
        tokenized["start_positions"], tokenized["end_positions"] = [], []
        for i, offsets in enumerate(offset_mapping):
            cls_index = tokenized["input_ids"][i].index(tokenizer.cls_token_id)
            sequence_ids = tokenized.sequence_ids(i)
            answers = examples["answers"][sample_mapping[i]]
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            context_tokens = [k for k, sequence_id in enumerate(sequence_ids) if sequence_id == 1]
            first, last = context_tokens[0], context_tokens[-1]
            if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
                start, end = cls_index, cls_index  # the answer is not inside this window
            else:
                start = max(k for k in context_tokens if offsets[k][0] <= start_char)
                end = min(k for k in context_tokens if offsets[k][1] >= end_char)
            tokenized["start_positions"].append(start)
            tokenized["end_positions"].append(end)
        return tokenized

    def prepare_validation_features(examples):
        tokenized = tokenize(examples)
        sample_mapping = tokenized.pop("overflow_to_sample_mapping")
        tokenized["example_id"] = []
        for i in range(len(tokenized["input_ids"])):
            sequence_ids = tokenized.sequence_ids(i)
            tokenized["example_id"].append(examples["id"][sample_mapping[i]])
            # Offsets outside the context become None, so post-processing can tell context tokens apart.
            tokenized["offset_mapping"][i] = [
                offset if sequence_ids[k] == 1 else None for k, offset in enumerate(tokenized["offset_mapping"][i])
            ]
        return tokenized

    return prepare_train_features, prepare_validation_features


def best_answers(examples, features, predictions, n_best_size: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """utils_qa's `postprocess_qa_predictions` for SQuAD v1, reduced: the best-scoring valid span per example."""
    if len(predictions) != 2:  # utils_qa's own check
        raise ValueError("`predictions` should be a tuple with two elements (start_logits, end_logits).")
    all_start_logits, all_end_logits = predictions
    features_per_example = collections.defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        features_per_example[example_id].append(index)
    offsets_of = features["offset_mapping"]

    answers = {}
    for example in examples:
        best_score, best_text = -math.inf, ""
        for index in features_per_example[example["id"]]:
            start_logits, end_logits, offsets = all_start_logits[index], all_end_logits[index], offsets_of[index]
            for start in np.argsort(start_logits)[::-1][:n_best_size]:
                for end in np.argsort(end_logits)[::-1][:n_best_size]:
                    if offsets[start] is None or offsets[end] is None:
                        continue  # a question, special or padding token
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    score = start_logits[start] + end_logits[end]
                    if score > best_score:
                        best_score, best_text = score, example["context"][offsets[start][0] : offsets[end][1]]
        answers[example["id"]] = best_text
    return answers


def squad_scores(answers: dict[str, str], examples) -> dict[str, float]:
    """SQuAD v1 exact match and F1 (best over the gold answers), in percent, on run_qa's record layout."""
    exact, f1 = [], []
    for example in examples:
        golds, predicted = example["answers"]["text"], answers[example["id"]]
        exact.append(max(float(normalize_answer(predicted) == normalize_answer(gold)) for gold in golds))
        f1.append(max(f1_score(predicted, gold) for gold in golds))
    return {"exact_match": 100 * sum(exact) / len(exact), "f1": 100 * sum(f1) / len(f1)}


def test_squad_scores_of_the_gold_answers_are_perfect():
    # The local metric is what the QA test relies on; "The Denver Broncos." normalises to the gold text.
    examples = [{"id": "a", "answers": {"text": ["Denver Broncos", "Broncos"]}}, {"id": "b", "answers": {"text": ["1990"]}}]
    assert squad_scores({"a": "The Denver Broncos.", "b": "1990"}, examples) == {"exact_match": 100.0, "f1": 100.0}
    assert squad_scores({"a": "Denver", "b": "nope"}, examples) == {"exact_match": 0.0, "f1": pytest.approx(100 / 3)}


@pytest.mark.slow  # 5 short Trainer runs on real SQuAD rows
@needs_data
@pytest.mark.parametrize("model_type", MODEL_TYPE_CASES)
def test_run_qa_calls_train_predict_and_postprocess(model_type, checkpoint, tmp_path):
    data_file = squad_json(tmp_path / "squad.json")
    raw_datasets = load_dataset(
        "json", data_files={"train": data_file, "validation": data_file}, field="data", cache_dir=str(tmp_path / "cache")
    )
    column_names = raw_datasets["train"].column_names
    model_dir = checkpoint(model_type, "qa")
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True, trust_remote_code=True)
    assert tokenizer.is_fast  # run_qa refuses slow tokenizers: it needs offsets and overflow mapping
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, config=config, trust_remote_code=True)
    assert "QuestionAnswering" in type(model).__name__  # how Trainer finds start/end_positions as labels

    prepare_train_features, prepare_validation_features = qa_feature_makers(tokenizer, QA_MAX_SEQ_LENGTH, QA_DOC_STRIDE)
    train_dataset = raw_datasets["train"].map(prepare_train_features, batched=True, remove_columns=column_names)
    eval_examples = raw_datasets["validation"]
    eval_dataset = eval_examples.map(prepare_validation_features, batched=True, remove_columns=column_names)
    assert len(eval_dataset) > QA_EXAMPLES  # some contexts overflow into several windows
    assert any(start > 0 for start in train_dataset["start_positions"])  # answers located inside windows

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=16,
        use_cpu=True, report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer, data_collator=default_data_collator
    )
    trainer.train()
    assert trainer.state.global_step == 2

    # run_qa hands Trainer the features with example_id/offset_mapping still in; Trainer drops every column
    # that is not a named `forward` parameter before collating (offset_mapping holds Nones the collator refuses).
    predictions = trainer.predict(eval_dataset).predictions
    assert isinstance(predictions, tuple) and len(predictions) == 2, [getattr(p, "shape", p) for p in predictions]
    for logits in predictions:
        assert logits.shape == (len(eval_dataset), QA_MAX_SEQ_LENGTH) and np.isfinite(logits).all()

    answers = best_answers(eval_examples, eval_dataset, predictions)
    assert set(answers) == set(eval_examples["id"])
    for example in eval_examples:
        assert answers[example["id"]] in example["context"]  # spans read through the features' offsets
    # An example gets "" only when none of its top spans lies in the context; random logits rarely do that.
    assert sum(bool(answer) for answer in answers.values()) >= QA_EXAMPLES // 2, answers
    scores = squad_scores(answers, eval_examples)
    assert 0.0 <= scores["exact_match"] <= scores["f1"] <= 100.0

    if model_type == "bert":
        assert kept_fraction_logs(trainer) == []
    else:
        kept = kept_fraction_logs(trainer)
        assert len(kept) == 2 and all(0.0 < value <= 1.0 for value in kept), trainer.state.log_history
        assert_prunes_on(trainer.model, eval_dataset[:16])


# ---------------------------------------------------------------------------------- transformers-prune run SCRIPT

# A stand-in for run_glue.py: knows nothing of transformers_prune, loads a converted checkpoint without
# trust_remote_code, and reports what it saw. It runs as __main__, like `python script.py`.
STOCK_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import transformers
    from transformers import AutoModelForSequenceClassification

    if __name__ == "__main__":
        args = sys.argv[1:]
        model_dir, report = args[args.index("--model_name_or_path") + 1], args[args.index("--report_file") + 1]
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        facts = {
            "argv": sys.argv,
            "default_callbacks": [cls.__name__ for cls in transformers.trainer.DEFAULT_CALLBACKS],
            "model_module": type(model).__module__,
            "model_type": model.config.model_type,
        }
        with open(report, "w") as f:
            json.dump(facts, f)
    """
)


@pytest.mark.slow  # a fresh interpreter
def test_run_launcher_registers_everything_and_passes_argv_intact(checkpoint, tmp_path):
    model_dir = checkpoint("ltp")
    script = tmp_path / "run_stock.py"
    script.write_text(STOCK_SCRIPT, encoding="utf-8")
    report = tmp_path / "facts.json"
    script_args = [
        "--model_name_or_path", model_dir, "--report_file", str(report), "--flag", "x",
        "--do_train", "--learning_rate=1e-3", "-v", "--", "positional with spaces",
    ]
    # A fresh interpreter, as from the console script: the registration must come from the launcher's import,
    # not from this test process having imported the package already.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    launcher = "import sys; from transformers_prune_cli import main; main(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", launcher, "run", str(script), *script_args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    facts = json.loads(report.read_text())
    assert facts["argv"] == [str(script), *script_args]
    assert "KeepRatioCallback" in facts["default_callbacks"]
    assert facts["model_type"] == "ltp" and facts["model_module"].startswith("transformers_prune"), facts
