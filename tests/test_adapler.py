"""`adapler-bert`'s own behaviour: eta_scale's trade of tokens, the soft mask's limit, eta's bounds and learning
speed, which loss reaches which parameters, the sharpness schedule, the saliency command against a direct
autograd computation (also for sentence pairs and a regression model), the saliency -> finetune path, and loading
BERT. What every token-pruning type shares (engine parity, pruning off equals BERT, save/load, validation) is in
`test_common.py`."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from safetensors.torch import load_file

from transformers_prune import AdapLeRConfig, AdapLeRForSequenceClassification, AdapLeRModel
from transformers_prune_cli import main
from transformers_prune.models.modeling_adapler import soft_removal_log_mask
from transformers_prune.training.saliency import token_saliency

from conftest import TINY_CONFIG_KWARGS, WORDS, DictDataset, make_batch, run, save_checkpoint, write_sst2_csv, write_tokenizer
from model_testers import TESTERS

LENGTHS = (1, 12, 5, 9, 3, 11)
LABELS = torch.tensor([0, 1, 0, 1, 1, 0])


TESTER = TESTERS["adapler-bert"]
make_config = TESTER.make_config


def dropping_model(head: str = "base", **overrides):
    """Random predictors with uneven shares, so eta / n really drops some tokens."""
    return TESTER.make_model(head, **overrides)


# ----------------------------------------------------------------------------------------------- inference


def test_cls_is_never_dropped_and_eta_scale_trades_tokens():
    model = dropping_model(eta_init=0.99)
    input_ids, attention_mask = make_batch(LENGTHS)
    kept = {}
    for scale in (0.5, 1.0, 1000.0):
        model.config.eta_scale = scale
        kept[scale] = run(model, input_ids, attention_mask).tokens_per_layer
    assert (kept[0.5] >= kept[1.0]).all() and (kept[1.0] > kept[1000.0]).any()
    assert torch.equal(kept[1000.0][:, -1], torch.ones(len(LENGTHS), dtype=torch.long))  # only [CLS] is left


# ----------------------------------------------------------------------------------------------- training


def test_soft_mask_tends_to_the_hard_mask_as_sharpness_grows():
    generator = torch.Generator().manual_seed(0)
    shares = torch.rand(4, 20, generator=generator) / 10
    thresholds = torch.full((4, 1), 0.05)
    hard = (shares >= thresholds).float()
    clear = (shares - thresholds).abs() > 1e-3  # away from the kink
    errors = [(torch.exp(soft_removal_log_mask(shares, thresholds, s, 0.1)) - hard)[clear].abs().max().item() for s in (10, 1e3, 1e6)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6
    assert (soft_removal_log_mask(shares, thresholds, 10, 0.1) <= 0).all()


def test_soft_training_forward_matches_hard_removal_at_extreme_sharpness():
    model = dropping_model("sequence_classification")
    input_ids, attention_mask = make_batch(LENGTHS)
    hard = run(model, input_ids, attention_mask, "masked")
    model.train()
    model.base_model.encoder.sharpness = 1e9
    soft = model(input_ids, attention_mask=attention_mask)
    assert torch.equal(soft.tokens_per_layer, hard.tokens_per_layer)


def test_losses_reach_the_parameters_they_should():
    input_ids, attention_mask = make_batch(LENGTHS)
    saliency = torch.rand(len(LENGTHS), 16)  # stored longer than the batch: the model reads the first S positions
    encoder_of = lambda model: model.base_model.encoder  # noqa: E731

    # The length term (phi) trains eta only.
    model = dropping_model("sequence_classification", gamma=0.0, phi=1.0).train()
    model(input_ids, attention_mask=attention_mask, saliency=saliency).pruning_loss.backward()
    assert (encoder_of(model).eta_logits.grad != 0).all()
    assert all(p.grad is None or (p.grad == 0).all() for p in encoder_of(model).contribution_predictors.parameters())

    # The KL term (gamma) trains the predictors (and BERT beneath them). Its only way to eta is through the hidden
    # states of later layers, so the last layer's eta, which no later layer's KL sees, gets nothing.
    model = dropping_model("sequence_classification", gamma=1.0, phi=0.0).train()
    model(input_ids, attention_mask=attention_mask, saliency=saliency).pruning_loss.backward()
    assert encoder_of(model).eta_logits.grad[-1] == 0
    assert encoder_of(model).contribution_predictors[0].output.weight.grad.abs().sum() > 0

    # The task loss reaches the predictors through the soft mask, and eta.
    model = dropping_model("sequence_classification", gamma=0.0, phi=0.0).train()
    out = model(input_ids, attention_mask=attention_mask, labels=LABELS)
    out.loss.backward()
    assert encoder_of(model).contribution_predictors[1].output.weight.grad.abs().sum() > 0
    assert encoder_of(model).eta_logits.grad.abs().sum() > 0


def kl_gradients(**overrides):
    """Gradients of the KL term alone (gamma 1, phi 0) on a batch that drops tokens, seeded identically."""
    torch.manual_seed(0)
    model = dropping_model("sequence_classification", gamma=1.0, phi=0.0, **overrides).train()
    model.base_model.encoder.set_training_progress(0.3)  # a sharp enough mask for its gradient to matter
    input_ids, attention_mask = make_batch(LENGTHS)
    torch.manual_seed(1)
    saliency = torch.rand(len(LENGTHS), 12)
    model(input_ids, attention_mask=attention_mask, saliency=saliency).pruning_loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def test_kl_reaches_earlier_predictors_through_the_mask_but_never_eta_or_theta():
    through, detached = kl_gradients(), kl_gradients(kl_through_mask=False, train_theta=False)
    first_predictor = "bert.encoder.contribution_predictors.0.output.weight"
    # Through the mask, the layer-l KL also trains predictors 0 .. l-1: predictor 0 gets more than the detached form's.
    assert not torch.allclose(through[first_predictor], detached[first_predictor])
    # eta is held fixed on the KL's path and THETA only scales its target: their sole gradient from the KL is the
    # second-order one through later layers' hidden states, so the last layer's eta and THETA get nothing.
    assert through["bert.encoder.eta_logits"][-1] == 0
    assert through["bert.encoder.theta_offsets"][-1] == 0


def test_theta_learns_from_the_task_and_length_terms_and_changes_no_forward_value():
    input_ids, attention_mask = make_batch(LENGTHS)
    model = dropping_model("sequence_classification", gamma=0.0, phi=1.0).train()
    model.base_model.encoder.set_training_progress(0.3)
    torch.manual_seed(0)
    out = model(input_ids, attention_mask=attention_mask, labels=LABELS)
    out.loss.backward()
    encoder = model.base_model.encoder
    assert (encoder.theta_offsets.grad != 0).any()
    torch.testing.assert_close(encoder.theta(), torch.ones(2))
    # THETA_PR is 1 in value: a moved THETA leaves the forward (presence, logits) as it was.
    with torch.no_grad():
        encoder.theta_offsets.fill_(0.3)
    torch.manual_seed(0)
    moved = model(input_ids, attention_mask=attention_mask, labels=LABELS)
    torch.testing.assert_close(moved.logits, out.logits)
    assert torch.equal(moved.tokens_per_layer, out.tokens_per_layer)
    assert model.config.train_theta and not AdapLeRConfig(train_theta=False).train_theta


def test_saliency_must_cover_the_inputs():
    model = dropping_model("sequence_classification").train()
    input_ids, attention_mask = make_batch(LENGTHS)
    with pytest.raises(ValueError, match="saliency covers 4 positions, the inputs have 12"):
        model(input_ids, attention_mask=attention_mask, saliency=torch.rand(len(LENGTHS), 4))


def test_eta_stays_in_bounds_and_learns_at_its_scaled_rate():
    model = AdapLeRModel(make_config(eta_init=0.25, eta_min=0.01, eta_max=1.0, eta_lr_scale=100.0))
    encoder = model.encoder
    torch.testing.assert_close(encoder.etas(), torch.full((3,), 0.25))
    optimizer = torch.optim.AdamW([encoder.eta_logits], lr=1e-5, weight_decay=0.0)
    before = encoder.etas().detach()
    encoder.etas().sum().backward()
    optimizer.step()
    moved = before - encoder.etas().detach()  # the step lowers the sum of etas
    # d eta / d logit = 0.99 * sigmoid' * 100 at eta 0.25 (sigmoid = 0.2424): about 0.18 x 100 x lr.
    expected = 0.99 * 0.2424 * (1 - 0.2424) * 100 * 1e-5
    torch.testing.assert_close(moved, torch.full((3,), expected), rtol=2e-2, atol=0)
    with torch.no_grad():
        encoder.eta_logits.fill_(1e6)
    assert encoder.etas().max() <= 1.0


def test_trainer_anneals_sharpness_and_trains_eta(tmp_path):
    model = dropping_model("sequence_classification", sharpness_start=10.0, sharpness_end=1e4, phi=1.0).train()
    input_ids, attention_mask = make_batch((1, 12, 5, 9, 3, 11, 7, 2), seq_len=12)
    dataset = DictDataset(input_ids, attention_mask, torch.randint(0, 2, (8,)))
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=4, per_device_train_batch_size=2,
        save_strategy="no", disable_tqdm=True, learning_rate=1e-3,
    )
    before = model.base_model.encoder.etas().detach().clone()
    Trainer(model=model, args=args, train_dataset=dataset).train()
    # Set before each step from global_step / max_steps: the last step ran at 3/4 of the way.
    assert model.base_model.encoder.sharpness == pytest.approx(10.0 * 1000 ** 0.75)
    assert (model.base_model.encoder.etas().detach() > before).all()  # the length term pushes eta up


# ----------------------------------------------------------------------------------------------- saliency


def direct_saliency(model, input_ids, label) -> torch.Tensor:
    """Gradient x input through an additive zero perturbation of the embedding output (no hooks), one example."""
    embeddings = model.bert.embeddings
    original_forward = embeddings.forward
    perturbation = {}

    def perturbed_forward(*args, **kwargs):
        output = original_forward(*args, **kwargs)
        perturbation["delta"] = torch.zeros_like(output, requires_grad=True)
        perturbation["output"] = output.detach()
        return output + perturbation["delta"]

    embeddings.forward = perturbed_forward
    try:
        logit = model(input_ids[None]).logits[0, label]
    finally:
        embeddings.forward = original_forward
    (gradient,) = torch.autograd.grad(logit, perturbation["delta"])
    return (gradient * perturbation["output"]).norm(dim=-1)[0]


def test_saliency_matches_direct_autograd_per_example():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS, num_labels=3)).eval()
    input_ids, attention_mask = make_batch(LENGTHS)
    labels = torch.tensor([0, 2, 1, 0, 2, 1])
    batched = token_saliency(model, {"input_ids": input_ids, "attention_mask": attention_mask}, labels)
    assert (batched[attention_mask == 0] == 0).all()
    for row, length in enumerate(LENGTHS):
        expected = direct_saliency(model, input_ids[row, :length], labels[row])
        torch.testing.assert_close(batched[row, :length], expected, rtol=1e-4, atol=1e-6)


def test_saliency_command_feeds_finetune(tmp_path):
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    first = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "first")
    second = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "second")
    train = write_sst2_csv(tmp_path / "train.csv", rows=8)
    output = tmp_path / "train_saliency.jsonl"
    main(["saliency", first, second, "--data-file", train, "--output-file", str(output), "--max-length", "32", "--batch-size", "3"])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 8 and all(len(row["saliency"]) == 32 and set(row) == {"sentence", "label", "saliency"} for row in rows)

    # The average of the two checkpoints' saliencies.
    encoded = tokenizer(rows[0]["sentence"], return_tensors="pt")
    single = [
        token_saliency(AutoModelForSequenceClassification.from_pretrained(path).eval(), dict(encoded), torch.tensor([rows[0]["label"]]))[0]
        for path in (first, second)
    ]
    length = encoded["input_ids"].shape[1]
    torch.testing.assert_close(torch.tensor(rows[0]["saliency"][:length]), (single[0] + single[1]) / 2, rtol=1e-4, atol=1e-5)
    assert all(value == 0 for value in rows[0]["saliency"][length:])

    main(["convert", "--to", "adapler-bert", first, str(tmp_path / "adapler-init"), "--set", "gamma=1.0"])
    for name, train_file in (("with-saliency", str(output)), ("without-saliency", train)):
        main([
            "finetune", str(tmp_path / "adapler-init"), "--output-dir", str(tmp_path / name), "--train-file", train_file,
            "--validation-file", train, "--max-length", "32", "--batch-size", "4", "--logging-steps", "1",
        ])
    history = json.loads((tmp_path / "with-saliency" / "log_history.json").read_text())
    kept = [row["kept_fraction"] for row in history if "kept_fraction" in row and "loss" in row]
    assert len(kept) == 2 and all(0 < value <= 1 for value in kept)  # 8 rows, batches of 4: two steps
    predictors = "bert.encoder.contribution_predictors.0.output.weight"
    trained, untargeted = (load_file(tmp_path / name / "model.safetensors")[predictors] for name in ("with-saliency", "without-saliency"))
    torch.manual_seed(42)  # finetune's seed, set before it loads the converted folder (fresh predictors)
    start = AutoModelForSequenceClassification.from_pretrained(tmp_path / "adapler-init").state_dict()[predictors]
    assert not torch.equal(trained, start)
    # The saliency file's column reached the KL term: the same run without it trains the predictors differently.
    assert not torch.allclose(trained, untargeted, rtol=0, atol=1e-7)


def write_pairs_csv(path, rows: int = 6) -> str:
    """STS-B's layout: two sentences and a real-valued score."""
    generator = random.Random(1)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for _ in range(rows):
            sentences = [" ".join(generator.choices(WORDS, k=generator.randint(1, 8))) for _ in range(2)]
            writer.writerow([*sentences, round(generator.uniform(0, 5), 2)])
    return str(path)


def test_saliency_command_reads_sentence_pairs_and_real_valued_labels(tmp_path):
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    regression_model = BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS, num_labels=1))
    scorer = save_checkpoint(regression_model, tokenizer, tmp_path / "scorer")
    train = write_pairs_csv(tmp_path / "pairs.csv")
    output = tmp_path / "pairs_saliency.jsonl"
    main(["saliency", scorer, "--data-file", train, "--text-column", "sentence1", "--text-pair-column", "sentence2",
          "--output-file", str(output), "--max-length", "24", "--batch-size", "4"])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(row["label"], float) and len(row["saliency"]) == 24 for row in rows)
    for row in rows:  # each pair tokenised as a pair (both sentences, their separators, token types)
        encoded = tokenizer(row["sentence1"], row["sentence2"], return_tensors="pt")
        length = encoded["input_ids"].shape[1]
        model = AutoModelForSequenceClassification.from_pretrained(scorer).eval()
        expected = token_saliency(model, dict(encoded), torch.zeros(1, dtype=torch.long))[0]
        torch.testing.assert_close(torch.tensor(row["saliency"][:length]), expected, rtol=1e-4, atol=1e-5)
        assert all(value == 0 for value in row["saliency"][length:])

    classifier = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "classifier")
    with pytest.raises(SystemExit, match=r"pairs.csv line 2: label '.*' is not a class id .*regression"):
        main(["saliency", classifier, "--data-file", train, "--text-column", "sentence1", "--text-pair-column", "sentence2",
              "--output-file", str(tmp_path / "c.jsonl"), "--max-length", "24"])
    with pytest.raises(SystemExit, match=r"lacks columns \['sentence3'\]"):
        main(["saliency", scorer, "--data-file", train, "--text-column", "sentence1", "--text-pair-column", "sentence3",
              "--output-file", str(tmp_path / "c.jsonl"), "--max-length", "24"])
    assert not (tmp_path / "c.jsonl").exists()


def test_saliency_command_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="is not a checkpoint folder"):
        main(["saliency", str(tmp_path / "nowhere"), "--data-file", "x.csv", "--output-file", str(tmp_path / "o.jsonl")])


# ----------------------------------------------------------------------------------------------- loading


def test_bert_checkpoint_loads_with_eta_at_its_initial_value(tmp_path):
    BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)).save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path, config=AdapLeRConfig.from_pretrained(tmp_path, eta_init=0.4))
    assert isinstance(model, AdapLeRForSequenceClassification)
    torch.testing.assert_close(model.bert.encoder.etas(), torch.full((3,), 0.4))
