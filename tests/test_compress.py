"""`compressed-bert` and `transformers-prune compress` (svd, fwsvd, pruning, ae, kronecker, tucker): exactness at
full rank, sizes and parameter counts, the report (function measures, SVD baselines, forwards), per-target methods,
the autoencoder's recipes and held-out stopping, Tucker ranks, the Fisher floor, factorised forwards, rebuilding from
the config alone, save/reload, the shared autoencoder decoder, the eval-mode cache, loading without the package,
training with `Trainer`, bad input."""

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

from transformers_prune import CompressedBertConfig
from transformers_prune.benchmark.latency import torch_threads
from transformers_prune_cli import main
from transformers_prune.compression.layouts import decoder_parameter_count, rank_for_ratio
from transformers_prune.models.modeling_compressed_bert import (
    AutoencoderWeight,
    CompressedBertForSequenceClassification,
    FactoredEmbedding,
    FactoredLinear,
    KroneckerSumWeight,
    LowRankEmbedding,
    LowRankLinear,
    SparseWeight,
    TuckerWeight,
    pack_bits,
    unpack_bits,
)

from conftest import (
    CPU_BACKENDS,
    DEFAULT_LENGTHS,
    TINY_CONFIG_KWARGS,
    DictDataset,
    assert_same_outputs,
    make_batch,
    save_checkpoint,
    write_sst2_csv,
    write_tokenizer,
)
from test_checkpoints import load_without_package

HEADS = {
    "classifier": (BertForSequenceClassification, AutoModelForSequenceClassification),
    "qa": (BertForQuestionAnswering, AutoModelForQuestionAnswering),
    "encoder": (BertModel, AutoModel),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """The autoencoder trains tiny MLPs on tiny batches: one thread avoids thread hand-off costs on a busy CPU."""
    with torch_threads(1):
        yield


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
    """The model's main output on real tokens (padding positions zeroed: the packed engine never computes them)."""
    with torch.no_grad():
        out = model.eval()(input_ids, attention_mask=attention_mask)
    if "logits" in out:
        return out.logits
    per_token = out.start_logits if "start_logits" in out else out.last_hidden_state
    real = attention_mask.bool().view(*attention_mask.shape, *[1] * (per_token.dim() - 2))
    return per_token.masked_fill(~real, 0)


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


def test_pruning_stores_the_largest_weights_sparsely_and_they_stay_pruned_in_training(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "pruned", "--method", "pruning", "--targets", "output", "word_embeddings", "--ratio", "4")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned")
    dense = model.bert.encoder.layer[0].output.dense
    assert isinstance(dense.factors, SparseWeight) and isinstance(model.bert.embeddings.word_embeddings.factors, SparseWeight)
    # 37 x 32 weights at ratio 4: 296 numbers, of which the bit mask takes 148 bytes = 37 numbers.
    mask, kept = dense.factors.mask(), 37 * 32 // 4 - 37
    assert int(mask.sum()) == dense.factors.values.numel() == kept
    module = report["modules"]["encoder.layer.0.output.dense"]
    assert module["params_after"] == kept + 37 and module["ratio"] == pytest.approx(4)
    stored = load_file(tmp_path / "pruned" / "model.safetensors")
    prefix = "bert.encoder.layer.0.output.dense"
    assert stored[f"{prefix}.factors.values"].shape == (kept,) and stored[f"{prefix}.factors.mask_bits"].shape == (148,)
    assert f"{prefix}.weight" not in stored
    original = BertForSequenceClassification.from_pretrained(sources["classifier"]).bert.encoder.layer[0].output.dense.weight
    assert original.abs()[mask].min() >= original.abs()[~mask].max()
    with torch.no_grad():
        assert torch.equal(dense.factors(), original * mask)

    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2), seq_len=12, vocab_size=26)
    args = TrainingArguments(output_dir=str(tmp_path / "train"), use_cpu=True, report_to="none", max_steps=2,
                             per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True, learning_rate=1e-2)
    Trainer(model=model, args=args, train_dataset=DictDataset(input_ids, attention_mask, torch.randint(0, 2, (8,)))).train()
    assert dense.factors.mask() is mask  # decoded once, not on every training step
    with torch.no_grad():
        trained = dense.factors()
    assert (trained[~mask] == 0).all() and not torch.equal(trained[mask], original[mask])


@pytest.mark.parametrize("numel", [1, 8, 13, 64])
def test_bit_masks_round_trip(numel):
    mask = torch.rand(numel) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(numel / 8)
    assert torch.equal(unpack_bits(packed, numel), mask)


def test_a_pruning_mask_decoded_under_inference_mode_serves_training():
    factors = SparseWeight(4, 4, kept=4)
    with torch.no_grad():
        factors.mask_bits.copy_(pack_bits(torch.eye(4, dtype=torch.bool)))
    with torch.inference_mode():
        factors.mask()
    factors().sum().backward()
    assert torch.equal(factors.values.grad, torch.ones(4))


def test_a_pruning_mask_that_disagrees_with_its_values_fails_clearly():
    factors = SparseWeight(4, 4, kept=3)
    with torch.no_grad():
        factors.mask_bits.copy_(pack_bits(torch.eye(4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="the pruning mask marks 4 entries but 3 values are stored"):
        factors()


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
        (["--method", "quantization", "--targets", "key", "--ratio", "3"], "unknown method 'quantization'; available"),
        (["--method", "svd", "--targets", "keys", "--ratio", "3"], r"unknown targets \['keys'\]"),
        (["--method", "svd", "--targets", "key", "--ratio", "0.5"], "ratio must be > 1"),
        (["--method", "pruning", "--targets", "key", "--ratio", "40"], "its bit mask alone takes 1/32 of it; use a ratio below 32"),
        (["--method", "svd", "--targets", "key"], "give exactly one of --ratio and --rank"),
        (["--method", "svd", "--targets", "key", "--ratio", "3", "--layers", "7"], r"layers \[7\] do not exist"),
        (["--method", "fwsvd", "--targets", "key", "--ratio", "3"], "fwsvd needs --data-file"),
        (["--method", "tucker", "--targets", "key", "--rank", "3"], "exactly one of --ratio and --tucker-ranks"),
        (["--method", "tucker", "--targets", "key", "--tucker-ranks", "5", "8", "32"], r"--tucker-ranks \[5, 8, 32\] exceed the mode sizes \[4, 8, 32\]"),
        (["--method", "svd", "--targets", "key", "--tucker-ranks", "1", "1", "1"], "--tucker-ranks is for --method tucker"),
        (["--method", "kronecker", "--targets", "key", "--rank", "37"], "at most 36 terms"),
        (["--method", "kronecker", "--targets", "key", "--ratio", "1000"], "too high for a Kronecker sum"),
        (["--method", "ae", "--targets", "key", "--ratio", "30"], "too high for an autoencoder on 96 x 32"),
        (["--method", "ae", "--targets", "key", "--ratio", "3", "--ae-steps", "0"], "--ae-steps, --batch-size and --ae-eval-every must be >= 1"),
        (["--method", "ae", "--targets", "key", "--ratio", "3", "--learning-rate", "-1"], "--learning-rate must be > 0"),
        (["--method", "svd", "--ratio", "3"], "--method svd needs --targets"),
        (["--method", "key=ae", "--targets", "key", "--ratio", "3"], "names the targets itself; drop --targets"),
        (["--method", "key=ae,key=svd", "--ratio", "3"], "each target once"),
        (["--method", "key=ae,output", "--ratio", "3"], "write TARGET=METHOD pairs"),
        (["--method", "key=ae,output=quantization", "--ratio", "3"], "unknown method 'quantization'"),
        (["--method", "keys=svd", "--ratio", "3"], r"unknown targets \['keys'\]"),
        (["--method", "key=tucker,output=svd", "--rank", "3"], "exactly one of --ratio and --tucker-ranks"),
        (["--method", "key=pruning,output=svd", "--rank", "3"], r"pruning takes --ratio"),
        (["--method", "svd", "--targets", "key", "--ratio", "3", "--fisher-floor", "-1"], "--fisher-floor must be >= 0"),
        (["--method", "kronecker", "--targets", "key", "--ratio", "3", "--data-file", "x.csv"], "used by fwsvd and ae only"),
    ],
)
def test_bad_input_fails_before_anything_is_written(options, message, sources, tmp_path):
    with pytest.raises(SystemExit, match=message):
        main(["compress", sources["classifier"], str(tmp_path / "out"), *options])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--heldout-samples", "--fisher-samples"])
def test_counts_below_one_are_refused_by_the_parser(option, sources, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", sources["classifier"], str(tmp_path / "out"), "--method", "svd", "--targets", "key",
              "--ratio", "3", option, "0"])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer > 0, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- ae, kronecker, tucker -------------------------------------------------------------------------------------

NEW_METHODS = {
    "ae": ["--method", "ae", "--ae-steps", "20", "--ae-row-scale", "norm"],
    "ae-separated": ["--method", "ae", "--ae-steps", "20", "--ae-grouping", "separated"],
    "kronecker": ["--method", "kronecker", "--refine-steps", "3"],
    "tucker": ["--method", "tucker", "--refine-steps", "3"],
}
NEW_TARGETS = ["--targets", "key", "output", "word_embeddings"]


@pytest.fixture(scope="module")
def compressed(sources, tmp_path_factory):
    """Method -> (folder, report): the tiny classifier's keys, FFN outputs and word embeddings at ratio 3."""
    folder = tmp_path_factory.mktemp("compressed")
    with torch.random.fork_rng(), torch_threads(1):  # module-scoped: set up before the autouse one-thread fixture
        return {name: (folder / name, compress(sources["classifier"], folder / name, *options, *NEW_TARGETS, "--ratio", "3"))
                for name, options in NEW_METHODS.items()}


def expected_stored(module: dict) -> int:
    """What the layout recorded for a module stores, from the formulas (decoders excluded: stored once apiece)."""
    rows, cols = module["shape"]
    if module["kind"] == "autoencoder":
        return rows * module["latent_size"] + rows  # codes + row lengths
    if module["kind"] == "kronecker":
        p, q = module["factor_shape"]
        return 2 * module["terms"] * p * q
    blocks = math.ceil(rows / module["block_rows"])
    return math.prod(module["ranks"]) + sum(d * r for d, r in zip((blocks, module["block_rows"], cols), module["ranks"]))


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_new_methods_rebuild_from_the_config_alone_and_reload_identically(method, compressed, tmp_path):
    folder, report = compressed[method]
    # The config alone gives every tensor of the checkpoint its shape: nothing is re-solved at load.
    config = CompressedBertConfig.from_pretrained(folder)
    rebuilt = {key: tuple(value.shape) for key, value in CompressedBertForSequenceClassification(config).state_dict().items()}
    stored = {key: tuple(value.shape) for key, value in load_file(folder / "model.safetensors").items()}
    assert rebuilt == stored

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    factors_class = {"ae": AutoencoderWeight, "kronecker": KroneckerSumWeight, "tucker": TuckerWeight}[method.split("-")[0]]
    assert isinstance(model.bert.embeddings.word_embeddings, FactoredEmbedding)
    for layer in model.bert.encoder.layer:
        for module in (layer.attention.self.key, layer.output.dense):
            assert isinstance(module, FactoredLinear) and isinstance(module.factors, factors_class)
    assert model.bert.encoder.layer[0].output.dense.factors().shape == (32, 37)

    for path, module in report["modules"].items():
        assert module["params_after"] == expected_stored(module) and module["params_before"] == math.prod(module["shape"])
        assert module["ratio"] >= 3 and module["relative_error"] > 0
    for decoder in report["decoders"].values():
        spec = config.compressed_decoders[report["modules"][decoder["modules"][0]]["decoder"]]
        assert decoder["params"] == decoder_parameter_count(spec["latent_size"], spec["hidden_sizes"], spec["output_size"])
    for target, figures in report["targets"].items():
        assert figures["ratio"] >= 3, target
    compressed_params = sum(module["params_after"] for module in report["modules"].values())
    assert report["compressed_modules"]["params_after"] == compressed_params + sum(d["params"] for d in report["decoders"].values())
    assert report["model"]["params_after"] == sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if name.endswith("row_scales")
    )

    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    expected = outputs(model, input_ids, attention_mask)
    model.save_pretrained(tmp_path / "again")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "again")
    assert torch.equal(outputs(reloaded, input_ids, attention_mask), expected)


def test_autoencoder_stores_each_shared_decoder_once_with_each_layers_own_norms(compressed, sources):
    folder, report = compressed["ae"]
    assert set(report["decoders"]) == {"key", "output", "word_embeddings"}
    assert report["decoders"]["key"]["modules"] == [f"encoder.layer.{l}.attention.self.key" for l in range(3)]
    stored = load_file(folder / "model.safetensors")
    decoder_keys = sorted(key for key in stored if "decoder" in key)
    # One decoder per module type: 3 Linear layers (weight + bias) each, under compressed_decoders only.
    assert len(decoder_keys) == 3 * 3 * 2 and all(key.startswith("bert.compressed_decoders.") for key in decoder_keys)

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert sorted(key for key in model.state_dict() if key.endswith("layers.0.weight")) == [
        f"bert.compressed_decoders.{name}.layers.0.weight" for name in ("key", "output", "word_embeddings")
    ]
    keys = [layer.attention.self.key.factors for layer in model.bert.encoder.layer]
    assert all(factors.decoder is model.bert.compressed_decoders["key"] for factors in keys)
    # With --ae-row-scale norm each layer rescales its rows to its own original norms (the official code used
    # layer 0's in every layer).
    original = BertForSequenceClassification.from_pretrained(sources["classifier"])
    for layer, factors in enumerate(keys):
        norms = original.bert.encoder.layer[layer].attention.self.key.weight.norm(dim=1)
        torch.testing.assert_close(factors.row_scales, norms)
        torch.testing.assert_close(factors().detach().norm(dim=1), norms, rtol=1e-5, atol=1e-6)

    separated = compressed["ae-separated"][1]
    assert len(separated["decoders"]) == 3 + 3 + 1
    assert separated["modules"]["encoder.layer.0.attention.self.key"]["latent_size"] < report["modules"]["encoder.layer.0.attention.self.key"]["latent_size"]


@pytest.fixture(scope="module")
def every_method(compressed, sources, tmp_path_factory):
    """Method -> folder: `compressed`'s, plus svd and pruning on the same targets at the same ratio."""
    folder = tmp_path_factory.mktemp("closed_form")
    folders = {name: path for name, (path, _) in compressed.items()}
    for method in ("svd", "pruning"):
        compress(sources["classifier"], folder / method, "--method", method, *NEW_TARGETS, "--ratio", "3")
        folders[method] = folder / method
    return folders


@pytest.mark.parametrize("method", ["pruning", "ae", "kronecker", "tucker"])
def test_eval_cache_equals_the_training_forward_and_follows_weight_changes(method, every_method):
    model = AutoModelForSequenceClassification.from_pretrained(every_method[method])
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    key = model.bert.encoder.layer[1].attention.self.key
    embeddings = model.bert.embeddings.word_embeddings

    def training_forward():  # dropout is 0 in the tiny config: train mode differs only in rebuilding the weights
        with torch.no_grad():
            return model.train()(input_ids, attention_mask=attention_mask).logits

    reference = training_forward()
    assert key._cached is None
    cached = outputs(model, input_ids, attention_mask)
    assert key._cached is not None and embeddings._cached is not None
    assert (cached - reference).abs().max() <= 1e-5
    stale = key._cached
    with torch.inference_mode():  # the cache is reused, also under inference_mode
        assert torch.equal(model(input_ids, attention_mask=attention_mask).logits, cached)
    assert key._cached is stale

    with torch.no_grad():  # an in-place change (an optimizer step, load_state_dict) invalidates the cache
        key.factors.stored_tensors()[0].mul_(1.5)
    changed = outputs(model, input_ids, attention_mask)
    assert key._cached is not stale and not torch.equal(changed, cached)
    assert (changed - training_forward()).abs().max() <= 1e-5
    model.load_state_dict(AutoModelForSequenceClassification.from_pretrained(every_method[method]).state_dict())
    assert (outputs(model, input_ids, attention_mask) - cached).abs().max() <= 1e-6
    model.train()
    assert key._cached is None and embeddings._cached is None


@pytest.mark.parametrize("method, options, full", [
    ("kronecker", ["--rank", "36"], "36 terms of 6 x 6 factors"),
    ("tucker", ["--tucker-ranks", "4", "8", "32"], "ranks equal to the mode sizes"),
])
def test_full_size_kronecker_and_tucker_reproduce_the_original(method, options, full, sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / method, "--method", method, "--targets", "key", *options)
    assert all(module["relative_error"] < 1e-5 for module in report["modules"].values()), full
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    original = outputs(BertForSequenceClassification.from_pretrained(sources["classifier"]), input_ids, attention_mask)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / method)
    assert (outputs(model, input_ids, attention_mask) - original).abs().max() <= 1e-4


@pytest.mark.parametrize("recipe", ["autodecoder", "paper"])
def test_autoencoder_training_is_seeded_and_lowers_the_loss(recipe, sources, tmp_path):
    options = ["--method", "ae", "--targets", "key", "--ratio", "2", "--batch-size", "8", "--ae-recipe", recipe, "--heldout-file", ""]
    short, same = (compress(sources["classifier"], tmp_path / name, *options, "--ae-steps", "5") for name in ("a", "b"))
    longer = compress(sources["classifier"], tmp_path / "c", *options, "--ae-steps", "300")
    assert short["modules"] == same["modules"]
    assert longer["targets"]["key"]["mean_cosine"] > short["targets"]["key"]["mean_cosine"]
    training = longer["decoders"]["key"]["training"]
    assert training["recipe"] == recipe and training["steps"] == training["kept_step"] == 300 and training["selection"] is None


def test_autoencoder_weights_rows_by_fisher_from_a_data_file(sources, tmp_path):
    options = ["--method", "ae", "--targets", "key", "--ratio", "2", "--ae-steps", "30", "--heldout-file", ""]
    plain = compress(sources["classifier"], tmp_path / "plain", *options)
    weighted = compress(sources["classifier"], tmp_path / "weighted", *options, "--data-file", write_sst2_csv(tmp_path / "train.csv", rows=8))
    assert weighted["modules"].keys() == plain["modules"].keys() and weighted["modules"] != plain["modules"]
    assert {m["latent_size"] for m in weighted["modules"].values()} == {m["latent_size"] for m in plain["modules"].values()}


@pytest.mark.parametrize("method", ["ae", "kronecker", "tucker"])
def test_new_methods_train_with_trainer(method, compressed, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(compressed[method][0])
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2), seq_len=12, vocab_size=26)
    args = TrainingArguments(output_dir=str(tmp_path / "train"), use_cpu=True, report_to="none", max_steps=2,
                             per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True, learning_rate=1e-2)
    trainer = Trainer(model=model, args=args, train_dataset=DictDataset(input_ids, attention_mask, torch.randint(0, 2, (8,))))
    assert math.isfinite(trainer.train().training_loss)
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(".key.factors." in name for name in changed) and any("word_embeddings.factors." in name for name in changed)
    if method == "ae":
        assert any(name.startswith("bert.compressed_decoders.key.") for name in changed)
        assert not any(name.endswith("row_scales") for name in changed)  # lengths are buffers: stored, not trained


def test_autoencoder_checkpoint_loads_without_the_package(compressed, tmp_path):
    folder = compressed["ae"][0]
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    expected = outputs(AutoModelForSequenceClassification.from_pretrained(folder), input_ids, attention_mask)
    (remote,) = load_without_package([[str(folder), "AutoModelForSequenceClassification"]], input_ids, attention_mask, tmp_path / "modules")
    torch.testing.assert_close(torch.tensor(remote[0]), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "modules, decoders, message",
    [
        ({"p": {"kind": "sparse"}}, None, r"kind must be one of \('low_rank', 'pruned', 'autoencoder', 'kronecker', 'tucker'\)"),
        ({"p": {"kind": "tucker", "block_rows": 8, "ranks": [1, 2]}}, None, r"\['ranks'\]=\[1, 2\] is invalid; ranks must be three integers > 0"),
        ({"p": {"kind": "kronecker", "terms": 0, "factor_shape": [6, 6]}}, None, r"\['terms'\]=0 is invalid; terms must be an integer > 0"),
        ({"p": {"kind": "kronecker", "terms": 2, "factor_shape": [6, 6], "rank": 3}}, None, r"unknown keys \['rank'\]; allowed: \['terms', 'factor_shape'\]"),
        ({"p": {"kind": "autoencoder", "decoder": "key", "latent_size": 3}}, None, r"\['decoder'\]='key'; allowed: the keys of compressed_decoders \[\]"),
        ({"p": {"kind": "autoencoder", "decoder": "key", "latent_size": 3}}, {"key": {"latent_size": 4, "hidden_sizes": [8], "output_size": 32}},
         "differs from its decoder's latent_size 4"),
        ({}, {"key": {"latent_size": 4, "hidden_sizes": [8, -1], "output_size": 32}}, r"\['hidden_sizes'\]=\[8, -1\] is invalid"),
        ({}, {"a.b": {"latent_size": 4, "hidden_sizes": [8], "output_size": 32}}, "must be a Python identifier"),
    ],
)
def test_bad_layouts_fail_in_the_config(modules, decoders, message):
    with pytest.raises(ValueError, match=message):
        CompressedBertConfig(**TINY_CONFIG_KWARGS, compressed_modules=modules, compressed_decoders=decoders)


# --- inference on the packed token engine ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("method", ["svd", "pruning", "ae", "kronecker", "tucker"])
def test_packed_inference_equals_berts_own_forward_on_real_tokens(method, backend, every_method):
    packed = AutoModelForSequenceClassification.from_pretrained(every_method[method], packed_attention_backend=backend).eval()
    own = AutoModelForSequenceClassification.from_pretrained(every_method[method], inference_engine="hf").eval()
    input_ids, attention_mask = make_batch(DEFAULT_LENGTHS, vocab_size=26)
    with torch.no_grad():
        ours = packed.bert(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        reference = own.bert(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        logits = packed(input_ids, attention_mask=attention_mask).logits
        reference_logits = own(input_ids, attention_mask=attention_mask).logits
    assert len(ours.hidden_states) == len(reference.hidden_states) == 4
    assert_same_outputs(ours, reference, attention_mask, atol=1e-5, every_layer=True)
    torch.testing.assert_close(logits, reference_logits, rtol=0, atol=1e-5)
    # The packed engine ran: it never computes padding positions, BERT's own forward does.
    padding = ~attention_mask.bool()
    assert ours.last_hidden_state[padding].abs().max() == 0 < reference.last_hidden_state[padding].abs().max()


def test_packed_question_answering_spans_equal_berts_own_on_real_tokens(sources, tmp_path):
    compress(sources["qa"], tmp_path / "qa", "--method", "svd", *NEW_TARGETS, "--ratio", "3")
    input_ids, attention_mask = make_batch(DEFAULT_LENGTHS, vocab_size=26)
    packed = outputs(AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa"), input_ids, attention_mask)
    own = outputs(AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa", inference_engine="hf"), input_ids, attention_mask)
    torch.testing.assert_close(packed, own, rtol=0, atol=1e-5)


def test_attentions_and_training_take_berts_own_forward(every_method):
    # HF's BERT forms attention maps with eager attention only (sdpa warns and returns none).
    model = AutoModelForSequenceClassification.from_pretrained(every_method["svd"], attn_implementation="eager").eval()
    input_ids, attention_mask = make_batch(DEFAULT_LENGTHS, vocab_size=26)
    assert model.bert.runs_packed({}) and not model.bert.runs_packed({"output_attentions": True})
    with torch.no_grad():
        with_maps = model(input_ids, attention_mask=attention_mask, output_attentions=True)
        packed = model(input_ids, attention_mask=attention_mask)
    assert len(with_maps.attentions) == 3 and with_maps.attentions[0].shape == (5, 4, 12, 12)
    torch.testing.assert_close(with_maps.logits, packed.logits, rtol=0, atol=1e-5)
    assert not model.train().bert.runs_packed({})


def test_packed_engine_rejects_bad_inputs_and_settings(every_method):
    model = AutoModelForSequenceClassification.from_pretrained(every_method["svd"]).eval()
    input_ids, attention_mask = make_batch((1, 12, 5), vocab_size=26)
    attention_mask[1] = 0
    with pytest.raises(ValueError, match=r"examples \[1\] are all padding"):
        model(input_ids, attention_mask=attention_mask)
    with pytest.raises(ValueError, match=r"attention_mask shape \(3, 11\) does not match inputs \(3, 12\)"):
        model(input_ids, attention_mask=attention_mask[:, :11])
    with pytest.raises(ValueError, match=r"inference_engine='masked' is invalid; allowed: \('packed', 'hf'\)"):
        AutoModelForSequenceClassification.from_pretrained(every_method["svd"], inference_engine="masked")
    with pytest.raises(ValueError, match="packed_attention_backend='flash' is invalid"):
        CompressedBertConfig(**TINY_CONFIG_KWARGS, packed_attention_backend="flash")


def test_layouts_that_do_not_fit_the_matrix_fail_at_build():
    path = "encoder.layer.0.attention.self.key"
    for spec, message in [
        ({"kind": "kronecker", "terms": 2, "factor_shape": [5, 6]}, "Kronecker factors 5 x 6 cannot cover a 32 x 32 matrix"),
        ({"kind": "tucker", "block_rows": 8, "ranks": [5, 8, 8]}, r"Tucker ranks \[5, 8, 8\] exceed the tensor's mode sizes \[4, 8, 32\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            CompressedBertForSequenceClassification(CompressedBertConfig(**TINY_CONFIG_KWARGS, compressed_modules={path: spec}))


# --- per-target methods, the report's function measures and baselines ---------------------------------------------


def test_each_target_gets_its_own_method_and_the_report_says_which(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "mixed", "--method", "key=ae,output=svd,word_embeddings=pruning",
                      "--ratio", "3", "--ae-steps", "10", "--heldout-samples", "8")
    assert report["methods"] == {"key": "ae", "output": "svd", "word_embeddings": "pruning"}
    assert {target: figures["method"] for target, figures in report["targets"].items()} == report["methods"]
    assert report["modules"]["encoder.layer.2.output.dense"]["method"] == "svd"
    assert set(report["decoders"]) == {"key"}
    config = CompressedBertConfig.from_pretrained(tmp_path / "mixed")
    assert config.compression_method == "word_embeddings=pruning,key=ae,output=svd" or config.compression_method == report["method"]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "mixed")
    layer = model.bert.encoder.layer[1]
    assert isinstance(layer.attention.self.key.factors, AutoencoderWeight) and isinstance(layer.output.dense, LowRankLinear)
    assert isinstance(model.bert.embeddings.word_embeddings.factors, SparseWeight)
    assert isinstance(layer.attention.self.query, torch.nn.Linear)


def test_the_report_measures_function_on_heldout_sentences_and_compares_with_svd_baselines(sources, tmp_path):
    heldout = ["--heldout-samples", "8"]
    exact = compress(sources["classifier"], tmp_path / "exact", "--method", "svd", "--targets", "key", "word_embeddings", "--rank", "32", *heldout)
    measure = exact["function_measure"]
    assert measure["sentences"] == measure["selection_sentences"] == 8 and measure["file"].endswith("sst2_train_8k.csv")
    for function in (exact["function"], *(target["function"] for target in exact["targets"].values())):
        assert function["hidden_cosine"] == pytest.approx(1, abs=1e-5) and function["prediction_agreement"] == 1
    lossy = compress(sources["classifier"], tmp_path / "lossy", "--method", "svd", "--targets", "key", "output", "--ratio", "4", *heldout)
    assert lossy["function"]["hidden_cosine"] < min(target["function"]["hidden_cosine"] for target in lossy["targets"].values()) < 1
    for target, figures in lossy["targets"].items():
        baselines = figures["baselines_at_same_ratio"]
        # Plain SVD's own target reached its ratio exactly, so its per-matrix baseline is itself.
        assert baselines["svd"]["relative_error"] == pytest.approx(figures["relative_error"], rel=1e-5)
        assert baselines["svd"]["mean_cosine"] == pytest.approx(figures["mean_cosine"], rel=1e-5)
        # Rescaling SVD's rows to the true norms moves them off the projection: the error can only grow.
        assert baselines["svd_true_norms"]["relative_error"] >= baselines["svd"]["relative_error"]
        rows, cols = figures_shape = lossy["modules"][f"encoder.layer.0.{ {'key': 'attention.self.key', 'output': 'output.dense'}[target]}"]["shape"]
        assert baselines["shared_basis_svd"]["rank"] == math.floor(3 * rows * cols / (figures["ratio"] * (3 * rows + cols)))
        assert 0 < baselines["shared_basis_svd"]["relative_error"] < 1 and figures_shape


def test_without_heldout_text_the_report_has_no_function_measure(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "svd", "--method", "svd", "--targets", "key", "--ratio", "3", "--heldout-file", "")
    assert report["function"] is None and report["function_measure"] is None and report["targets"]["key"]["function"] is None


def test_too_few_heldout_sentences_fail_before_anything_is_written(sources, tmp_path):
    data = write_sst2_csv(tmp_path / "few.csv", rows=10)
    with pytest.raises(SystemExit, match=r"has 10 sentences in 'sentence'; 16 are needed"):
        main(["compress", sources["classifier"], str(tmp_path / "out"), "--method", "svd", "--targets", "key", "--ratio", "3",
              "--heldout-file", data, "--heldout-samples", "8"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("head", ["qa", "encoder"])
@pytest.mark.parametrize("options", [["--method", "fwsvd"], ["--method", "ae"]])
def test_data_driven_methods_refuse_checkpoints_without_a_sequence_classifier_loss(head, options, sources, tmp_path):
    data = write_sst2_csv(tmp_path / "train.csv", rows=4)
    with pytest.raises(SystemExit, match=r"with --data-file weight rows by a sequence classifier's task loss; .* is a Bert"):
        main(["compress", sources[head], str(tmp_path / "out"), *options, "--targets", "key", "--ratio", "3", "--data-file", data])
    assert not (tmp_path / "out").exists()


def test_the_fisher_floor_gives_rows_the_sample_never_reaches_a_weight(sources, tmp_path):
    from transformers import AutoTokenizer

    from transformers_prune.compression.fitting import fisher_row_weights

    model = BertForSequenceClassification.from_pretrained(sources["classifier"])
    tokenizer = AutoTokenizer.from_pretrained(sources["classifier"])
    data = write_sst2_csv(tmp_path / "train.csv", rows=3)
    paths = ["embeddings.word_embeddings", "encoder.layer.0.attention.self.key"]
    bare = fisher_row_weights(model, data, tokenizer, paths, 3, 32, floor=0.0)
    floored = fisher_row_weights(model, data, tokenizer, paths, 3, 32, floor=0.5)
    embedding = bare["embeddings.word_embeddings"]
    unseen = embedding == 1e-12  # no token of the sample: no gradient
    assert unseen.any() and not unseen.all()
    mean = (embedding[~unseen] ** 2).sum() / embedding.numel()
    torch.testing.assert_close(floored["embeddings.word_embeddings"][unseen], (0.5 * mean).sqrt().expand(int(unseen.sum())))
    reached = embedding ** 2 >= 0.5 * mean
    torch.testing.assert_close(floored["embeddings.word_embeddings"][reached], embedding[reached])


# --- the autoencoder's recipes ------------------------------------------------------------------------------------


def _key_rows(sources) -> torch.Tensor:
    model = BertForSequenceClassification.from_pretrained(sources["classifier"])
    return torch.cat([layer.attention.self.key.weight.detach() for layer in model.bert.encoder.layer])


def test_the_autodecoder_recipe_fits_better_than_the_papers_in_the_same_steps(sources):
    from transformers_prune.compression.autoencoder import AutoencoderRecipe, train_autoencoder
    from transformers_prune.models.modeling_compressed_bert import RowDecoder, decode_rows

    rows = _key_rows(sources)  # [96, 32]
    errors = {}
    for recipe in ("autodecoder", "paper"):
        decoder = RowDecoder(6, [12, 24], 32)
        trained = train_autoencoder(rows, decoder, AutoencoderRecipe(recipe, steps=200))
        with torch.no_grad():
            errors[recipe] = float(torch.linalg.norm(decode_rows(decoder, trained.codes, trained.row_scales) - rows) / torch.linalg.norm(rows))
    assert errors["autodecoder"] < errors["paper"]


def test_fitted_row_lengths_are_the_least_squares_ones(sources):
    from transformers_prune.compression.autoencoder import AutoencoderRecipe, train_autoencoder
    from transformers_prune.models.modeling_compressed_bert import RowDecoder, decode_rows

    rows = _key_rows(sources)
    decoder = RowDecoder(6, [12, 24], 32)
    trained = train_autoencoder(rows, decoder, AutoencoderRecipe(steps=30))
    with torch.no_grad():
        directions = decoder(trained.codes)
        torch.testing.assert_close(trained.row_scales, rows.norm(dim=1) * torch.nn.functional.cosine_similarity(directions, rows, dim=1))
        error = lambda scales: float((decode_rows(decoder, trained.codes, scales) - rows).norm())  # noqa: E731
        assert error(trained.row_scales) < min(error(trained.row_scales * 1.01), error(trained.row_scales * 0.99), error(rows.norm(dim=1)))


def test_the_heldout_signal_chooses_the_kept_step(sources):
    from transformers_prune.compression.autoencoder import AutoencoderRecipe, train_autoencoder
    from transformers_prune.models.modeling_compressed_bert import RowDecoder, decode_rows

    rows = _key_rows(sources)
    scored = []

    def prefers_the_third_score(approximation):
        scored.append(approximation.clone())
        return -abs(len(scored) - 3)

    decoder = RowDecoder(6, [12, 24], 32)
    trained = train_autoencoder(rows, decoder, AutoencoderRecipe(steps=50, eval_every=10), selection=prefers_the_third_score)
    assert len(scored) == 5 and trained.selected_step == 30 and trained.selection_score == 0 and trained.steps == 50
    with torch.no_grad():  # the decoder, codes and lengths kept are those scored at step 30, not the last ones
        torch.testing.assert_close(decode_rows(decoder, trained.codes, trained.row_scales), scored[2])
    assert not torch.allclose(scored[2], scored[-1])


def test_compress_keeps_the_autoencoder_step_that_agrees_best_on_heldout_sentences(sources, tmp_path):
    report = compress(sources["classifier"], tmp_path / "ae", "--method", "ae", "--targets", "key", "--ratio", "2",
                      "--ae-steps", "40", "--ae-eval-every", "10", "--heldout-samples", "8")
    training = report["decoders"]["key"]["training"]
    assert training["selection"]["signal"].startswith("hidden_cosine") and 0 < training["selection"]["score"] <= 1
    assert training["kept_step"] in (10, 20, 30, 40) and training["batch_size"] == 96 and training["row_scale"] == "fitted"


# --- Tucker ranks and factorised forwards ------------------------------------------------------------------------


def test_tucker_ranks_compress_the_mode_that_has_low_rank():
    from transformers_prune.compression.layouts import blocked_tensor, tucker_parameter_count, tucker_ranks_for_budget

    torch.manual_seed(0)
    weight = torch.randn(128, 4) @ torch.randn(4, 16)  # rank 4 in the columns; blocks and rows in a block are full rank
    tensor = blocked_tensor(weight, 16)  # [8, 16, 16]
    budget = tucker_parameter_count([8, 16, 16], [8, 16, 4])
    assert tucker_ranks_for_budget(tensor, budget) == [8, 16, 4]
    factors = TuckerWeight(128, 16, 16, [8, 16, 4])
    from transformers_prune.compression.fitting import fit_tucker

    fit_tucker(factors, weight)
    with torch.no_grad():
        assert float(torch.linalg.norm(factors() - weight) / torch.linalg.norm(weight)) < 1e-5


def _random_factors(factors):
    torch.manual_seed(0)
    for parameter in factors.parameters():
        torch.nn.init.normal_(parameter)
    return factors


@pytest.mark.parametrize("factors, factorised", [
    (TuckerWeight(37, 32, 8, [3, 5, 7]), True),  # (37 + 32) x 7 multiply-adds per token < 37 x 32
    (KroneckerSumWeight(37, 30, 2, [7, 6]), True),  # 2 x 7 x 6 x 13 = 1092 < 1110
    (KroneckerSumWeight(37, 30, 3, [7, 6]), False),  # 1638 > 1110: the dense weight is cheaper
    (SparseWeight(37, 32, 300), False),  # pruned weights always run dense
])
def test_a_linear_runs_its_factorised_product_exactly_when_it_costs_fewer_flops(factors, factorised):
    from torch.utils.flop_counter import FlopCounterMode

    factors = _random_factors(factors)
    if isinstance(factors, SparseWeight):
        with torch.no_grad():
            factors.mask_bits.copy_(pack_bits(torch.arange(37 * 32).view(37, 32) < 300))
    module = FactoredLinear(factors).eval()
    assert module.factorised is factorised
    hidden = torch.randn(2, 5, factors.shape[1])
    with torch.no_grad():
        expected = hidden @ factors().T + module.bias
        module(hidden)  # the first call builds the cache (a one-time cost)
        with FlopCounterMode(display=False) as counter:
            out = module(hidden)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    macs = factors.linear_macs() if factorised else factors.shape[0] * factors.shape[1]
    assert counter.get_total_flops() == 2 * macs * 10


def test_factorised_tucker_modules_train_and_cache_their_operands(every_method):
    model = AutoModelForSequenceClassification.from_pretrained(every_method["tucker"])
    key = model.bert.encoder.layer[0].attention.self.key
    assert key.factorised
    input_ids, attention_mask = make_batch((1, 12, 5, 9), vocab_size=26)
    model.train()(input_ids, attention_mask=attention_mask).logits.sum().backward()
    assert key.factors.core.grad is not None and key._cached is None
    outputs(model, input_ids, attention_mask)
    left, column_factor = key._cached
    assert left.shape == (32, key.factors.core.shape[2]) and column_factor is not None
