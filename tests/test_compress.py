"""`compressed-bert` and `transformers-prune compress` (svd, fwsvd, pruning): exactness at full rank, sizes and
parameter counts, the report, save/reload, loading without the package, training with `Trainer`, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
    Trainer,
    TrainingArguments,
)

from transformers_prune.cli import main
from transformers_prune.compress import rank_for_ratio
from transformers_prune.models.modeling_compressed_bert import LowRankEmbedding, LowRankLinear, PrunedEmbedding, PrunedLinear

from conftest import TINY_CONFIG_KWARGS, DictDataset, make_batch, save_checkpoint, write_sst2_csv, write_tokenizer
from test_checkpoints import load_without_package

HEADS = {
    "classifier": (BertForSequenceClassification, AutoModelForSequenceClassification),
    "qa": (BertForQuestionAnswering, AutoModelForQuestionAnswering),
    "encoder": (BertModel, AutoModel),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    tokenizer = write_tokenizer(folder)
    torch.manual_seed(0)
    return {name: save_checkpoint(cls(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, folder / name) for name, (cls, _) in HEADS.items()}


def compress(source, output_dir, *options):
    main(["compress", str(source), str(output_dir), *options])
    return json.loads((output_dir / "compression_report.json").read_text())


def outputs(model, input_ids, attention_mask):
    with torch.no_grad():
        out = model.eval()(input_ids, attention_mask=attention_mask)
    return out.logits if "logits" in out else out.start_logits if "start_logits" in out else out.last_hidden_state


@pytest.mark.parametrize("head", sorted(HEADS))
def test_full_rank_svd_reproduces_the_original(head, sources, tmp_path):
    compress(sources[head], tmp_path / "svd", "--method", "svd", "--targets", "query", "key", "value",
             "attention_output", "intermediate", "output", "word_embeddings", "--rank", "32")
    hf_class, auto_class = HEADS[head]
    compressed = auto_class.from_pretrained(tmp_path / "svd")
    assert type(compressed).__name__.startswith("CompressedBert")
    assert isinstance(compressed.base_model.encoder.layer[1].output.dense, LowRankLinear)
    assert isinstance(compressed.base_model.embeddings.word_embeddings, LowRankEmbedding)
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    original = outputs(hf_class.from_pretrained(sources[head]), input_ids, attention_mask)
    assert (outputs(compressed, input_ids, attention_mask) - original).abs().max() <= 1e-4


def test_ranks_and_parameter_counts_follow_the_ratio(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "svd", "--method", "svd", "--targets", "key", "intermediate",
                      "--layers", "0", "2", "--ratio", "3")
    assert set(report["modules"]) == {f"encoder.layer.{l}.{m}" for l in (0, 2) for m in ("attention.self.key", "intermediate.dense")}
    for module in report["modules"].values():
        rows, cols = module["shape"]
        assert module["rank"] == math.floor(rows * cols / (3 * (rows + cols))) == rank_for_ratio(rows, cols, 3)
        assert module["params_after"] == module["rank"] * (rows + cols) and module["params_before"] == rows * cols
        assert 0 < module["relative_error"] < 1
    stored = load_file(tmp_path / "svd" / "model.safetensors")
    key = "bert.encoder.layer.2.attention.self.key"
    rank = report["modules"]["encoder.layer.2.attention.self.key"]["rank"]
    assert rank == 5 and stored[f"{key}.down.weight"].shape == (5, 32) and stored[f"{key}.up.weight"].shape == (32, 5)
    assert f"{key}.weight" not in stored and "bert.encoder.layer.1.attention.self.key.weight" in stored
    totals = report["compressed_modules"]
    assert totals["ratio"] == pytest.approx(totals["params_before"] / totals["params_after"]) and totals["ratio"] > 2.5


def test_pruning_keeps_the_largest_weights_and_they_stay_pruned_in_training(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "pruned", "--method", "pruning", "--targets", "output", "word_embeddings", "--ratio", "4")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned")
    dense = model.bert.encoder.layer[0].output.dense
    assert isinstance(dense, PrunedLinear) and isinstance(model.bert.embeddings.word_embeddings, PrunedEmbedding)
    assert int(dense.mask.sum()) == report["modules"]["encoder.layer.0.output.dense"]["params_after"] == 37 * 32 // 4
    original = BertForSequenceClassification.from_pretrained(sources["classifier"]).bert.encoder.layer[0].output.dense.weight
    assert original.abs()[dense.mask].min() >= original.abs()[~dense.mask].max()

    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2), seq_len=12, vocab_size=26)
    args = TrainingArguments(output_dir=str(tmp_path / "train"), use_cpu=True, report_to="none", max_steps=2,
                             per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True, learning_rate=1e-2)
    Trainer(model=model, args=args, train_dataset=DictDataset(input_ids, attention_mask, torch.randint(0, 2, (8,)))).train()
    effective = dense.weight * dense.mask
    assert (effective[~dense.mask] == 0).all() and not torch.equal(dense.weight[dense.mask], original[dense.mask])


def test_fwsvd_weights_rows_by_fisher(sources, tmp_path):
    data = write_sst2_csv(tmp_path / "train.csv", rows=8)
    plain = compress(sources["classifier"], tmp_path / "svd", "--method", "svd", "--targets", "key", "--rank", "3")
    weighted = compress(sources["classifier"], tmp_path / "fwsvd", "--method", "fwsvd", "--targets", "key", "--rank", "3",
                        "--data-file", data)
    for path, module in weighted["modules"].items():
        # Plain SVD is the best unweighted rank-3 fit, so the Fisher-weighted one can only be worse on it.
        assert module["relative_error"] >= plain["modules"][path]["relative_error"] - 1e-9
    assert any(weighted["modules"][p]["relative_error"] > plain["modules"][p]["relative_error"] + 1e-6 for p in plain["modules"])
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "fwsvd")
    input_ids, attention_mask = make_batch((1, 12, 5), vocab_size=26)
    assert torch.isfinite(outputs(model, input_ids, attention_mask)).all()


def test_compressed_checkpoint_loads_without_the_package(sources, tmp_path):
    compress(sources["classifier"], tmp_path / "svd", "--method", "svd", "--targets", "key", "output", "--ratio", "2")
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    expected = outputs(AutoModelForSequenceClassification.from_pretrained(tmp_path / "svd"), input_ids, attention_mask)
    (remote,) = load_without_package([[str(tmp_path / "svd"), "AutoModelForSequenceClassification"]], input_ids, attention_mask, tmp_path / "modules")
    torch.testing.assert_close(torch.tensor(remote[0]), expected, rtol=0, atol=1e-6)
    assert "compressed-bert" in (tmp_path / "svd" / "README.md").read_text()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--method", "ae", "--targets", "key", "--ratio", "3"], "unknown method 'ae'; available"),
        (["--method", "svd", "--targets", "keys", "--ratio", "3"], r"unknown targets \['keys'\]"),
        (["--method", "svd", "--targets", "key", "--ratio", "0.5"], "ratio must be > 1"),
        (["--method", "svd", "--targets", "key"], "give exactly one of --ratio and --rank"),
        (["--method", "svd", "--targets", "key", "--ratio", "3", "--layers", "7"], r"layers \[7\] do not exist"),
        (["--method", "fwsvd", "--targets", "key", "--ratio", "3"], "fwsvd needs --data-file"),
    ],
)
def test_bad_input_fails_before_anything_is_written(options, message, sources, tmp_path):
    with pytest.raises(SystemExit, match=message):
        main(["compress", sources["classifier"], str(tmp_path / "out"), *options])
    assert not (tmp_path / "out").exists()
