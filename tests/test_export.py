"""`transformers-prune export` and the torch-free runner: round trips for every model type and head (logits and
kept tokens per layer equal to the torch model's), the runner without torch, its input checks, the command's
bad input, the int8 options (ONNX Runtime and torch), and once on the real MiniLM with real SST-2 / IMDB text.

Tiny random checkpoints use the 27-token vocabulary of conftest; each token-pruning model is set up so that it
really drops tokens on the test inputs (asserted), so the exported graph's data-dependent selection is exercised.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertForSequenceClassification

import transformers_prune  # noqa: F401
from transformers_prune import (
    CompressedBertForQuestionAnswering,
    CompressedBertForSequenceClassification,
    LTPRobertaConfig,
    LTPRobertaForSequenceClassification,
    TranskimmerForSequenceClassification,
)
from transformers_prune_cli import main as cli_main
from transformers_prune.deploy import runner as export_runner
from transformers_prune.deploy.onnx_export import export_folder
from transformers_prune.deploy.torch_int8 import encoder_linear_names, quantize_encoder_int8

from conftest import TINY_CONFIG_KWARGS, WORDS, save_checkpoint, write_tokenizer
from model_testers import TESTERS, sharpen_attention

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
MAX_LENGTH = 40  # below the tiny configs' 64 positions, above every test text


HEADS = {"cls": "sequence_classification", "qa": "question_answering"}


def tiny_model(model_type: str, head: str, batch: dict[str, np.ndarray] | None = None):
    """A tiny random model of `model_type` with `head` ("cls" or "qa"); a token-pruning one drops some but not all
    real tokens of `batch` (the shared tester's "some_dropped" recipe, decisions away from the boundary)."""
    if model_type == "bert":
        return (BertForQuestionAnswering if head == "qa" else BertForSequenceClassification)(BertConfig(**TINY_CONFIG_KWARGS)).eval()
    if model_type == "ltp-roberta":  # LTP's tester recipe on RoBERTa (ids from a BERT vocabulary: consistent on both sides)
        config = LTPRobertaConfig(**TINY_CONFIG_KWARGS, type_vocab_size=1, final_token_threshold=0.4, scoring_mode="mean_norm")
        model = LTPRobertaForSequenceClassification(config).eval()
        sharpen_attention(model)
        return model
    input_ids, attention_mask = (torch.from_numpy(batch[name]) for name in ("input_ids", "attention_mask"))
    return TESTERS[model_type].make_model(HEADS[head], input_ids, attention_mask)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def tokenizer(folder):
    return write_tokenizer(folder)


def texts(count: int = 6, seed: int = 0) -> list[str]:
    generator = random.Random(seed)
    return [" ".join(generator.choices(WORDS, k=generator.randint(1, 30))) for _ in range(count)]


def tokenized_texts(tokenizer) -> dict[str, np.ndarray]:
    """`texts()` tokenized as the runner does: right-padded int64 arrays, lengths 3 to 32."""
    return {name: tensor.numpy() for name, tensor in tokenizer(texts(), padding=True, return_tensors="pt").items()}


def torch_outputs(model, batch: dict) -> dict:
    with torch.no_grad():
        return model(**{name: torch.from_numpy(array) for name, array in batch.items()}, return_dict=True)


TOKEN_TYPES = ("transkimmer-bert", "ltp", "adapler-bert", "autobert", "ltp-roberta")


# Every type with a classifier; QA heads (full-length logits) for the padded graph and for both kinds of decision
# (before a layer: Transkimmer; after attention: LTP), whose dropped tokens come back from the restore buffer.
ROUND_TRIPS = [
    *((model_type, "cls") for model_type in ("bert", "compressed-bert", *TESTERS)),
    ("bert", "qa"),
    ("transkimmer-bert", "qa"),
    pytest.param("ltp", "qa", marks=pytest.mark.slow),  # one ONNX export each; the fast set keeps one QA per graph kind
    pytest.param("autobert", "qa", marks=pytest.mark.slow),  # the SQuAD frontier exports it
    pytest.param("ltp-roberta", "cls", marks=pytest.mark.slow),  # the backbone seam: RoBERTa embeddings and head
]


@pytest.mark.parametrize("model_type, head", ROUND_TRIPS)
def test_export_round_trip_equals_the_torch_model(model_type, head, folder, tokenizer):
    batch = tokenized_texts(tokenizer)
    if model_type == "compressed-bert":
        source = save_checkpoint(tiny_model("bert", head), tokenizer, folder / f"bert-{head}")
        checkpoint = str(folder / f"svd-{head}")
        cli_main(["compress", source, checkpoint, "--method", "svd", "--targets", "intermediate", "output", "--rank", "4"])
        model_class = CompressedBertForQuestionAnswering if head == "qa" else CompressedBertForSequenceClassification
        model = model_class.from_pretrained(checkpoint).eval()
    else:
        model = tiny_model(model_type, head, batch)
    output_dir = folder / f"{model_type}-{head}-onnx"
    config = export_folder(model, tokenizer, str(output_dir), max_length=MAX_LENGTH)
    assert config["graph"] == ("single_example" if model_type in TOKEN_TYPES else "padded")
    assert config["check"]["max_abs_difference_fp32"] <= 1e-4

    runner = export_runner.ExportedModel(str(output_dir), threads=1)
    for name, array in runner.tokenize(texts()).items():  # the runner tokenizes as the torch side did
        np.testing.assert_array_equal(array, batch[name])
    ours, reference = runner(**batch), torch_outputs(model, batch)
    real = batch["attention_mask"].astype(bool)
    names = ("start_logits", "end_logits") if head == "qa" else ("logits",)
    for name in names:
        assert ours[name].shape == tuple(reference[name].shape)  # QA: full length, [batch, seq_len]
        got, expected = (ours[name][real], reference[name].numpy()[real]) if head == "qa" else (ours[name], reference[name].numpy())
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    if model_type in TOKEN_TYPES:
        tokens = reference.tokens_per_layer.numpy()
        np.testing.assert_array_equal(ours["tokens_per_layer"], tokens)
        # The graph really dropped tokens, and not only down to [CLS]: some layer ran a part of an example.
        assert ((tokens > 1) & (tokens < real.sum(axis=1, keepdims=True))).any()


@pytest.fixture(scope="module")
def exported_without_pruning(folder, tokenizer):
    """A Transkimmer classifier with prune_at_inference=False, exported without --int8."""
    model = tiny_model("transkimmer-bert", "cls", tokenized_texts(tokenizer))
    model.config.prune_at_inference = False
    export_folder(model, tokenizer, str(folder / "off-onnx"), max_length=MAX_LENGTH)
    return str(folder / "off-onnx")


def test_export_of_a_pruning_model_with_pruning_off_runs_every_token(exported_without_pruning):
    runner = export_runner.ExportedModel(exported_without_pruning)
    batch = runner.tokenize(texts())
    lengths = batch["attention_mask"].sum(axis=1)
    np.testing.assert_array_equal(runner(**batch)["tokens_per_layer"], np.repeat(lengths[:, None], 3, axis=1))


# ----------------------------------------------------------------------------------------------------- the runner


@pytest.fixture(scope="module")
def exported(folder, tokenizer):
    """A Transkimmer classifier exported with --int8 by the command."""
    checkpoint = save_checkpoint(tiny_model("transkimmer-bert", "cls", tokenized_texts(tokenizer)), tokenizer, folder / "skimmer")
    output_dir = folder / "skimmer-onnx"
    cli_main(["export", checkpoint, str(output_dir), "--format", "onnx", "--int8", "--max-length", str(MAX_LENGTH)])
    return str(output_dir)


def test_export_folder_holds_everything_the_runner_needs(exported):
    assert sorted(os.listdir(exported)) == ["export_config.json", "model.onnx", "model_int8.onnx", "runner.py", "tokenizer.json"]
    config = json.loads(open(os.path.join(exported, "export_config.json"), encoding="utf-8").read())
    assert config["model_type"] == "transkimmer-bert" and config["head"] == "sequence-classification"
    assert config["outputs"] == ["logits", "tokens_per_layer"] and config["max_length"] == MAX_LENGTH
    assert config["int8_weights"] == "per-channel"


def encoder_weight_scale_sizes(path: str) -> set[int]:
    """The sizes of the int8 graph's weight scales of the encoder layers' matrices (1: one scale per matrix)."""
    import onnx

    graph = onnx.load(path).graph
    return {max(1, int(np.prod(tensor.dims))) for tensor in graph.initializer if ".encoder.layer." in tensor.name and tensor.name.endswith("_scale")}


def test_int8_weights_are_scaled_per_channel_unless_asked_per_matrix(exported, folder):
    hidden, intermediate = TINY_CONFIG_KWARGS["hidden_size"], TINY_CONFIG_KWARGS["intermediate_size"]
    assert encoder_weight_scale_sizes(os.path.join(exported, "model_int8.onnx")) == {hidden, intermediate}
    checkpoint, output_dir = os.path.join(os.path.dirname(exported), "skimmer"), folder / "skimmer-per-tensor"
    cli_main(["export", checkpoint, str(output_dir), "--int8", "--int8-weights", "per-tensor", "--max-length", str(MAX_LENGTH)])
    assert encoder_weight_scale_sizes(str(output_dir / "model_int8.onnx")) == {1}
    assert json.loads((output_dir / "export_config.json").read_text(encoding="utf-8"))["int8_weights"] == "per-tensor"


@pytest.mark.slow  # two fresh interpreters
def test_runner_runs_without_torch(exported):
    # A fresh interpreter in which importing torch, transformers or transformers_prune fails.
    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'transformers_prune'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {exported!r})\n"
        "from runner import ExportedModel\n"
        f"model = ExportedModel({exported!r}, precision='int8', threads=1)\n"
        "print(model.predict(['the movie was good', 'dull plot']))\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers') and sys.modules[k] is not None))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    labels, imported = result.stdout.strip().splitlines()
    assert labels.count("LABEL_") == 2
    assert imported == "[]"
    cli = subprocess.run([sys.executable, os.path.join(exported, "runner.py"), exported, "great fun"], capture_output=True, text=True, check=True)
    assert cli.stdout.startswith("LABEL_") and cli.stdout.strip().endswith("great fun")


def test_int8_graph_stays_close_to_fp32(exported):
    fp32, int8 = export_runner.ExportedModel(exported), export_runner.ExportedModel(exported, precision="int8")
    batch = fp32.tokenize(texts())
    # Quantisation error only, far below the logits' scale (kept tokens may differ where a decision is close).
    assert np.abs(fp32(**batch)["logits"] - int8(**batch)["logits"]).max() < 0.1


@pytest.mark.parametrize(
    "inputs, message",
    [
        (dict(input_ids=np.zeros((0, 4), dtype=np.int64)), "the input is empty"),
        (dict(input_ids=np.zeros((2, 0), dtype=np.int64)), "the input is empty"),
        (dict(input_ids=np.full((1, MAX_LENGTH + 1), 5)), f"more than the model's {MAX_LENGTH}"),
        (dict(input_ids=np.full((1, 4), 5.0)), "input_ids must hold integers .* float64"),
        (dict(input_ids=np.full((4,), 5)), "must be 2-D"),
        (dict(input_ids=np.full((1, 4), 5), attention_mask=np.ones((1, 3))), "attention_mask must hold integers"),
        (dict(input_ids=np.full((1, 4), 5), attention_mask=np.ones((1, 3), dtype=np.int64)), "attention_mask has shape"),
        (dict(input_ids=np.full((1, 4), 5), attention_mask=np.array([[0, 1, 1, 1]])), "not right-padded"),
        (dict(input_ids=np.full((2, 2), 5), attention_mask=np.array([[1, 1], [0, 0]])), r"examples \[1\] are all padding"),
        (dict(input_ids=np.full((1, 2), 5), attention_mask=np.array([[1, 2]])), "0 and 1 only"),
        (dict(input_ids=np.array([[2, 99]])), r"input_ids\[0, 1\] = 99 is outside the model's range 0..98"),
        (dict(input_ids=np.full((1, 2), 5), token_type_ids=np.array([[0, 2]])), "token_type_ids.* outside"),
    ],
)
def test_runner_refuses_bad_input(exported, inputs, message):
    with pytest.raises(ValueError, match=message):
        export_runner.ExportedModel(exported)(**inputs)


def test_runner_text_checks(exported, exported_without_pruning):
    runner = export_runner.ExportedModel(exported)
    with pytest.raises(ValueError, match="texts is empty"):
        runner.tokenize([])
    with pytest.raises(ValueError, match="wrap it in a list"):
        runner.predict("good")
    long_text = " ".join(["good"] * (MAX_LENGTH + 5))
    with pytest.raises(ValueError, match=f"text 0 has {MAX_LENGTH + 7} tokens, more than the model's {MAX_LENGTH}"):
        runner.tokenize([long_text], truncation=False)
    assert runner.tokenize([long_text])["input_ids"].shape == (1, MAX_LENGTH)
    with pytest.raises(ValueError, match="has no 'int8' graph"):
        export_runner.ExportedModel(exported_without_pruning, precision="int8")


def test_export_command_refuses_bad_input(exported, folder, tokenizer):
    with pytest.raises(SystemExit, match="already exists and is not empty; pass --overwrite"):
        cli_main(["export", os.path.join(os.path.dirname(exported), "skimmer"), exported])
    with pytest.raises(SystemExit, match="is the input"):
        cli_main(["export", exported, exported, "--overwrite"])
    with pytest.raises(SystemExit, match="is not a checkpoint folder"):
        cli_main(["export", str(folder / "nowhere"), str(folder / "x")])
    with pytest.raises(SystemExit, match="max_length must be between 2 and the model's 64 positions"):
        cli_main(["export", os.path.join(os.path.dirname(exported), "skimmer"), str(folder / "x"), "--max-length", "100"])
    with pytest.raises(SystemExit, match="--int8-weights per-tensor applies to the int8 graph: add --int8"):
        cli_main(["export", os.path.join(os.path.dirname(exported), "skimmer"), str(folder / "x"), "--int8-weights", "per-tensor"])
    assert not (folder / "x").exists() and not [name for name in os.listdir(folder) if ".partial-" in name]


# ---------------------------------------------------------------------------------------------------- torch int8


def test_torch_int8_quantizes_only_the_encoder_linears(tokenizer):
    model = tiny_model("transkimmer-bert", "cls", tokenized_texts(tokenizer))
    quantized = quantize_encoder_int8(model)
    names = encoder_linear_names(model)
    assert len(names) == 6 * TINY_CONFIG_KWARGS["num_hidden_layers"]  # Q, K, V, attention output, FFN in and out
    assert all(type(quantized.get_submodule(name)).__module__.startswith("torch.ao.nn.quantized") for name in names)
    assert {quantized.get_submodule(name).weight().qscheme() for name in names} == {torch.per_channel_affine}
    assert type(quantized.classifier) is torch.nn.Linear  # heads and predictors stay fp32
    assert type(quantized.bert.encoder.skim_predictors[0].dense) is torch.nn.Linear
    assert type(model.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear  # the original is untouched
    input_ids = torch.randint(5, 99, (3, 9))
    with torch.no_grad():
        fp32, int8 = model(input_ids), quantized(input_ids)
    assert 0 < (fp32.logits - int8.logits).abs().max() < 0.1
    with pytest.raises(ValueError, match="no nn.Linear under encoder.layer"):
        quantize_encoder_int8(torch.nn.Sequential(torch.nn.Linear(2, 2)))


# ------------------------------------------------------------------------------------------------ real checkpoint


def _real_texts() -> tuple[list[str], list[str]]:
    sst2, imdb = os.path.join(SHARED_DATA, "glue", "sst2", "dev.csv"), os.path.join(SHARED_DATA, "imdb", "test.jsonl.gz")
    if not (os.path.isfile(sst2) and os.path.isfile(imdb)):
        pytest.skip(f"no SST-2 / IMDB files under {SHARED_DATA}")
    with open(sst2, encoding="utf-8", newline="") as f:
        sentences = [row["sentence"] for row in csv.DictReader(f)][:64]
    with gzip.open(imdb, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    random.Random(0).shuffle(rows)
    return sentences, [row["text"] for row in rows[:16]]


@pytest.mark.slow  # exports the real MiniLM and runs 80 real texts through both
def test_real_minilm_transkimmer_export_drops_the_same_tokens(minilm_path, tmp_path):
    """MiniLM-L6 as a Transkimmer classifier whose predictors are perturbed so that they skim (no trained one here):
    64 SST-2 dev sentences and 16 IMDB reviews (512 tokens max) through ONNX Runtime, against the torch model."""
    sentences, reviews = _real_texts()
    model = TranskimmerForSequenceClassification.from_pretrained(minilm_path).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for predictor in model.bert.encoder.skim_predictors:
            predictor.classifier.weight.normal_(0.0, 0.05)
            predictor.classifier.bias.copy_(torch.tensor([0.0, 0.3]))  # (skim, keep): keeps a bit over half
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    export_folder(model, tokenizer, str(tmp_path / "onnx"))
    runner = export_runner.ExportedModel(str(tmp_path / "onnx"))
    for group in (sentences, reviews):
        for start in range(0, len(group), 16):
            batch = runner.tokenize(group[start : start + 16])
            ours, reference = runner(**batch), torch_outputs(model, batch)
            np.testing.assert_allclose(ours["logits"], reference.logits.numpy(), rtol=0, atol=1e-4)
            np.testing.assert_array_equal(ours["tokens_per_layer"], reference.tokens_per_layer.numpy())
            real = batch["attention_mask"].sum(axis=1, keepdims=True)
            assert (reference.tokens_per_layer.numpy()[:, -1:] < real).all()  # every example lost tokens


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no_tokenizer", "tokenizer.json is missing"),
        ("truncated_graph", "model.onnx is not a loadable graph"),
        ("config_without_files", "lacks files"),
        ("config_not_json", "export_config.json is not JSON"),
    ],
)
def test_runner_command_line_refuses_a_damaged_folder_in_one_line(damage, message, exported, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    if damage == "no_tokenizer":
        os.remove(broken / "tokenizer.json")
    elif damage == "truncated_graph":
        graph = (broken / "model.onnx").read_bytes()
        (broken / "model.onnx").write_bytes(graph[: len(graph) // 3])
    elif damage == "config_without_files":
        config = json.loads((broken / "export_config.json").read_text(encoding="utf-8"))
        del config["files"]
        (broken / "export_config.json").write_text(json.dumps(config), encoding="utf-8")
    else:
        (broken / "export_config.json").write_text("{", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        export_runner.main([str(broken), "great fun"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("runner: ") and message in error and "\n" not in error


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_runner_refuses_an_empty_text(text, exported, capsys):
    with pytest.raises(ValueError, match="every text needs at least one word"):
        export_runner.ExportedModel(exported).predict(["fine", text])
    with pytest.raises(SystemExit) as exit_info:
        export_runner.main([exported, text])
    assert exit_info.value.code == 2 and "every text needs at least one word" in capsys.readouterr().err


def test_a_checkpoint_naming_no_architecture_is_not_exported_headless_by_guess(exported, folder, tmp_path):
    source = tmp_path / "no-architecture"
    shutil.copytree(os.path.join(folder, "skimmer"), source)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = None
    (source / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(SystemExit, match="names no architecture but its weights hold a head \\(classifier.bias"):
        cli_main(["export", str(source), str(tmp_path / "out"), "--max-length", str(MAX_LENGTH)])
    cli_main(["export", str(source), str(tmp_path / "out"), "--max-length", str(MAX_LENGTH), "--head", "sequence-classification"])
    assert json.loads((tmp_path / "out" / "export_config.json").read_text(encoding="utf-8"))["head"] == "sequence-classification"


@pytest.mark.parametrize("max_length", [2, 3])
def test_the_shortest_max_lengths_export_and_check(folder, tokenizer, tmp_path, max_length):
    model = tiny_model("transkimmer-bert", "cls", tokenized_texts(tokenizer))
    config = export_folder(model, tokenizer, str(tmp_path / "out"), max_length=max_length)
    assert all(length >= 2 for lengths in config["check"]["lengths"] for length in lengths), config["check"]


def test_exporting_a_model_in_training_mode_says_to_call_eval(folder, tokenizer, tmp_path):
    model = tiny_model("transkimmer-bert", "cls", tokenized_texts(tokenizer)).train()
    with pytest.raises(ValueError, match="call model.eval\\(\\) before exporting"):
        export_folder(model, tokenizer, str(tmp_path / "out"))


def test_ltp_top_k_exports_with_its_token_counts(folder, tokenizer, tmp_path):
    """The top-k baseline ranks tokens by comparison counts (the ONNX exporter has no stable sort); the export's own
    check compares logits and the tokens kept per layer with the torch model."""
    from transformers_prune import LTPForSequenceClassification

    from model_testers import TESTERS

    torch.manual_seed(0)  # the first max(3, 15%) layers keep every token: 5 layers, so the last two prune
    model = LTPForSequenceClassification(TESTERS["ltp"].make_config(num_hidden_layers=5, prune_mode="topk", token_keep_rate=0.3))
    config = export_folder(model.eval(), tokenizer, str(tmp_path / "out"), max_length=MAX_LENGTH)
    runner = export_runner.ExportedModel(str(tmp_path / "out"))
    batch = runner.tokenize(texts()[:1])
    counts = runner(**batch)["tokens_per_layer"]
    with torch.no_grad():
        expected = model(**{name: torch.from_numpy(value) for name, value in batch.items()}).tokens_per_layer
    assert counts.tolist() == expected.tolist() and counts[0, -1] < counts[0, 0]
    assert config["check"]["max_abs_difference_fp32"] < 1e-4


def test_label_names_survive_convert_and_export(folder, tokenizer, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from transformers_prune.conversion import convert_bert_checkpoint

    named = BertConfig(**TINY_CONFIG_KWARGS, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    bert = save_checkpoint(BertForSequenceClassification(named), tokenizer, tmp_path / "bert")
    converted = convert_bert_checkpoint(bert, "ltp", str(tmp_path / "ltp"))
    cli_main(["export", converted, str(tmp_path / "onnx"), "--max-length", str(MAX_LENGTH)])
    labels = export_runner.ExportedModel(str(tmp_path / "onnx")).predict(texts()[:4])
    assert set(labels) <= {"negative", "positive"} and labels


# ------------------------------------------------------------------------------------------------------ OpenVINO


@pytest.mark.parametrize("model_type", ["bert", "transkimmer-bert", "ltp"])
def test_openvino_export_runs_in_the_same_runner_and_equals_the_torch_model(model_type, folder, tokenizer):
    """`--format openvino`: the ONNX graph converted to OpenVINO IR (fp32 compute) and NNCF int8 weights, run by
    the same runner and checks: the padded graph and both kinds of token-dropping graph keep torch's tokens."""
    batch = tokenized_texts(tokenizer)
    model = tiny_model(model_type, "cls", batch)
    output_dir = folder / f"{model_type}-openvino"
    config = export_folder(model, tokenizer, str(output_dir), int8=True, max_length=MAX_LENGTH, format="openvino")
    assert config["format"] == "openvino" and config["check"]["max_abs_difference_fp32"] <= 1e-4
    assert config["files"] == {"fp32": "openvino_model.xml", "int8": "openvino_model_int8.xml"}
    assert sorted(os.listdir(output_dir)) == [
        "export_config.json", "openvino_model.bin", "openvino_model.xml", "openvino_model_int8.bin",
        "openvino_model_int8.xml", "runner.py", "tokenizer.json",
    ]
    fp32, int8 = export_runner.ExportedModel(str(output_dir), threads=1), export_runner.ExportedModel(str(output_dir), "int8", 1)
    ours, reference = fp32(**batch), torch_outputs(model, batch)
    np.testing.assert_allclose(ours["logits"], reference["logits"].numpy(), rtol=0, atol=1e-4)
    if model_type != "bert":
        np.testing.assert_array_equal(ours["tokens_per_layer"], reference.tokens_per_layer.numpy())
    assert np.abs(int8(**batch)["logits"] - ours["logits"]).max() < 0.1  # int8 weights only: quantisation error
    with pytest.raises(ValueError, match=r"input_ids\[0, 1\] = 99 is outside"):
        fp32(input_ids=np.array([[2, 99]]))
    with pytest.raises(ValueError, match="providers name ONNX Runtime execution providers"):
        export_runner.ExportedModel(str(output_dir), providers=["CPUExecutionProvider"])


def test_openvino_export_refuses_what_it_cannot_do(exported, folder, tmp_path, monkeypatch):
    checkpoint = os.path.join(os.path.dirname(exported), "skimmer")
    with pytest.raises(SystemExit, match="OpenVINO's int8 export compresses weights per channel"):
        cli_main(["export", checkpoint, str(tmp_path / "a"), "--format", "openvino", "--int8", "--int8-weights", "per-tensor",
                  "--max-length", str(MAX_LENGTH)])
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the openvino extra were not installed
    with pytest.raises(SystemExit, match=r"export --format openvino needs the openvino extra .*transformers_prune\[openvino\]"):
        cli_main(["export", checkpoint, str(tmp_path / "b"), "--format", "openvino", "--max-length", str(MAX_LENGTH)])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
