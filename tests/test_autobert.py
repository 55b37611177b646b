"""`autobert` (TR-BERT)'s own behaviour: the policy gradient's sign, which parameters each stage trains, rollouts,
imitation, distillation, the targets command against direct autograd, the targets -> finetune recipe, and the
default selection layers. What every token-pruning type shares (engine parity, pruning off equals BERT,
save/load, validation) is in `test_common.py`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, Trainer, TrainingArguments

from safetensors.torch import load_file

from transformers_prune import AutoBertConfig, AutoBertForSequenceClassification
from transformers_prune.training.autobert_targets import PADDING_LOGIT, residual_scores_and_logits, residual_scores_and_span_logits
from transformers_prune_cli import main
from transformers_prune.models.modeling_autobert import policy_gradient_loss, soft_cross_entropy
from transformers_prune.models.token_engine import pack, repeat_examples, unpack
from transformers_prune.models.token_views import PackedView

from conftest import (
    TINY_CONFIG_KWARGS, DictDataset, lengths_of, make_batch, run, save_checkpoint, tiny_squad, write_sst2_csv, write_tokenizer,
)
from model_testers import TESTERS, parameters_named

LENGTHS = (1, 12, 5, 9, 3, 11)
LABELS = torch.tensor([0, 1, 0, 1, 1, 0])


TESTER = TESTERS["autobert"]
make_config = TESTER.make_config  # selectors on the inputs of layers 1 and 2


def dropping_model(head: str = "base", **overrides):
    """Random selectors centred on the test batch: each keeps about half of its real tokens."""
    input_ids, attention_mask = make_batch(LENGTHS)
    return TESTER.make_model(head, input_ids, attention_mask, **overrides)


def mean_keep_probability(model, input_ids, attention_mask) -> float:
    """Mean keep-probability of the first selector (on layer 1's input) over the real non-[CLS] tokens."""
    model.eval()
    model.config.prune_at_inference = False
    layer_1_input = run(model.base_model, input_ids, attention_mask, output_hidden_states=True).hidden_states[1]
    model.config.prune_at_inference = True
    with torch.no_grad():
        probs = model.base_model.encoder.selectors[0](layer_1_input)
    decided = attention_mask.bool().clone()
    decided[:, 0] = False
    return probs[decided].mean().item()


# ----------------------------------------------------------------------------------------------- inference


def test_each_selection_layer_drops_tokens():
    input_ids, attention_mask = make_batch(LENGTHS)
    tokens = run(dropping_model(), input_ids, attention_mask).tokens_per_layer  # selectors before layers 1 and 2
    assert torch.equal(tokens[:, 0], lengths_of(attention_mask))
    assert (tokens[:, 1] < tokens[:, 0]).any() and (tokens[:, 2] < tokens[:, 1]).any()


# ----------------------------------------------------------------------------------------------- rollouts and losses


def test_repeat_examples_gives_each_input_its_rollouts():
    hidden = torch.randn(3, 6, 4)
    attention_mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    repeated = repeat_examples(pack(hidden, attention_mask, keep_restore_buffer=True), 3)
    assert repeated.batch_size == 9 and repeated.seqlens().tolist() == [3, 3, 3, 6, 6, 6, 1, 1, 1]
    torch.testing.assert_close(unpack(repeated), (hidden * attention_mask[..., None]).repeat_interleave(3, 0))


def test_policy_gradient_pushes_up_the_actions_of_better_rollouts():
    config = make_config(rl_num_samples=4, alpha=1.0, training_stage="train_rl")
    task_losses = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 2.0, 0.5, 2.0])
    tokens_per_layer = torch.tensor([[10, 8, 8], [10, 2, 2], [10, 5, 5], [10, 5, 5]] + [[10, 5, 5]] * 4)
    real_tokens = torch.full((8,), 10.0)
    log_prob = torch.zeros(8, requires_grad=True)
    loss, method_term = policy_gradient_loss(config, task_losses, log_prob, tokens_per_layer, real_tokens)
    # The value is minus the mean reward (task loss + alpha x kept fraction over the selection layers), never negative.
    kept = tokens_per_layer[:, 1:].float().mean(dim=1) / real_tokens
    torch.testing.assert_close(loss, task_losses.mean() + kept.mean())
    torch.testing.assert_close(method_term, kept.mean())
    loss.backward()
    # Input 0: same task loss, so keeping fewer tokens is better; input 1: lower task loss is better. Gradient
    # descent raises log-probabilities with a negative gradient (positive advantage).
    gradient = log_prob.grad
    assert gradient[1] < gradient[2] == gradient[3] < gradient[0]
    assert gradient[4] < 0 < gradient[5] and gradient[6] < 0 < gradient[7]
    torch.testing.assert_close(gradient.view(2, 4).sum(dim=1), torch.zeros(2))  # the mean reward is the baseline

    # The task loss's own gradient reaches whatever produced it (in "train_both", BERT and the head).
    task_losses = task_losses.clone().requires_grad_(True)
    both = make_config(rl_num_samples=4, training_stage="train_both")
    loss, method_term = policy_gradient_loss(both, task_losses, log_prob, tokens_per_layer, real_tokens)
    torch.testing.assert_close(loss, task_losses.mean() + method_term)
    loss.backward()
    torch.testing.assert_close(task_losses.grad, torch.full((8,), 1 / 8))


def test_policy_only_training_learns_to_drop_tokens_when_the_length_penalty_dominates():
    torch.manual_seed(0)
    model = AutoBertForSequenceClassification(make_config(alpha=50.0, rl_num_samples=8, selection_layers=[1]))
    input_ids, attention_mask = make_batch(LENGTHS)
    before = mean_keep_probability(model, input_ids, attention_mask)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(15):
        model(input_ids, attention_mask=attention_mask, labels=LABELS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert mean_keep_probability(model, input_ids, attention_mask) < before - 0.2


def test_stages_train_what_they_should():
    input_ids, attention_mask = make_batch(LENGTHS)
    policy_only = AutoBertForSequenceClassification(make_config(training_stage="train_rl", rl_num_samples=2)).train()
    policy_only(input_ids, attention_mask=attention_mask, labels=LABELS).loss.backward()
    trained = {name for name, p in policy_only.named_parameters() if p.grad is not None}
    assert trained and all(".selectors." in name for name in trained)
    assert all(p.requires_grad == (".selectors." in name) for name, p in policy_only.named_parameters())

    joint = AutoBertForSequenceClassification(make_config(training_stage="train_both", rl_num_samples=2)).train()
    outputs = joint(input_ids, attention_mask=attention_mask, labels=LABELS)
    outputs.loss.backward()
    assert all(p.grad is not None for p in joint.parameters() if p.requires_grad)
    assert all(p.requires_grad for p in joint.parameters())
    # One row per input in every output (means over the rollouts); the rollouts' log-likelihoods as [B, K].
    assert outputs.logits.shape == (len(LENGTHS), 2) and outputs.tokens_per_layer.shape == (len(LENGTHS), 3)
    assert outputs.action_log_prob.shape == (len(LENGTHS), 2)


def test_rollouts_sample_their_own_selections_and_keep_cls():
    model = dropping_model("sequence_classification", rl_num_samples=8).train()
    input_ids, attention_mask = make_batch(LENGTHS)
    tokens = model.bert(input_ids, attention_mask=attention_mask).tokens_per_layer.view(len(LENGTHS), 8, 3)
    assert torch.equal(tokens[:, :, 0], lengths_of(attention_mask)[:, None].expand(-1, 8))
    assert (tokens[:, :, 1:] >= 1).all()
    long_input = LENGTHS.index(12)
    assert len(set(tokens[long_input, :, 1].tolist())) > 1  # rollouts of one input differ


def test_imitation_rollout_follows_the_residual_scores():
    config = make_config(rl_num_samples=4, guide_rate=0.5, selection_layers=[1])
    model = AutoBertForSequenceClassification(config).train()
    input_ids, attention_mask = make_batch((12, 12), seq_len=12)
    # The expert prefers the last positions of input 0 and the first positions of input 1.
    scores = torch.stack([torch.arange(12.0), -torch.arange(12.0)])[:, None, :]
    encoder = model.bert.encoder
    with torch.no_grad():
        batch = pack(model.bert.embeddings(input_ids=input_ids), attention_mask)
        rollouts = repeat_examples(batch, 4)
        probs = torch.full((rollouts.num_tokens,), 0.25)  # round(0.25 x 11) = 3 tokens expected besides [CLS]
        view = PackedView(rollouts)
        actions, _ = encoder._sample_actions(probs, view, view.from_grid(scores.repeat_interleave(4, 0)[:, 0]))
    kept = actions.view(8, 12)
    assert kept[0].nonzero().flatten().tolist() == [0, 9, 10, 11]
    assert kept[4].nonzero().flatten().tolist() == [0, 1, 2, 3]

    # After guide_rate of training, no rollout is guided any more.
    encoder.set_training_progress(0.6)
    assert encoder._imitation_scores(scores, batch) is None
    encoder.set_training_progress(0.1)
    with pytest.raises(ValueError, match="residual_scores must be"):
        encoder._imitation_scores(scores[:, :, :5], batch)


def test_distillation_uses_teacher_logits_and_needs_them():
    model = AutoBertForSequenceClassification(make_config(train_teacher=True, training_stage="train_both", rl_num_samples=2)).train()
    input_ids, attention_mask = make_batch(LENGTHS)
    with pytest.raises(ValueError, match="train_teacher=True needs `teacher_logits`"):
        model(input_ids, attention_mask=attention_mask, labels=LABELS)
    with pytest.raises(ValueError, match="teacher_logits must have shape"):
        model(input_ids, attention_mask=attention_mask, teacher_logits=torch.zeros(len(LENGTHS), 3))

    def loss_with(**targets):
        torch.manual_seed(0)  # the same rollouts every time
        return model(input_ids, attention_mask=attention_mask, **targets)

    # A teacher sure of label 0 teaches what the gold label 0 does: same task losses, so same rewards and loss.
    sure_of_0 = torch.tensor([[30.0, 0.0]]).expand(len(LENGTHS), -1)
    distilled, disagreeing = loss_with(teacher_logits=sure_of_0), loss_with(teacher_logits=sure_of_0.flip(-1))
    model.config.train_teacher = False
    gold = loss_with(labels=torch.zeros(len(LENGTHS), dtype=torch.long))
    torch.testing.assert_close(distilled.loss, gold.loss, rtol=0, atol=1e-5)
    torch.testing.assert_close(distilled.pruning_loss, gold.pruning_loss, rtol=0, atol=1e-5)
    assert (disagreeing.loss - distilled.loss).abs() > 1e-3

    # A near one-hot teacher at temperature 1 gives the gold label's cross-entropy.
    logits = torch.randn(4, 3)
    torch.testing.assert_close(
        soft_cross_entropy(logits, torch.tensor([[30.0, 0, 0]]).expand(4, -1), 1.0),
        torch.nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long), reduction="none"),
    )


def keeping_every_token(head: str, **overrides):
    """A training-mode `head` model (stage "train_both") whose selectors keep every token with probability 1: all
    rollouts of an input then compute the same thing, so every advantage, and the policy loss, is 0."""
    model = TESTER.make_model(head, recipe="every_token_kept", training_stage="train_both", rl_num_samples=2, **overrides)
    model.train()
    with torch.no_grad():
        for param in parameters_named(model, ".selectors.", "output.bias").values():
            param.fill_(100.0)
    return model


def test_token_classification_training_loss_is_the_mean_of_each_inputs_token_loss():
    model = keeping_every_token("token_classification", num_labels=3)
    input_ids, attention_mask = make_batch(LENGTHS)
    labels = torch.randint(0, 3, input_ids.shape).masked_fill(attention_mask == 0, -100)
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (len(LENGTHS), 12, 3) and out.tokens_per_layer.shape == (len(LENGTHS), 3)
    assert out.pruning_loss == model.config.alpha  # every token kept: alpha x 1, and every advantage is 0
    per_token = F.cross_entropy(out.logits.transpose(1, 2), labels, reduction="none")  # 0 where labels are -100
    per_input = per_token.sum(dim=1) / (labels != -100).sum(dim=1)
    torch.testing.assert_close(out.loss, per_input.mean() + model.config.alpha, rtol=0, atol=1e-5)


def test_question_answering_training_loss_and_its_distillation():
    """Gold positions give BERT's span loss; teachers sure of the same positions give the sum of the start and
    end soft cross-entropies (not their mean: the original sums them), so twice that loss."""
    model = keeping_every_token("question_answering")
    input_ids, attention_mask = make_batch(LENGTHS)
    start, end = torch.tensor([0, 3, 1, 2, 0, 5]), torch.tensor([0, 7, 4, 5, 2, 9])  # all inside the inputs
    gold = model(input_ids, attention_mask=attention_mask, start_positions=start, end_positions=end)
    assert gold.start_logits.shape == gold.end_logits.shape == input_ids.shape and gold.pruning_loss == model.config.alpha
    bert_loss = (F.cross_entropy(gold.start_logits, start) + F.cross_entropy(gold.end_logits, end)) / 2
    torch.testing.assert_close(gold.loss, bert_loss + model.config.alpha, rtol=0, atol=1e-5)

    model.config.train_teacher = True
    with pytest.raises(ValueError, match="train_teacher=True needs `teacher_start_logits`"):
        model(input_ids, attention_mask=attention_mask, teacher_end_logits=torch.zeros(input_ids.shape))
    sure = {
        f"teacher_{name}_logits": 30.0 * F.one_hot(positions, input_ids.shape[1]).float()
        for name, positions in (("start", start), ("end", end))
    }
    distilled = model(input_ids, attention_mask=attention_mask, **sure)
    torch.testing.assert_close(distilled.loss, 2 * bert_loss + model.config.alpha, rtol=0, atol=1e-4)


def test_trainer_policy_only_run_changes_only_the_selectors(tmp_path):
    model = AutoBertForSequenceClassification(make_config(rl_num_samples=2))
    input_ids, attention_mask = make_batch((12, 5, 9, 3) * 2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2,
                             report_to="none", save_strategy="no", logging_steps=1, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=DictDataset(input_ids, attention_mask, torch.randint(0, 2, (8,))))
    trainer.train()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (".selectors." in name), name
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 3 and all(0 < row["kept_fraction"] <= 1 for row in logged)


# ----------------------------------------------------------------------------------------------- targets command


def direct_scores(model, input_ids, label, selection_layers, reference_layer):
    outputs = model(input_ids[None], output_hidden_states=True)
    reference = outputs.hidden_states[reference_layer]
    gradient = torch.autograd.grad(torch.nn.functional.cross_entropy(outputs.logits, label[None]), reference)[0]
    return torch.stack([(gradient * (reference - outputs.hidden_states[k])).sum(-1).abs()[0] for k in selection_layers])


def test_residual_scores_match_direct_autograd_per_example():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS, num_labels=3)).eval()
    input_ids, attention_mask = make_batch(LENGTHS)
    labels = torch.tensor([0, 2, 1, 0, 2, 1])
    scores, logits = residual_scores_and_logits(model, {"input_ids": input_ids, "attention_mask": attention_mask}, labels, [0, 1], 3)
    assert scores.shape == (6, 2, 12) and (scores.permute(0, 2, 1)[attention_mask == 0] == 0).all()
    for row, length in enumerate(LENGTHS):
        expected = direct_scores(model, input_ids[row, :length], labels[row], [0, 1], 3)
        torch.testing.assert_close(scores[row, :, :length], expected, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(logits[row], model(input_ids[row : row + 1, :length]).logits[0], rtol=1e-4, atol=1e-5)


def test_targets_command_feeds_both_training_stages(tmp_path):
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    train = write_sst2_csv(tmp_path / "train.csv", rows=8)
    targets = tmp_path / "train_autobert.jsonl"
    main(["autobert-targets", bert, "--data-file", train, "--output-file", str(targets), "--max-length", "32", "--batch-size", "3"])
    rows = [json.loads(line) for line in targets.read_text().splitlines()]
    assert len(rows) == 8 and set(rows[0]) == {"sentence", "label", "residual_scores", "teacher_logits"}
    assert all(len(row["residual_scores"]) == 1 and len(row["residual_scores"][0]) == 32 and len(row["teacher_logits"]) == 2 for row in rows)

    def finetune(init, output):
        main(["finetune", str(tmp_path / init), "--output-dir", str(tmp_path / output), "--train-file", str(targets),
              "--validation-file", train, "--max-length", "32", "--batch-size", "4", "--logging-steps", "1"])
        return load_file(tmp_path / output / "model.safetensors")

    # Stage "train_rl", imitating the residual scores in every step, and the same run without imitation.
    for init, guide_rate in (("init", 1.0), ("init-unguided", 0.0)):
        main(["convert", "--to", "autobert", bert, str(tmp_path / init), "--set", "rl_num_samples=2", "--set", f"guide_rate={guide_rate}"])
    rl, unguided = finetune("init", "rl"), finetune("init-unguided", "rl-unguided")
    main(["convert", "--to", "autobert", str(tmp_path / "rl"), str(tmp_path / "both-init"), "--set", "training_stage=train_both",
          "--set", "train_teacher=true"])
    both = finetune("both-init", "both")

    selector, bert_weight = "bert.encoder.selectors.0.output.weight", "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(rl[selector], unguided[selector], rtol=0, atol=1e-7)  # imitation changed the selectors
    original = load_file(tmp_path / "bert" / "model.safetensors")
    assert torch.equal(rl[bert_weight], original[bert_weight]) and torch.equal(rl["classifier.weight"], original["classifier.weight"])
    assert not torch.equal(both[bert_weight], rl[bert_weight]) and not torch.equal(both[selector], rl[selector])
    history = json.loads((tmp_path / "both" / "log_history.json").read_text())
    kept = [row["kept_fraction"] for row in history if "kept_fraction" in row and "loss" in row]
    assert len(kept) == 2 and all(0 < value <= 1 for value in kept)


def test_span_targets_match_direct_autograd_per_example():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)).eval()
    input_ids, attention_mask = make_batch(LENGTHS)
    starts, ends = torch.tensor([0, 3, 1, 2, 0, 4]), torch.tensor([0, 5, 2, 6, 1, 9])
    scores, start_logits, end_logits = residual_scores_and_span_logits(
        model, {"input_ids": input_ids, "attention_mask": attention_mask}, starts, ends, [0, 1], 3
    )
    assert (start_logits[attention_mask == 0] == PADDING_LOGIT).all() and (end_logits[attention_mask == 0] == PADDING_LOGIT).all()
    for row, length in enumerate(LENGTHS):
        alone = model(input_ids[row : row + 1, :length], output_hidden_states=True)
        loss = (F.cross_entropy(alone.start_logits, starts[row : row + 1]) + F.cross_entropy(alone.end_logits, ends[row : row + 1])) / 2
        reference = alone.hidden_states[3]
        gradient = torch.autograd.grad(loss, reference)[0]
        expected = torch.stack([(gradient * (reference - alone.hidden_states[k])).sum(-1).abs()[0] for k in (0, 1)])
        torch.testing.assert_close(scores[row, :, :length], expected, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(start_logits[row, :length], alone.start_logits[0].detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(end_logits[row, :length], alone.end_logits[0].detach(), rtol=1e-4, atol=1e-5)


def test_span_targets_command_feeds_both_qa_training_stages(tmp_path):
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForQuestionAnswering(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    squad = tiny_squad(tmp_path / "train.json")
    windows = ["--max-length", "24", "--doc-stride", "8"]
    targets = tmp_path / "targets.safetensors"
    main(["autobert-targets", bert, "--squad-file", squad, "--output-file", str(targets), *windows, "--batch-size", "4"])
    saved = load_file(targets)
    count = len(saved["input_ids"])
    assert count >= 6 and saved["residual_scores"].shape == (count, 1, 24) and saved["teacher_end_logits"].shape == (count, 24)

    def finetune(init, output, *extra):
        main(["finetune-qa", str(tmp_path / init), "--output-dir", str(tmp_path / output), "--train-file", squad, *windows,
              "--targets-file", str(targets), "--batch-size", "4", "--learning-rate", "1e-3", "--logging-steps", "1", *extra])
        return load_file(tmp_path / output / "model.safetensors")

    for init, guide_rate in (("init", 1.0), ("init-unguided", 0.0)):
        main(["convert", "--to", "autobert", bert, str(tmp_path / init), "--set", "rl_num_samples=2", "--set", f"guide_rate={guide_rate}"])
    rl, unguided = finetune("init", "rl"), finetune("init-unguided", "rl-unguided")
    selector = "bert.encoder.selectors.0.output.weight"
    assert not torch.allclose(rl[selector], unguided[selector], rtol=0, atol=1e-7)  # imitation changed the selectors
    main(["convert", "--to", "autobert", str(tmp_path / "rl"), str(tmp_path / "both-init"), "--set", "training_stage=train_both",
          "--set", "train_teacher=true"])
    both = finetune("both-init", "both")
    assert not torch.equal(both["qa_outputs.weight"], rl["qa_outputs.weight"])

    finetune("both-init", "first-questions", "--max-train-samples", "3")  # their windows lead the file: served

    # Targets of other windows are refused before anything is written.
    data = json.loads(open(squad).read())
    data["data"][0]["paragraphs"].reverse()
    (tmp_path / "reordered.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="window 0 of this run has other tokens"):
        main(["finetune-qa", str(tmp_path / "both-init"), "--output-dir", str(tmp_path / "refused"), "--train-file",
              str(tmp_path / "reordered.json"), *windows, "--targets-file", str(targets)])
    with pytest.raises(SystemExit, match="--doc-stride 8"):
        finetune("both-init", "refused", "--doc-stride", "4")
    assert not (tmp_path / "refused").exists()


def test_targets_command_reads_sentence_pairs(tmp_path):
    """With --text-pair-column the targets are those of the pair as run_glue.py tokenises it (segment ids included)."""
    torch.manual_seed(0)
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)).eval(), tokenizer, tmp_path / "bert")
    pairs = [("the cat sat", "on the mat", 1), ("a dog ran", "the cat sat on the mat", 0), ("on the mat", "a dog", 1)]
    train = tmp_path / "pairs.csv"
    train.write_text("question,sentence,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in pairs), encoding="utf-8")
    targets = tmp_path / "pairs_autobert.jsonl"
    main(["autobert-targets", bert, "--data-file", str(train), "--text-column", "question", "--text-pair-column", "sentence",
          "--label-column", "label", "--output-file", str(targets), "--max-length", "16", "--batch-size", "2"])
    rows = [json.loads(line) for line in targets.read_text().splitlines()]
    assert [(row["question"], row["sentence"]) for row in rows] == [(a, b) for a, b, _ in pairs]
    model = BertForSequenceClassification.from_pretrained(bert).eval()
    for row, (first, second, label) in zip(rows, pairs):
        inputs = dict(tokenizer(first, second, return_tensors="pt"))
        assert inputs["token_type_ids"].any()  # the second text is its own segment
        scores, logits = residual_scores_and_logits(model, inputs, torch.tensor([label]), [1], 3)  # the defaults at 3 layers
        length = inputs["input_ids"].shape[1]
        torch.testing.assert_close(torch.tensor(row["teacher_logits"]), logits[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor(row["residual_scores"])[:, :length], scores[0], rtol=2e-3, atol=1e-6)
        assert not any(torch.tensor(row["residual_scores"])[:, length:].flatten())


def test_targets_command_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="is not a checkpoint folder"):
        main(["autobert-targets", str(tmp_path / "nowhere"), "--data-file", "x.csv", "--output-file", str(tmp_path / "o.jsonl")])
    tokenizer = write_tokenizer(tmp_path)
    bert = save_checkpoint(BertForSequenceClassification(BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, tmp_path / "bert")
    train = write_sst2_csv(tmp_path / "train.csv", rows=4)
    with pytest.raises(SystemExit, match="must be >= 0 and before the reference layer"):
        main(["autobert-targets", bert, "--data-file", train, "--output-file", str(tmp_path / "o.jsonl"), "--selection-layers", "2",
              "--reference-layer", "2", "--max-length", "16"])
    with pytest.raises(SystemExit, match="does not apply to --data-file"):
        main(["autobert-targets", bert, "--data-file", train, "--output-file", str(tmp_path / "o.jsonl"), "--doc-stride", "8"])
    with pytest.raises(SystemExit, match="--label-column name columns of a --data-file; a SQuAD file has none"):
        main(["autobert-targets", bert, "--squad-file", train, "--output-file", str(tmp_path / "o.jsonl"), "--label-column", "y"])
    assert not (tmp_path / "o.jsonl").exists()


# ----------------------------------------------------------------------------------------------- config


def test_default_selection_layers_are_the_originals():
    assert AutoBertConfig(num_hidden_layers=12).selection_layers == [1, 6]
    assert AutoBertConfig(num_hidden_layers=6).selection_layers == [1, 3]
    assert AutoBertConfig(num_hidden_layers=2).selection_layers == [1]
