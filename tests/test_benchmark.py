"""`transformers-prune bench`: report fields, FLOP accounting, dropped tokens, sweeps, peers (ONNX Runtime, OpenVINO), int8
rows, outputs, bad input, SQuAD.

Everything runs on tiny random checkpoints saved to a temporary folder with a 27-token vocabulary; one benchmark
run (plain BERT classifier, a bare BERT encoder, a Transkimmer whose predictors skim everything; peers and int8
rows on) is shared by the report tests.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import random
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering, BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertModel

from transformers_prune import LTPForSequenceClassification, TranskimmerForQuestionAnswering, TranskimmerForSequenceClassification
from transformers_prune.benchmark.checkpoints import inspect_checkpoint, load_checkpoint
from transformers_prune.benchmark.data import get_task, load_task_data, resolve_data_file
from transformers_prune.benchmark.flops import flop_counter
from transformers_prune.benchmark.latency import InterleavedTimer
from transformers_prune.benchmark.squad import best_answers, f1_score, normalize_answer, prepare_features, squad_scores
from transformers_prune.benchmark.sweep import config_value
from transformers_prune_cli import main as cli_main
from transformers_prune.resources import bundled_file

from conftest import TINY_CONFIG_KWARGS, save_checkpoint, write_sst2_csv, write_tokenizer
from model_testers import TESTERS, randomise_predictors


def bench_main(argv: list[str]) -> None:
    """`transformers-prune bench ARGV`."""
    cli_main(["bench", *argv])


make_tiny_config = TESTERS["transkimmer-bert"].make_config

BATCH_SIZES = ("1", "2")
MAX_LENGTH = "32"  # the tiny configs have 64 positions
PEERS = ("ort_fp32", "ort_int8", "ov_fp32", "ov_int8")  # the default --peers all
EXPORTED = ("+ort_fp32", "+ort_int8", "+ov_fp32", "+ov_int8")  # --export-methods with the ONNX Runtime and OpenVINO peers
TOKEN_BUDGET = "40"  # real tokens per batch in the shared run's token-budget rows
FAST = ["--batch-sizes", *BATCH_SIZES, "--warmup-batches", "1", "--max-length", MAX_LENGTH, "--threads", "1"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny checkpoints and data: `bert` (classifier), `encoder` (no head), `skimmer` (skims every token)."""
    folder = tmp_path_factory.mktemp("bench")
    tokenizer = write_tokenizer(folder)
    torch.manual_seed(0)
    skimmer = TranskimmerForSequenceClassification(make_tiny_config())
    randomise_predictors(skimmer, weight_std=0.0, keep_bias=-10.0, skim_bias=10.0)  # keep [CLS] only
    return {
        "folder": folder,
        "tokenizer": tokenizer,
        "bert": save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / "bert"),
        "encoder": save_checkpoint(BertModel(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / "encoder"),
        "skimmer": save_checkpoint(skimmer, tokenizer, folder / "skimmer"),
        "data": write_sst2_csv(folder / "dev.csv"),
    }


@pytest.fixture(scope="module")
def report(workspace):
    """One benchmark of the three checkpoints, FLOPs counted at batch size 1, with a sweep of the skimmer."""
    output_dir = workspace["folder"] / "out"
    bench_main([
        workspace["bert"], workspace["encoder"], workspace["skimmer"], "--task", "sst2", "--data-file", workspace["data"],
        "--eval-batch-size", "1", "--sweep", "prune_at_inference=true,false", "--int8", "--export-methods",
        "--max-tokens-per-batch", TOKEN_BUDGET, "--output-dir", str(output_dir), *FAST,
    ])
    with open(output_dir / "bench.json", encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------------------- report


def test_report_has_every_field(report):
    assert report["task"] == "sst2" and report["metrics"] == ["accuracy"]
    assert report["data"]["subset"] == "all 12 examples"
    for key in ("torch", "transformers", "python", "cpu", "threads", "device", "cuda_device"):
        assert key in report["environment"]
    assert report["environment"]["threads"] == 1 and report["environment"]["device"] == "cpu"
    expected_rows = {
        f"{checkpoint}/{variant}"
        for checkpoint in ("bert", "encoder", "skimmer")
        for variant in ("hf_padded", "hf_dynamic", "hf_sorted", "dense_packed", *PEERS, "dense_packed+int8")
    } | {f"skimmer/transkimmer-bert{suffix}" for suffix in ("", "+int8", *EXPORTED)}
    assert set(report["models"]) == expected_rows
    for row in report["models"].values():
        for key in ("accuracy", "flops_per_example", "flop_reduction", "kept_fraction"):
            assert isinstance(row[key], float), key
        assert len(row["tokens_per_layer"]["per_layer"]) == TINY_CONFIG_KWARGS["num_hidden_layers"]
        assert row["tokens_per_layer"]["mean"] > 0
        assert set(row["latency"]) == {*BATCH_SIZES, f"{TOKEN_BUDGET} tokens"}
        for latency in row["latency"].values():
            for key in ("p50_ms", "p90_ms", "examples_per_s", "tokens_per_s", "speedup_vs_hf_dynamic", "speedup_vs_hf_sorted",
                        "speedup_vs_dense_packed", "speedup_vs_best_peer"):
                assert latency[key] > 0, key
            assert latency["examples"] == 12
            # Efficiency is a property of dropping tokens: only the pruning model's fp32 rows carry it.
            assert ("efficiency" in latency) == (row["variant"] == "transkimmer-bert"), row["variant"]


def test_speedups_and_flop_reductions_are_ratios_to_the_checkpoints_own_baselines(report):
    for name, row in report["models"].items():
        checkpoint = name.split("/")[0]
        dynamic, dense = report["models"][f"{checkpoint}/hf_dynamic"], report["models"][f"{checkpoint}/dense_packed"]
        assert row["flop_reduction"] == pytest.approx(dense["flops_per_example"] / row["flops_per_example"]), name
        for batch_size, latency in row["latency"].items():
            sorted_ = report["models"][f"{checkpoint}/hf_sorted"]
            for key, baseline in (("speedup_vs_hf_dynamic", dynamic), ("speedup_vs_hf_sorted", sorted_), ("speedup_vs_dense_packed", dense)):
                expected = latency["examples_per_s"] / baseline["latency"][batch_size]["examples_per_s"]
                assert latency[key] == pytest.approx(expected), (name, batch_size, key)
        if row["variant"] in ("hf_padded", "hf_dynamic", "hf_sorted", "dense_packed"):
            assert row["kept_fraction"] == 1.0, name


def test_length_sorted_and_token_budget_batches(workspace, report):
    """hf_sorted scores the same predictions (put back in input order) on batches that pad less; a token-budget
    batch holds as many inputs as fit the budget of real tokens, in order (sorted for hf_sorted)."""
    from transformers import AutoTokenizer

    from transformers_prune.batching import token_budget_batches

    for checkpoint in ("bert", "encoder"):
        dynamic, sorted_ = report["models"][f"{checkpoint}/hf_dynamic"], report["models"][f"{checkpoint}/hf_sorted"]
        assert sorted_["accuracy"] == dynamic["accuracy"]
        assert sorted_["flops_per_example"] <= dynamic["flops_per_example"]
    tokenizer = AutoTokenizer.from_pretrained(workspace["bert"])
    rows = list(csv.DictReader(open(workspace["data"], encoding="utf-8")))
    lengths = [len(ids) for ids in tokenizer([row["sentence"] for row in rows], truncation=True, max_length=int(MAX_LENGTH))["input_ids"]]
    budget = f"{TOKEN_BUDGET} tokens"
    assert report["models"]["bert/dense_packed"]["latency"][budget]["batches"] == len(token_budget_batches(lengths, int(TOKEN_BUDGET)))
    assert report["models"]["bert/hf_sorted"]["latency"][budget]["batches"] == len(
        token_budget_batches(lengths, int(TOKEN_BUDGET), sort_by_length=True)
    )
    assert report["models"]["bert/dense_packed"]["latency"][budget]["tokens"] == sum(lengths)


def test_variants_of_a_checkpoint_compute_the_same_function(report):
    # Same weights in every variant; for the bare encoder, one fresh head shared by all of them.
    assert report["checkpoints"]["encoder"]["fresh_head_parameters"] == ["classifier.bias", "classifier.weight"]
    assert report["checkpoints"]["bert"]["fresh_head_parameters"] == []
    assert report["checkpoints"]["skimmer"]["ignored_by_hf_baselines"] == ["bert.encoder.skim_predictors.*"]
    for checkpoint in ("bert", "encoder"):
        accuracies = {report["models"][f"{checkpoint}/{v}"]["accuracy"] for v in ("hf_padded", "hf_dynamic", "dense_packed")}
        assert len(accuracies) == 1


def test_pruning_checkpoint_loads_into_hf_bert_with_one_clean_warning(workspace, caplog, capfd):
    task = get_task("sst2")
    checkpoint = inspect_checkpoint(workspace["skimmer"], task, int(MAX_LENGTH))
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        loaded = load_checkpoint(checkpoint, task, torch.device("cpu"), seed=0)
    num_predictor_tensors = 8 * TINY_CONFIG_KWARGS["num_hidden_layers"]
    assert [record.getMessage() for record in caplog.records] == [
        f"skimmer: the HF baselines (BertForSequenceClassification) ignore {num_predictor_tensors} checkpoint tensors "
        "they have no place for: bert.encoder.skim_predictors.*"
    ]
    stderr = capfd.readouterr().err
    assert "LOAD REPORT" not in stderr and "Loading weights" not in stderr  # HF's own report and bar are silenced
    batch = dict(workspace["tokenizer"](["the movie was good", "dull"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.hf(**batch).logits, loaded.dense_packed(**batch).logits, rtol=0, atol=1e-4)


def test_peer_rows_run_the_dense_model_in_onnx_runtime_and_openvino(report):
    assert report["settings"]["peers"] == "all"
    assert report["calibration"]["subset"].startswith("first 300 of") and report["calibration"]["file"].endswith(("glue/sst2/train.csv", "sst2_train_8k.csv"))
    for checkpoint in ("bert", "encoder", "skimmer"):
        rows = {v: report["models"][f"{checkpoint}/{v}"] for v in ("hf_dynamic", *PEERS)}
        assert {rows[v]["model_class"] for v in PEERS} == {"RuntimeModel"}
        # The same weights and head on the same batches: the same predictions in fp32, the same FLOPs and token rows.
        assert rows["ort_fp32"]["accuracy"] == rows["ov_fp32"]["accuracy"] == rows["hf_dynamic"]["accuracy"]
        for variant in PEERS:
            assert rows[variant]["flops_as"] == "hf_dynamic"
            assert rows[variant]["flops_per_example"] == rows["hf_dynamic"]["flops_per_example"]
            assert rows[variant]["tokens_per_layer"] == rows["hf_dynamic"]["tokens_per_layer"]
        for batch_size in BATCH_SIZES:
            # The best peer is the faster ORT row: its own ratio is 1, the other's at most 1.
            peer_ratios = [rows[v]["latency"][batch_size]["speedup_vs_best_peer"] for v in PEERS]
            assert max(peer_ratios) == 1.0
    assert "x best peer" in open(report["outputs"]["markdown"], encoding="utf-8").read()


def test_exported_method_rows_drop_the_same_tokens_in_onnx_runtime_and_openvino(report):
    torch_row = report["models"]["skimmer/transkimmer-bert"]
    for suffix in EXPORTED:
        row = report["models"][f"skimmer/transkimmer-bert{suffix}"]
        assert row["model_class"] == "RuntimeModel" and row["flops_as"] == "transkimmer-bert"
        assert row["tokens_per_layer"] == torch_row["tokens_per_layer"]  # [CLS] only, as the torch model
    for suffix in ("+ort_fp32", "+ov_fp32"):
        assert report["models"][f"skimmer/transkimmer-bert{suffix}"]["accuracy"] == torch_row["accuracy"]
    assert report["models"]["skimmer/ov_int8"]["inference_precision"] in ("bf16", "f32")
    # The dense peer quantized as ONNX Runtime's defaults do, our export as `export --int8` does.
    assert report["models"]["skimmer/ort_int8"]["int8_weights"] == "per-tensor"
    assert report["models"]["skimmer/transkimmer-bert+ort_int8"]["int8_weights"] == "per-channel"


def test_int8_rows_quantize_the_packed_models(report):
    for fp32, int8 in (("skimmer/dense_packed", "skimmer/dense_packed+int8"), ("skimmer/transkimmer-bert", "skimmer/transkimmer-bert+int8")):
        fp32_row, int8_row = report["models"][fp32], report["models"][int8]
        assert int8_row["flops_as"] == fp32_row["variant"]
        assert int8_row["flops_per_example"] == fp32_row["flops_per_example"]
        assert int8_row["flop_reduction"] == fp32_row["flop_reduction"]
        # int8 encoder linears with fp32 predictors: this skimmer still keeps only [CLS].
        assert int8_row["tokens_per_layer"] == fp32_row["tokens_per_layer"]


# ---------------------------------------------------------------------------------------------------------- FLOPs


def test_dense_packed_flops_equal_hf_on_real_tokens(report):
    for checkpoint in ("bert", "encoder", "skimmer"):
        rows = {v: report["models"][f"{checkpoint}/{v}"] for v in ("hf_padded", "hf_dynamic", "dense_packed")}
        # At batch size 1 dynamic padding adds no padding: HF computes exactly the real tokens, as dense-packed does.
        assert rows["hf_dynamic"]["flops_per_example"] == rows["dense_packed"]["flops_per_example"]
        assert rows["hf_padded"]["flops_per_example"] > rows["dense_packed"]["flops_per_example"]
        assert rows["hf_padded"]["flop_reduction"] < 1.0
        assert rows["hf_padded"]["tokens_per_layer"]["mean"] == int(MAX_LENGTH)


def test_flops_shrink_when_tokens_are_dropped(report):
    skimmer, dense = report["models"]["skimmer/transkimmer-bert"], report["models"]["skimmer/dense_packed"]
    assert skimmer["tokens_per_layer"]["per_layer"] == [1.0] * TINY_CONFIG_KWARGS["num_hidden_layers"]  # [CLS] only
    assert skimmer["kept_fraction"] < 1.0
    assert skimmer["flops_per_example"] < dense["flops_per_example"]
    assert skimmer["flop_reduction"] > 1.0


def test_flop_counter_counts_cpu_attention():
    query = torch.randn(2, 4, 10, 8)
    with torch.inference_mode(), flop_counter() as counter:
        F.scaled_dot_product_attention(query, query, query)
    assert counter.get_total_flops() == 2 * (2 * 2 * 4 * 10 * 10 * 8)  # Q K^T and P V, 2 FLOPs per multiply-add


# ---------------------------------------------------------------------------------------------------------- sweep


def test_sweep_reruns_the_checkpoint_at_each_value(report):
    (sweep,) = report["models"]["skimmer/transkimmer-bert"]["sweeps"]
    assert sweep["key"] == "prune_at_inference"
    pruned, dense = sweep["points"]
    assert (pruned["value"], dense["value"]) == (True, False)
    assert pruned["flops_per_example"] == report["models"]["skimmer/transkimmer-bert"]["flops_per_example"]
    assert dense["flops_per_example"] == report["models"]["skimmer/dense_packed"]["flops_per_example"]
    assert dense["kept_fraction"] == 1.0
    assert set(pruned["latency"]) == {*BATCH_SIZES, f"{TOKEN_BUDGET} tokens"} and "efficiency" in pruned["latency"]["1"]


def test_each_sweep_runs_on_the_types_with_its_key_and_truncation_rows_are_baselines(workspace, tmp_path):
    torch.manual_seed(0)
    ltp = LTPForSequenceClassification(TESTERS["ltp"].make_config(final_token_threshold=0.3))
    ltp_folder = save_checkpoint(ltp, workspace["tokenizer"], tmp_path / "ltp")
    bench_main([
        workspace["bert"], workspace["skimmer"], ltp_folder, "--task", "sst2", "--data-file", workspace["data"],
        "--baselines", "first", "--peers", "none", "--sweep", "keep_threshold=0.3,0.7", "--sweep", "threshold_scale=0.5,2",
        "--truncations", "4", "--latency-examples", "4", "--output-dir", str(tmp_path / "out"), *FAST,
    ])
    models = json.loads((tmp_path / "out" / "bench.json").read_text())["models"]
    # Quality counts every input; latency times the first 4 only, at every batch size.
    assert all(row["latency"][size]["examples"] == 4 for row in models.values() for size in BATCH_SIZES)
    assert [sweep["key"] for sweep in models["skimmer/transkimmer-bert"]["sweeps"]] == ["keep_threshold"]
    assert [sweep["key"] for sweep in models["ltp/ltp"]["sweeps"]] == ["threshold_scale"]
    scales = {point["value"]: point["kept_fraction"] for point in models["ltp/ltp"]["sweeps"][0]["points"]}
    assert scales[0.5] > scales[2]  # a higher threshold scale prunes more
    truncated, dense = models["bert/truncated_4"], models["bert/dense_packed"]
    assert truncated["tokens_per_layer"]["mean"] <= 4 < dense["tokens_per_layer"]["mean"]
    assert truncated["flops_per_example"] < dense["flops_per_example"]
    assert "efficiency" not in truncated["latency"]["1"]
    assert not any(name.endswith("truncated_4") for name in models if not name.startswith("bert/"))


def test_baselines_first_measures_them_once_and_compares_later_checkpoints_to_them(workspace, report, tmp_path):
    bench_main([
        workspace["bert"], workspace["skimmer"], "--task", "sst2", "--data-file", workspace["data"],
        "--eval-batch-size", "1", "--baselines", "first", "--output-dir", str(tmp_path), *FAST,
    ])
    shared = json.loads((tmp_path / "bench.json").read_text())
    baselines = {f"bert/{v}" for v in ("hf_padded", "hf_dynamic", "hf_sorted", "dense_packed", *PEERS)}
    assert set(shared["models"]) == baselines | {"skimmer/transkimmer-bert"}
    assert shared["checkpoints"]["skimmer"]["baselines_from"] == "bert"
    skimmer, bert_dense = shared["models"]["skimmer/transkimmer-bert"], shared["models"]["bert/dense_packed"]
    # Same shapes and tokenizer: the shared dense-packed FLOPs are the skimmer's own, so the reduction is unchanged.
    assert bert_dense["flops_per_example"] == report["models"]["skimmer/dense_packed"]["flops_per_example"]
    assert skimmer["flop_reduction"] == pytest.approx(bert_dense["flops_per_example"] / skimmer["flops_per_example"])
    for batch_size, latency in skimmer["latency"].items():
        expected = latency["examples_per_s"] / bert_dense["latency"][batch_size]["examples_per_s"]
        assert latency["speedup_vs_dense_packed"] == pytest.approx(expected)
        best_peer = max(shared["models"][f"bert/{v}"]["latency"][batch_size]["examples_per_s"] for v in PEERS)
        assert latency["speedup_vs_best_peer"] == pytest.approx(latency["examples_per_s"] / best_peer)
    assert "--baselines first" in (tmp_path / "bench.md").read_text()


def test_compressed_checkpoint_is_compared_against_the_bert_listed_before_it(workspace, tmp_path):
    compressed = str(tmp_path / "svd")
    cli_main(["compress", workspace["bert"], compressed, "--method", "svd", "--targets", "intermediate", "output", "--rank", "2"])
    bench_main([
        workspace["bert"], compressed, "--task", "sst2", "--data-file", workspace["data"], "--eval-batch-size", "4",
        "--output-dir", str(tmp_path / "out"), "--latency-rounds", "2", "--peers", "none", *FAST,
    ])
    result = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert set(result["models"]) == {"bert/hf_padded", "bert/hf_dynamic", "bert/hf_sorted", "bert/dense_packed", "svd/compressed-bert"}
    assert result["checkpoints"]["svd"]["baselines_from"] == "bert"
    row, dense = result["models"]["svd/compressed-bert"], result["models"]["bert/dense_packed"]
    assert row["model_class"] == "CompressedBertForSequenceClassification"
    # It runs on the packed engine, as the dense-packed baseline: the same real tokens, fewer FLOPs.
    assert row["tokens_per_layer"] == dense["tokens_per_layer"]
    assert row["tokens_per_layer"]["mean"] < result["models"]["bert/hf_dynamic"]["tokens_per_layer"]["mean"]
    assert row["flops_per_example"] < dense["flops_per_example"] and row["flop_reduction"] > 1
    for latency in row["latency"].values():
        assert latency["efficiency"] == pytest.approx(latency["speedup_vs_dense_packed"] / row["flop_reduction"])
        # Two timed rounds; the figure is the faster one.
        assert len(latency["examples_per_s_per_round"]) == 2
        assert latency["examples_per_s"] == max(latency["examples_per_s_per_round"])
    assert "the fastest of 2 rounds over all batches (each round times every row in turn)" in (tmp_path / "out" / "bench.md").read_text()

    with pytest.raises(SystemExit, match="list an uncompressed checkpoint of the same shape"):
        cli_main(["bench", compressed, "--task", "sst2", "--data-file", workspace["data"], "--output-dir", str(tmp_path / "x"), *FAST])


def test_latency_rounds_time_every_model_in_turn_and_keep_the_fastest():
    """`InterleavedTimer`: round r of every model before round r + 1 of any, a model's context around each of its
    passes only, warm-up before each pass, the fastest round kept, and what it holds open closed on exit."""
    calls = []

    class Recorder:
        device = torch.device("cpu")

        def __init__(self, name):
            self.name, self.config = name, SimpleNamespace(swept=False)

        def eval(self):
            return self

        def __call__(self, input_ids):
            calls.append((self.name, len(input_ids), self.config.swept))

    first, second = Recorder("first"), Recorder("second")
    batches = {"1": [{"input_ids": torch.zeros(1, 3)}], "2": [{"input_ids": torch.zeros(2, 3)}]}
    closed = []
    with InterleavedTimer(rounds=2, warmup=1) as timer:
        timer.callback(closed.append, "held")
        figures = [timer.add(first, batches, "first"), timer.add(second, batches, "second", lambda: config_value(second, "swept", True))]
        timer.run()
        assert not closed
    assert closed == ["held"]
    one_round = [(name, size, name == "second") for name in ("first", "second") for size in (1, 1, 2, 2)]  # warm-up, timed
    assert calls == one_round * 2 and second.config.swept is False
    for figure in figures:
        assert set(figure) == {"1", "2"}
        for latency in figure.values():
            assert len(latency["examples_per_s_per_round"]) == 2
            assert latency["examples_per_s"] == max(latency["examples_per_s_per_round"])


# -------------------------------------------------------------------------------------------------------- outputs


def test_plots_and_markdown_are_written(report):
    for kind in ("accuracy_vs_speedup", "tokens_per_layer"):
        with open(report["outputs"][kind], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(report["outputs"]["markdown"], encoding="utf-8") as f:
        markdown = f.read()
    for name in report["models"]:
        assert f"| {name} |" in markdown
    assert "prune_at_inference=false" in markdown


# ------------------------------------------------------------------------------------------------------ bad input


@pytest.fixture
def qa_checkpoint(workspace, tmp_path):
    return save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), workspace["tokenizer"], tmp_path / "qa")


@pytest.fixture
def three_label_checkpoint(workspace, tmp_path):
    model = BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS, num_labels=3))
    return save_checkpoint(model, workspace["tokenizer"], tmp_path / "three_labels")


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_checkpoint", "does not exist or is not a checkpoint folder"),
        ("unknown_task", "unknown task 'mnli'"),
        ("unknown_sweep_key", "unknown sweep key 'hidden_size'"),
        ("bad_sweep_value", "inference_engine='fast' is invalid"),
        ("sweep_without_pruning_model", "--sweep needs a token-pruning checkpoint"),
        ("missing_data_file", "data file .*nowhere.csv does not exist"),
        ("qa_checkpoint_on_sst2", "is a question-answering checkpoint"),
        ("three_labels_on_sst2", "classifies into 3 labels; task sst2 has 2"),
        ("max_length_beyond_positions", "exceeds .* max_position_embeddings"),
        ("no_latency_rounds", "latency_rounds must be at least 1, got 0"),
        ("peers_without_onnxruntime", "ort peer rows need the onnx extra .*--peers none"),
        ("peers_without_openvino", r"openvino peer rows need the openvino extra .*pip install 'transformers_prune\[openvino\]'"),
        ("openvino_without_training_file", "OpenVINO's int8 peer calibrates on task imdb's training inputs"),
    ],
)
def test_bad_input_fails_before_any_work(case, message, workspace, qa_checkpoint, three_label_checkpoint, tmp_path, monkeypatch):
    output_dir = tmp_path / "out"
    checkpoints, options = [workspace["skimmer"]], ["--data-file", workspace["data"], "--max-length", MAX_LENGTH]
    if case == "missing_checkpoint":
        checkpoints = [str(tmp_path / "no_such_model")]
    elif case == "unknown_task":
        options += ["--task", "mnli"]
    elif case == "unknown_sweep_key":
        options += ["--sweep", "hidden_size=16,32"]
    elif case == "bad_sweep_value":
        options += ["--sweep", "inference_engine=packed,fast"]
    elif case == "sweep_without_pruning_model":
        checkpoints, options = [workspace["bert"]], options + ["--sweep", "prune_at_inference=true,false"]
    elif case == "missing_data_file":
        options += ["--data-file", str(tmp_path / "nowhere.csv")]
    elif case == "qa_checkpoint_on_sst2":
        checkpoints = [qa_checkpoint]
    elif case == "three_labels_on_sst2":
        checkpoints = [three_label_checkpoint]
    elif case == "max_length_beyond_positions":
        options += ["--max-length", "512"]  # the last value wins
    elif case == "no_latency_rounds":
        options += ["--latency-rounds", "0"]
    elif case == "peers_without_onnxruntime":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the onnx extra were not installed
    elif case == "peers_without_openvino":
        monkeypatch.setitem(sys.modules, "openvino", None)
    elif case == "openvino_without_training_file":
        monkeypatch.chdir(tmp_path)  # no ../shared/data beside it
        options += ["--task", "imdb", "--peers", "openvino"]
    with pytest.raises(SystemExit, match=f"transformers-prune bench: .*{message}"):
        cli_main(["bench", *checkpoints, *options, "--output-dir", str(output_dir)])
    assert not output_dir.exists()


# ------------------------------------------------------------------------------------------------------------ data


def test_sst2_falls_back_to_the_bundled_dev_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    assert resolve_data_file(get_task("sst2")) == bundled_file("sst2_dev.csv")
    with pytest.raises(FileNotFoundError, match="no data for task imdb"):
        resolve_data_file(get_task("imdb"))


def test_imdb_subset_is_the_first_n_after_a_seeded_shuffle(tmp_path):
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(10)]
    path = tmp_path / "test.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    data = load_task_data(get_task("imdb"), str(path), max_examples=4, seed=7)
    shuffled = list(rows)
    random.Random(7).shuffle(shuffled)
    assert data.texts == [row["text"] for row in shuffled[:4]]
    assert data.subset == "first 4 of 10 examples after random.Random(7).shuffle"


# ----------------------------------------------------------------------------------------------------------- SQuAD

CONTEXT = "the movie was good and the plot was very dull . " * 3


def write_squad_json(path) -> str:
    questions = [("q1", "what was good", "movie"), ("q2", "what was the plot", "very dull")]
    qas = [
        {"id": id_, "question": question, "answers": [{"answer_start": CONTEXT.index(answer), "text": answer}]}
        for id_, question, answer in questions
    ]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}, f)
    return str(path)


def test_squad_normalisation_and_scores(tmp_path):
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert f1_score("the very dull plot", "very dull") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert f1_score("good", "dull") == 0.0
    examples = load_task_data(get_task("squad"), write_squad_json(tmp_path / "dev.json")).examples
    scores = squad_scores({"q1": "The movie.", "q2": "dull"}, examples)
    assert scores["exact_match"] == 50.0
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_best_answers_read_the_span_from_offsets(workspace, tmp_path):
    examples = load_task_data(get_task("squad"), write_squad_json(tmp_path / "dev.json")).examples
    features = prepare_features(workspace["tokenizer"], examples, max_length=24, stride=8)
    assert len(features) > len(examples)  # the context is cut into overlapping windows
    logits = []
    for feature, offsets in enumerate(features.context_offsets):
        answer = examples[features.example_index[feature]]
        start_char = CONTEXT.index(answer.answers[0])
        end_char = start_char + len(answer.answers[0])
        start, end = np.full(len(offsets), -5.0), np.full(len(offsets), -5.0)
        for token, span in enumerate(offsets):
            if span is not None and span[0] == start_char:
                start[token] = 5.0
            if span is not None and span[1] == end_char:
                end[token] = 5.0
        logits.append((start, end))
    assert best_answers(logits, features, examples) == {"q1": "movie", "q2": "very dull"}


def test_squad_benchmark_runs_end_to_end(workspace, tmp_path):
    tokenizer = workspace["tokenizer"]
    bert = save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert_qa")
    skimmer = TranskimmerForQuestionAnswering(make_tiny_config())
    randomise_predictors(skimmer, weight_std=0.0, keep_bias=-10.0, skim_bias=10.0)
    skimmer = save_checkpoint(skimmer, tokenizer, tmp_path / "skimmer_qa")
    cli_main([
        "bench", bert, skimmer, "--task", "squad", "--data-file", write_squad_json(tmp_path / "dev.json"), "--peers", "ort",
        "--doc-stride", "8", "--output-dir", str(tmp_path / "out"), *FAST,
    ])
    with open(tmp_path / "out" / "bench.json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["metrics"] == ["f1", "exact_match"]
    assert report["checkpoints"]["bert_qa"]["num_inputs"] > 2  # windows, not questions
    # The ONNX Runtime peer of a QA head: full-length span logits, so the same answers as HF's in fp32.
    for checkpoint in ("bert_qa", "skimmer_qa"):
        rows = report["models"]
        assert rows[f"{checkpoint}/ort_fp32"]["f1"] == rows[f"{checkpoint}/hf_dynamic"]["f1"]
    skim = report["models"]["skimmer_qa/transkimmer-bert"]
    assert skim["flops_per_example"] < report["models"]["skimmer_qa/dense_packed"]["flops_per_example"]

    # Each row scores what its model answers, window by window, on its own: the baselines compute the dense
    # function of their checkpoint's weights, the Transkimmer row the pruned one.
    examples = load_task_data(get_task("squad"), str(tmp_path / "dev.json")).examples
    expected = {
        "bert_qa": squad_scores_one_window_at_a_time(bert, tokenizer, examples),
        "skimmer_qa": squad_scores_one_window_at_a_time(skimmer, tokenizer, examples, prune_at_inference=False),
        "skimmer_qa/transkimmer-bert": squad_scores_one_window_at_a_time(skimmer, tokenizer, examples),
    }
    for name, row in report["models"].items():
        scores = expected.get(name, expected[name.split("/")[0]])
        assert (row["f1"], row["exact_match"]) == (pytest.approx(scores["f1"]), pytest.approx(scores["exact_match"])), name


def squad_scores_one_window_at_a_time(folder, tokenizer, examples, **config) -> dict[str, float]:
    model = AutoModelForQuestionAnswering.from_pretrained(folder, **config).eval()
    features = prepare_features(tokenizer, examples, max_length=int(MAX_LENGTH), stride=8)
    logits = []
    for feature in range(len(features)):
        inputs = {name: torch.tensor([values[feature]]) for name, values in features.encodings.items()}
        with torch.no_grad():
            out = model(**inputs)
        logits.append((out.start_logits[0].numpy(), out.end_logits[0].numpy()))
    return squad_scores(best_answers(logits, features, examples), examples)


def test_a_sweep_of_a_training_only_key_is_refused(workspace, tmp_path):
    torch.manual_seed(0)
    ltp_folder = save_checkpoint(LTPForSequenceClassification(TESTERS["ltp"].make_config()), workspace["tokenizer"], tmp_path / "ltp")
    with pytest.raises(SystemExit, match="--sweep lambda_threshold: ltp read it only in training"):
        bench_main([ltp_folder, "--task", "sst2", "--data-file", workspace["data"], "--peers", "none",
                    "--sweep", "lambda_threshold=0.01,1", "--output-dir", str(tmp_path / "out"), *FAST])
    assert not (tmp_path / "out").exists()


def test_bench_dtype_casts_the_torch_rows_and_reports_tokens_per_second(workspace, tmp_path):
    out = tmp_path / "bf16"
    bench_main([workspace["bert"], workspace["skimmer"], "--task", "sst2", "--data-file", workspace["data"], "--peers", "none",
                "--baselines", "first", "--dtype", "bfloat16", "--output-dir", str(out), *FAST])
    report = json.loads((out / "bench.json").read_text())
    assert report["settings"]["dtype"] == "bfloat16"
    for row in report["models"].values():
        for figures in row["latency"].values():
            assert figures["tokens_per_s"] > figures["examples_per_s"] > 0 and figures["tokens"] > figures["examples"]
    # bf16 weights give the same predictions as fp32 on this tiny model, within a sentence or two.
    fp32_out = tmp_path / "fp32"
    bench_main([workspace["bert"], "--task", "sst2", "--data-file", workspace["data"], "--peers", "none", "--output-dir", str(fp32_out), *FAST])
    fp32 = json.loads((fp32_out / "bench.json").read_text())["models"]["bert/dense_packed"]["accuracy"]
    assert abs(report["models"]["bert/dense_packed"]["accuracy"] - fp32) <= 2 / 12


def test_bench_dtype_refuses_rows_that_time_their_own_fp32_graphs(workspace, tmp_path):
    with pytest.raises(SystemExit, match=r"--dtype float16 casts the torch rows; the peers \(--peers all\)"):
        bench_main([workspace["bert"], "--task", "sst2", "--data-file", workspace["data"], "--dtype", "float16",
                    "--output-dir", str(tmp_path / "out"), *FAST])


def test_int8_rows_on_a_torch_without_torch_ao_quantization_name_the_supported_routes(workspace, tmp_path, monkeypatch):
    monkeypatch.delattr(torch.ao.quantization, "quantize_dynamic")  # as torch announces for a later release
    with pytest.raises(SystemExit, match=r"--int8: torch .* has no torch.ao dynamic quantization .*export --int8.*OpenVINO"):
        bench_main([workspace["bert"], "--task", "sst2", "--data-file", workspace["data"], "--int8", "--peers", "none",
                    "--output-dir", str(tmp_path / "out"), *FAST])
    assert not (tmp_path / "out").exists()
