"""What every token-pruning model type must do, checked for each of them (`model_testers.TESTERS`) and each of its
four classes: packed and masked engines agree on every head, pruning off equals BERT, save/load and the Auto
classes, HF's tuple outputs, `pipeline()`, one meaning of the eval loss, config and input validation, the
`Trainer` loss contract, and the CUDA attention kernels in half precision.

The methods' own maths (their decisions, losses and schedules) is tested in the per-method files.
"""

from __future__ import annotations

import copy
import math
import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import (
    AutoConfig,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)
from transformers.utils import is_flash_attn_2_available

from transformers_prune.conversion import convert_bert_checkpoint

from conftest import (
    CPU_BACKENDS,
    TINY_CONFIG_KWARGS,
    WORDS,
    DictDataset,
    assert_pruning_off_equals_bert,
    bert_twin,
    lengths_of,
    make_batch,
    real_token_max_diff,
    run,
    save_checkpoint,
    write_tokenizer,
)
from model_testers import HEAD_AUTO_CLASSES, HEADS, TESTERS

MODEL_TYPES = sorted(TESTERS)
TASK_HEADS = HEADS[1:]
MIXED_LENGTHS = (1, 12, 5, 9, 3, 11)  # one example of length 1, one of full length
SEQ_LEN = 12
BERT_HEAD_CLASSES = {
    "sequence_classification": BertForSequenceClassification,
    "question_answering": BertForQuestionAnswering,
    "token_classification": BertForTokenClassification,
}
# The outputs HF's BERT heads return first, in this order, when `return_dict=False`.
LEADING_TUPLE_FIELDS = {
    "base": ("last_hidden_state", "pooler_output"),
    "sequence_classification": ("loss", "logits"),
    "question_answering": ("loss", "start_logits", "end_logits"),
    "token_classification": ("loss", "logits"),
}


def model_for_mixed_batch(model_type: str, head: str = "base", **overrides):
    """`(model, input_ids, attention_mask)`: a model of `head` built by its tester's recipe (`some_dropped` unless
    `recipe=` says otherwise) for a batch of `MIXED_LENGTHS`."""
    input_ids, attention_mask = make_batch(MIXED_LENGTHS, seq_len=SEQ_LEN)
    return TESTERS[model_type].make_model(head, input_ids, attention_mask, **overrides), input_ids, attention_mask


def assert_same_model_outputs(ours, reference, attention_mask, atol: float) -> None:
    """Every output of two forwards agrees: `tokens_per_layer` exactly, `[B, S, ...]` tensors (and each layer's
    hidden states) on real positions within `atol`, everything else within `atol`."""
    assert set(ours.keys()) == set(reference.keys())
    real = attention_mask.bool()

    def close(a, b, what):
        if a.dim() >= 2 and a.shape[:2] == real.shape:
            a, b = a[real], b[real]
        torch.testing.assert_close(a, b, rtol=0, atol=atol, msg=lambda message: f"{what}: {message}")

    for key in ours.keys():
        if key == "tokens_per_layer":
            assert torch.equal(ours[key], reference[key]), (ours[key], reference[key])
        elif isinstance(ours[key], tuple):
            for layer, (a, b) in enumerate(zip(ours[key], reference[key], strict=True)):
                close(a, b, f"{key}[{layer}]")
        else:
            close(ours[key], reference[key], key)


def check_tokens_per_layer(tester, tokens: torch.Tensor, attention_mask: torch.Tensor, recipe: str) -> None:
    """`tokens_per_layer` counts real tokens only, never grows with depth, keeps [CLS], and drops what `recipe` drops."""
    real = lengths_of(attention_mask)
    first = tester.first_dropping_layer
    assert tokens.dtype == torch.long and tokens.shape == (len(real), TINY_CONFIG_KWARGS["num_hidden_layers"])
    assert (tokens >= 1).all() and (tokens <= real[:, None]).all()
    assert (tokens[:, 1:] <= tokens[:, :-1]).all()  # a dropped token never returns
    assert torch.equal(tokens[:, :first], real[:, None].expand(-1, first))
    if recipe == "only_cls_kept":
        assert (tokens[:, first:] == 1).all()
    else:
        assert (tokens[:, first] < real).any() and (tokens[:, first] > 1).any()  # some dropped, not all


def check_head_shapes(head: str, output, input_ids, config) -> None:
    batch_size, seq_len = input_ids.shape
    if head == "base":
        assert output.last_hidden_state.shape == (batch_size, seq_len, config.hidden_size)
        assert output.pooler_output.shape == (batch_size, config.hidden_size)
    elif head == "sequence_classification":
        assert output.logits.shape == (batch_size, config.num_labels)
    elif head == "question_answering":
        assert output.start_logits.shape == output.end_logits.shape == (batch_size, seq_len)
    else:
        assert output.logits.shape == (batch_size, seq_len, config.num_labels)


def task_labels(head: str, attention_mask: torch.Tensor, num_labels: int) -> dict:
    """Labels for a head, as the HF examples pass them; QA's last end position lies outside the input (ignored)."""
    batch_size, seq_len = attention_mask.shape
    generator = torch.Generator().manual_seed(1)
    if head == "sequence_classification":
        if num_labels == 1:
            return {"labels": torch.randn(batch_size, generator=generator)}
        return {"labels": torch.randint(0, num_labels, (batch_size,), generator=generator)}
    if head == "question_answering":
        start = torch.randint(0, seq_len, (batch_size,), generator=generator)
        end = torch.randint(0, seq_len, (batch_size,), generator=generator)
        end[-1] = 50
        return {"start_positions": start, "end_positions": end}
    labels = torch.randint(0, num_labels, (batch_size, seq_len), generator=generator)
    return {"labels": labels.masked_fill(attention_mask == 0, -100)}


def bert_task_loss(head: str, output, labels: dict) -> torch.Tensor:
    """The loss HF's BERT head computes from these logits and labels, written out."""
    if head == "sequence_classification":
        if output.logits.shape[-1] == 1:
            return F.mse_loss(output.logits.squeeze(-1), labels["labels"])
        return F.cross_entropy(output.logits, labels["labels"])
    if head == "question_answering":
        ignored = output.start_logits.shape[1]
        start, end = (labels[key].clamp(0, ignored) for key in ("start_positions", "end_positions"))
        return (F.cross_entropy(output.start_logits, start, ignore_index=ignored)
                + F.cross_entropy(output.end_logits, end, ignore_index=ignored)) / 2
    logits = output.logits
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels["labels"].view(-1))


# --------------------------------------------------------------------------------------------- packed vs masked

PARITY_CASES = {
    # name: (lengths, recipe)
    "mixed": (MIXED_LENGTHS, "some_dropped"),
    "batch_size_1": ((SEQ_LEN,), "some_dropped"),
    "only_cls_kept": (MIXED_LENGTHS, "only_cls_kept"),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(PARITY_CASES))
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_packed_matches_masked_with_drops(model_type, head, case, backend):
    """Hard decisions give the same outputs on both engines, for every head: the packed engine's restore buffer
    gives full-length heads (QA, token classification) the states the masked engine keeps in place."""
    tester = TESTERS[model_type]
    lengths, recipe = PARITY_CASES[case]
    input_ids, attention_mask = make_batch(lengths, seq_len=SEQ_LEN)
    model = tester.make_model(head, input_ids, attention_mask, recipe=recipe, packed_attention_backend=backend)
    packed = run(model, input_ids, attention_mask, "packed", output_hidden_states=True)
    masked = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)

    check_tokens_per_layer(tester, packed.tokens_per_layer, attention_mask, recipe)
    check_head_shapes(head, packed, input_ids, model.config)
    assert len(packed.hidden_states) == model.config.num_hidden_layers + 1
    assert_same_model_outputs(packed, masked, attention_mask, atol=1e-5)
    if head == "base":  # each engine's last recorded state is its output
        for output in (packed, masked):
            assert real_token_max_diff(output.hidden_states[-1], output.last_hidden_state, attention_mask) <= 1e-6


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_an_example_gets_the_same_result_alone_as_in_a_batch(model_type, engine):
    """Decisions are per example: neither padding nor the other examples of a batch change them."""
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, "base")
    batched = run(model, input_ids, attention_mask, engine)
    assert (batched.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    for row, length in enumerate(MIXED_LENGTHS):
        alone = run(model, input_ids[row : row + 1, :length], attention_mask[row : row + 1, :length], engine)
        assert torch.equal(alone.tokens_per_layer[0], batched.tokens_per_layer[row]), row
        torch.testing.assert_close(alone.last_hidden_state[0], batched.last_hidden_state[row, :length], rtol=0, atol=1e-5)
        torch.testing.assert_close(alone.pooler_output[0], batched.pooler_output[row], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------- pruning off == BERT

PRUNING_OFF_CASES = [
    pytest.param(model_type, settings, id=f"{model_type}-{'-'.join(f'{k}={v}' for k, v in settings.items())}")
    for model_type in MODEL_TYPES
    for settings in TESTERS[model_type].pruning_off
]


@pytest.mark.parametrize("engine, backend", [*(("packed", backend) for backend in CPU_BACKENDS), ("masked", None)])
@pytest.mark.parametrize("model_type, settings", PRUNING_OFF_CASES)
def test_pruning_off_equals_bert(model_type, settings, engine, backend):
    tester = TESTERS[model_type]
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, "base", packed_attention_backend=backend)
    assert_pruning_off_equals_bert(model, input_ids, attention_mask, engine, tester.method_keys, **settings)


@pytest.mark.parametrize("head", TASK_HEADS)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_pruning_off_head_equals_its_bert_twin(model_type, head):
    """With pruning off, each head computes what HF's BERT head computes from the same weights."""
    tester = TESTERS[model_type]
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, head)
    assert (run(model, input_ids, attention_mask).tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    model.config.prune_at_inference = False
    ours = run(model, input_ids, attention_mask)
    assert torch.equal(ours.tokens_per_layer, lengths_of(attention_mask)[:, None].expand_as(ours.tokens_per_layer))
    with torch.no_grad():
        reference = bert_twin(model, tester.method_keys, BERT_HEAD_CLASSES[head])(input_ids, attention_mask=attention_mask)
    real = attention_mask.bool()
    for key in ("logits", "start_logits", "end_logits"):
        if key in reference:
            a, b = ours[key], reference[key]
            if head != "sequence_classification":
                a, b = a[real], b[real]
            torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------ save / load, Auto


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_auto_classes_resolve_to_the_model_type(model_type):
    tester = TESTERS[model_type]
    config = AutoConfig.for_model(model_type, **TINY_CONFIG_KWARGS, **tester.config_defaults)
    assert type(config) is tester.config_class and config.model_type == model_type
    for head, auto_class in HEAD_AUTO_CLASSES.items():
        assert type(auto_class.from_config(config)) is tester.model_class(head)


@torch.no_grad()
def perturb_method_parameters(model, method_keys) -> None:
    """Move every method parameter off its initial value, as training would, so a reload that re-initialised one
    would show."""
    for name, param in model.named_parameters():
        if any(key in name for key in method_keys):
            param.add_(1e-3 * torch.randn_like(param))


def assert_same_state(model, reference) -> None:
    state, expected = model.state_dict(), reference.state_dict()
    assert set(state) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_save_and_load_round_trip_gives_identical_outputs(model_type, head, tmp_path):
    tester = TESTERS[model_type]
    # Non-default settings, so a setting lost on the way would show.
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, head, **tester.fresh_model_drops)
    perturb_method_parameters(model, tester.method_keys)
    before = run(model, input_ids, attention_mask)
    assert (before.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()

    model.save_pretrained(tmp_path)
    settings = {key: value for key, value in model.config.to_dict().items() if key != "_name_or_path"}
    for key, value in tester.fresh_model_drops.items():
        assert settings[key] == value
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is tester.config_class
    assert {key: value for key, value in config.to_dict().items() if key != "_name_or_path"} == settings
    loaded = HEAD_AUTO_CLASSES[head].from_pretrained(tmp_path).eval()
    assert type(loaded) is tester.model_class(head)
    assert_same_state(loaded, model)
    after = run(loaded, input_ids, attention_mask)
    assert set(after.keys()) == set(before.keys())
    for key in before.keys():
        assert torch.equal(after[key], before[key]), key


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_base_model_checkpoint_loads_into_every_head(model_type, tmp_path):
    """A base-model checkpoint (keys without the `bert.` prefix) loads into the heads with the method intact."""
    tester = TESTERS[model_type]
    base, input_ids, attention_mask = model_for_mixed_batch(model_type, "base")
    perturb_method_parameters(base, tester.method_keys)
    base.save_pretrained(tmp_path)
    expected = run(base, input_ids, attention_mask)
    for head in TASK_HEADS:
        loaded = HEAD_AUTO_CLASSES[head].from_pretrained(tmp_path).eval()
        encoder_state = {k: v for k, v in loaded.base_model.state_dict().items() if not k.startswith("pooler.")}
        for key, tensor in encoder_state.items():
            assert torch.equal(tensor, base.state_dict()[key]), (head, key)
        # A sequence classifier's base model returns no full-length states on the packed engine (it reads [CLS]
        # rows); asked for hidden states, it restores every position.
        got = run(loaded.base_model, input_ids, attention_mask, output_hidden_states=True)
        assert torch.equal(got.tokens_per_layer, expected.tokens_per_layer)
        assert real_token_max_diff(got.hidden_states[-1], expected.last_hidden_state, attention_mask) == 0


# ------------------------------------------------------------------------------------------------ tuple outputs


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_return_dict_false_gives_hf_tuple_order(model_type, head):
    """Code written for BERT's tuples (`loss, logits = outputs[:2]`) reads ours the same way."""
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, head)
    labels = {} if head == "base" else task_labels(head, attention_mask, model.config.num_labels)
    as_output = run(model, input_ids, attention_mask, **labels)
    as_tuple = run(model, input_ids, attention_mask, return_dict=False, **labels)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_output)
    for position, key in enumerate(LEADING_TUPLE_FIELDS[head]):
        assert torch.equal(as_tuple[position], as_output[key]), key
    for ours, expected in zip(as_tuple, as_output.to_tuple(), strict=True):
        assert torch.equal(ours, expected)

    without_labels = run(model, input_ids, attention_mask, return_dict=False)
    first = [key for key in LEADING_TUPLE_FIELDS[head] if key != "loss"][0]
    assert torch.equal(without_labels[0], as_output[first])


# ---------------------------------------------------------------------------------------------------- pipeline()

SENTENCES = [
    "the movie was good",
    "bad",
    "what a very dull plot and the acting was awful",
    "fun film",
    "it is not great and it was not fun",
    "who is the film",
    "the plot was very good and the acting was great",
]
PIPELINE_HEADS = {"text-classification": "sequence_classification", "token-classification": "token_classification"}


@pytest.fixture(scope="module")
def pipeline_checkpoints(tmp_path_factory):
    """(model_type, task) -> a tiny checkpoint folder with a tokenizer, converted from a BERT checkpoint by
    `convert` and saved again after its method weights were set to drop tokens on `SENTENCES`."""
    root = tmp_path_factory.mktemp("pipelines")
    tokenizer = write_tokenizer(root)
    torch.manual_seed(0)
    berts = {
        task: save_checkpoint(BERT_HEAD_CLASSES[head](BertConfig(**TINY_CONFIG_KWARGS)), tokenizer, root / f"bert-{head}")
        for task, head in PIPELINE_HEADS.items()
    }
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    folders = {}
    for model_type, tester in TESTERS.items():
        for task, head in PIPELINE_HEADS.items():
            recipe = tester.some_dropped
            settings = {**tester.config_defaults, **recipe.config}
            folder = convert_bert_checkpoint(berts[task], model_type, str(root / f"{model_type}-{head}"), **settings)
            model = HEAD_AUTO_CLASSES[head].from_pretrained(folder).eval()
            if recipe.prepare is not None:
                recipe.prepare(model, encoded["input_ids"], encoded["attention_mask"])
            model.save_pretrained(folder)
            folders[model_type, task] = folder
    return folders


def one_at_a_time(model, tokenizer):
    """Each sentence alone through the model: its `[1, ...]` logits and whether the model dropped a token."""
    results = []
    for sentence in SENTENCES:
        inputs = tokenizer(sentence, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        results.append((out.logits[0], bool(out.tokens_per_layer[0, -1] < inputs["input_ids"].shape[1])))
    return results


def pipeline_cases(batch_sizes):
    return [(model_type, batch_size) for model_type in MODEL_TYPES for batch_size in batch_sizes]


@pytest.mark.parametrize("model_type, batch_size", pipeline_cases((1, 2, 4)))
def test_text_classification_pipeline_gives_each_sentence_its_own_result(model_type, batch_size, pipeline_checkpoints):
    classify = pipeline("text-classification", model=pipeline_checkpoints[model_type, "text-classification"], device="cpu")
    assert type(classify.model) is TESTERS[model_type].model_class("sequence_classification")
    results = classify(SENTENCES, batch_size=batch_size)
    expected = one_at_a_time(classify.model, classify.tokenizer)
    assert any(dropped for _, dropped in expected)  # the pipeline ran the pruning model
    assert len(results) == len(SENTENCES)
    for result, (logits, _) in zip(results, expected):
        probs = logits.softmax(-1)
        assert result["label"] == classify.model.config.id2label[int(probs.argmax())]
        assert result["score"] == pytest.approx(probs.max().item(), abs=1e-5)


@pytest.mark.parametrize("model_type, batch_size", pipeline_cases((1, 4)))
def test_token_classification_pipeline_labels_every_word(model_type, batch_size, pipeline_checkpoints):
    tag = pipeline("token-classification", model=pipeline_checkpoints[model_type, "token-classification"], device="cpu")
    assert type(tag.model) is TESTERS[model_type].model_class("token_classification")
    results = tag(SENTENCES, batch_size=batch_size)
    expected = one_at_a_time(tag.model, tag.tokenizer)
    assert any(dropped for _, dropped in expected)
    for sentence, entities, (logits, _) in zip(SENTENCES, results, expected):
        # No label is "O", so every word token is reported (special tokens are not).
        assert [entity["index"] for entity in entities] == list(range(1, len(sentence.split()) + 1))
        probs = logits.softmax(-1)
        for entity in entities:
            assert entity["entity"] == tag.model.config.id2label[int(probs[entity["index"]].argmax())]
            assert entity["score"] == pytest.approx(probs[entity["index"]].max().item(), abs=1e-5)


def test_pipeline_sentences_use_the_tiny_vocabulary():
    assert {word for sentence in SENTENCES for word in sentence.split()} <= set(WORDS)


# ------------------------------------------------------------------------------------------------------ eval loss

EVAL_LOSS_TASKS = {
    # name: (head, num_labels)
    "sequence_classification": ("sequence_classification", 3),
    "sequence_regression": ("sequence_classification", 1),
    "question_answering": ("question_answering", 2),
    "token_classification": ("token_classification", 3),
}
EVAL_LOSS_CASES = [(model_type, task) for model_type in MODEL_TYPES for task in EVAL_LOSS_TASKS]


@pytest.mark.parametrize("engine", ["packed", "masked"])
@pytest.mark.parametrize("model_type, task", EVAL_LOSS_CASES)
def test_eval_loss_is_the_task_loss_alone(model_type, task, engine):
    """One meaning of `eval_loss` for every type: the task loss of the pruned forward, as BERT computes it from
    the logits, with no auxiliary term (those train the method; they are not a measure of the task)."""
    head, num_labels = EVAL_LOSS_TASKS[task]
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, head, num_labels=num_labels)
    labels = task_labels(head, attention_mask, num_labels)
    out = run(model, input_ids, attention_mask, engine, **labels)
    assert (out.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    check_head_shapes(head, out, input_ids, model.config)
    torch.testing.assert_close(out.loss, bert_task_loss(head, out, labels), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------- config validation

def bad_config_cases(table: str):
    return [
        pytest.param(model_type, bad, id=f"{model_type}-" + ",".join(f"{k}={v!r}" for k, v in bad.overrides.items()))
        for model_type in MODEL_TYPES
        for bad in getattr(TESTERS[model_type], table)
    ]


def assert_refused_everywhere(tester, bad, error, message: str, folder) -> None:
    """`bad` is refused at construction, as a `from_pretrained` override (the config class and AutoConfig), and
    in an edited config.json."""
    with pytest.raises(error, match=message):
        tester.make_config(**bad.overrides)

    tester.make_config().save_pretrained(folder)
    for config_class in (tester.config_class, AutoConfig):
        with pytest.raises(error, match=message):
            config_class.from_pretrained(folder, **bad.overrides)

    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **bad.overrides}))
    for config_class in (tester.config_class, AutoConfig):
        with pytest.raises(error, match=message):
            config_class.from_pretrained(folder)


@pytest.mark.parametrize("model_type, bad", bad_config_cases("bad_configs"))
def test_bad_config_value_is_refused_naming_the_key(model_type, bad, tmp_path):
    assert_refused_everywhere(TESTERS[model_type], bad, ValueError, rf"{bad.key}=.* is invalid; allowed: ", tmp_path)


@pytest.mark.parametrize("model_type, bad", bad_config_cases("wrongly_typed_configs"))
def test_wrongly_typed_config_value_is_refused_naming_the_key(model_type, bad, tmp_path):
    # The strict dataclass's type check runs first; its error is not a ValueError.
    message = f"Field '{bad.key}' expected"
    assert_refused_everywhere(TESTERS[model_type], bad, StrictDataclassFieldValidationError, message, tmp_path)


# -------------------------------------------------------------------------------------------- input validation


def bad_inputs(case: str) -> tuple[dict, str]:
    """Inputs a user can get wrong -> (forward kwargs, the error message expected)."""
    input_ids, attention_mask = make_batch((3, 5))
    if case == "all_padding":
        attention_mask[1] = 0
        return {"input_ids": input_ids, "attention_mask": attention_mask}, r"examples \[1\] are all padding"
    if case == "left_padding":
        attention_mask[0] = torch.tensor([0, 0, 1, 1, 1])
        return {"input_ids": input_ids, "attention_mask": attention_mask}, "left-padded"
    if case == "mask_shape":
        return {"input_ids": input_ids, "attention_mask": attention_mask[:, :4]}, "does not match inputs"
    if case == "one_dimensional":
        return {"input_ids": input_ids[0]}, r"must be \[batch, seq_len\]"
    assert case == "attentions_from_packed_engine"
    return (
        {"input_ids": input_ids, "attention_mask": attention_mask, "output_attentions": True},
        "output_attentions needs inference_engine='masked'",
    )


BAD_INPUT_CASES = ["all_padding", "left_padding", "mask_shape", "one_dimensional", "attentions_from_packed_engine"]


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_bad_inputs_raise_a_clear_error(model_type, case):
    model = TESTERS[model_type].make_model("sequence_classification", recipe="every_token_kept")
    inputs, message = bad_inputs(case)
    with pytest.raises(ValueError, match=message), torch.no_grad():
        model(**inputs)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_attention_mask_defaults_to_all_ones(model_type):
    input_ids, _ = make_batch((6, 6))
    model = TESTERS[model_type].make_model("sequence_classification", input_ids, torch.ones_like(input_ids))
    without_mask, with_mask = run(model, input_ids, None), run(model, input_ids, torch.ones_like(input_ids))
    assert torch.equal(without_mask.tokens_per_layer, with_mask.tokens_per_layer)
    assert torch.equal(without_mask.logits, with_mask.logits)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_masked_engine_returns_attention_over_the_kept_tokens(model_type):
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, "base")
    out = run(model, input_ids, attention_mask, "masked", output_attentions=True)
    config, (batch_size, seq_len) = model.config, input_ids.shape
    assert len(out.attentions) == config.num_hidden_layers
    assert (out.tokens_per_layer[:, -1] < lengths_of(attention_mask)).any()
    for layer, attention in enumerate(out.attentions):
        assert attention.shape == (batch_size, config.num_attention_heads, seq_len, seq_len)
        torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:3]), rtol=0, atol=1e-5)
        assert attention.masked_select(~attention_mask.bool()[:, None, None, :]).abs().max() == 0  # no query sees padding
        # [CLS] (always kept) attends to exactly the tokens entering this layer: never padding, never dropped ones.
        attended = (attention[:, :, 0, :] > 0).any(dim=1)
        assert torch.equal(attended.sum(dim=1), out.tokens_per_layer[:, layer]), layer
        assert not attended[~attention_mask.bool()].any()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_flash_varlen_without_flash_attn_gives_clear_error(model_type):
    if is_flash_attn_2_available() and torch.cuda.is_available():
        pytest.skip("flash-attn is usable here")
    model, input_ids, attention_mask = model_for_mixed_batch(model_type, "base")
    model.config.packed_attention_backend = "flash_varlen"
    with pytest.raises(ValueError, match="the flash_varlen attention backend needs CUDA tensors and the flash-attn package"):
        run(model, input_ids, attention_mask)


# ------------------------------------------------------------------------------------------------ Trainer contract

# Types whose training forward is deterministic (no sampled decisions) and adds an auxiliary loss.
ACCUMULATION_CASES = {
    "ltp": {"masking_mode": "soft", "final_token_threshold": 0.6, "lambda_threshold": 0.5},
    "adapler-bert": {"phi": 1.0},
}


def one_sgd_update(model, dataset, output_dir, batch_size: int, accumulation: int) -> dict:
    args = TrainingArguments(
        output_dir=str(output_dir), use_cpu=True, report_to="none", max_steps=1, optim="sgd", learning_rate=0.1,
        weight_decay=0.0, max_grad_norm=0.0, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, save_strategy="no", disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=dataset).train()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("model_type", sorted(ACCUMULATION_CASES))
def test_trainer_gradient_accumulation_gives_the_update_of_one_big_batch(model_type, tmp_path):
    """`accepts_loss_kwargs = False`: `Trainer` divides our per-batch loss (task plus auxiliary term, each a
    mean) by the accumulation steps, so two accumulated batches of 2 make the update of one batch of 4. Plain
    SGD without clipping, which (unlike Adam) would show a loss of the wrong scale."""
    tester = TESTERS[model_type]
    input_ids, attention_mask = make_batch((8, 8, 8, 8), seq_len=SEQ_LEN)  # equal lengths: token means split evenly
    dataset = DictDataset(input_ids, attention_mask, torch.tensor([0, 1, 1, 0]))
    model = tester.make_model("sequence_classification", input_ids, attention_mask, **ACCUMULATION_CASES[model_type])
    start = copy.deepcopy(model.state_dict())
    model.train()
    assert model(input_ids, attention_mask=attention_mask, labels=dataset.labels).pruning_loss > 0
    one_batch = one_sgd_update(model, dataset, tmp_path / "one", batch_size=4, accumulation=1)
    model.load_state_dict(start)
    accumulated = one_sgd_update(model, dataset, tmp_path / "accumulated", batch_size=2, accumulation=2)
    moved = False
    for name, value in one_batch.items():
        torch.testing.assert_close(accumulated[name], value, rtol=0, atol=1e-6, msg=name)
        moved |= not torch.equal(value, start[name])
    assert moved


# ------------------------------------------------------------------------------------------------------ CUDA

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["sdpa_padded", "flash_varlen"])
@pytest.mark.parametrize("recipe", ["every_token_kept", "only_cls_kept"])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_cuda_half_precision_packed_matches_masked(model_type, recipe, backend, dtype):
    """The CUDA packed kernels in half precision are as close to an fp32 reference as the masked engine in the
    same precision is (the flash-attn tests' rule). The recipes decide far from the keep/drop boundary, so
    rounding cannot flip a decision; `only_cls_kept` still drops, so attention runs on compacted batches."""
    if backend == "flash_varlen" and not is_flash_attn_2_available():
        pytest.skip("flash-attn is not installed")
    model, input_ids, attention_mask = model_for_mixed_batch(
        model_type, "token_classification", recipe=recipe, packed_attention_backend=backend
    )
    model = model.cuda()
    input_ids, attention_mask = input_ids.cuda(), attention_mask.cuda()
    reference = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)
    model = model.to(dtype)
    masked = run(model, input_ids, attention_mask, "masked", output_hidden_states=True)
    packed = run(model, input_ids, attention_mask, "packed", output_hidden_states=True)

    assert torch.equal(packed.tokens_per_layer, reference.tokens_per_layer)
    assert torch.equal(masked.tokens_per_layer, reference.tokens_per_layer)
    for what in ("logits", "last_state"):
        pick = (lambda out: out.logits) if what == "logits" else (lambda out: out.hidden_states[-1])
        expected = pick(reference)
        masked_error = real_token_max_diff(pick(masked).float(), expected, attention_mask)
        packed_error = real_token_max_diff(pick(packed).float(), expected, attention_mask)
        floor = torch.finfo(dtype).eps * expected[attention_mask.bool()].abs().max().item()
        assert packed_error <= 3 * masked_error + floor, (what, packed_error, masked_error)


# ----------------------------------------------------------------------- bad calls raise ValueError naming them


@pytest.mark.parametrize("model_type", sorted(TESTERS))
def test_bad_calls_raise_a_value_error_naming_the_problem(model_type, tmp_path):
    model = TESTERS[model_type].make_model("sequence_classification", recipe="every_token_kept").eval()
    vocab = model.config.vocab_size
    with pytest.raises(ValueError, match="the batch is empty"):
        model(torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=f"examples \\[1\\] hold token ids outside the model's vocabulary 0..{vocab - 1} \\(e.g. {vocab}\\)"):
        model(torch.tensor([[2, 5, 3], [2, vocab, 3]]))
    model.config.num_hidden_layers += 1
    with pytest.raises(ValueError, match="num_hidden_layers=.* differs from .* the value this model was built with"):
        model(torch.tensor([[2, 5, 3]]))
    with pytest.raises(ValueError, match="num_hidden_layers=.* differs"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out" / "config.json").exists()


def test_compressed_bert_attention_maps_need_eager_attention():
    from transformers_prune import CompressedBertConfig, CompressedBertForSequenceClassification

    model = CompressedBertForSequenceClassification(CompressedBertConfig(**TINY_CONFIG_KWARGS)).eval()
    with pytest.raises(ValueError, match="output_attentions needs attention probabilities.*attn_implementation='eager'"):
        model(torch.tensor([[2, 5, 3]]), output_attentions=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("model_type", sorted(TESTERS))
def test_half_precision_forward_on_cpu_matches_float32(model_type, dtype):
    """Every type runs in bf16/fp16 (the GPU deployment dtypes; `bench --dtype`), the packed engine included, and
    lands within half-precision error of its fp32 outputs (decisions kept far from their thresholds)."""
    model = TESTERS[model_type].make_model("sequence_classification", recipe="every_token_kept").eval()
    input_ids, attention_mask = make_batch([7, 3, 5])
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask).logits
        got = model.to(dtype)(input_ids, attention_mask=attention_mask).logits
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), expected, atol=0.05 * max(1.0, expected.abs().max().item()), rtol=0.05)


@pytest.mark.parametrize("head", ["sequence_classification", "question_answering"])  # run_glue.py's and run_qa.py's
@pytest.mark.parametrize("model_type", [*sorted(TESTERS), "compressed-bert"])
def test_trainer_bf16_mixed_precision_trains_every_type(model_type, head, tmp_path):
    """`--bf16` (what a CUDA user passes to run_glue.py / run_qa.py) is autocast on the same training forward; on CPU
    it is CPU autocast. Masks, thresholds, Gumbel noise and integer tensors must survive it: a few steps give a
    finite loss and move both BERT's and the method's own parameters."""
    input_ids, attention_mask = make_batch((8, 5, 8, 3), seq_len=SEQ_LEN)
    if head == "sequence_classification":
        targets = [{"labels": torch.tensor(label)} for label in (0, 1, 1, 0)]
    else:
        targets = [{"start_positions": torch.tensor(start), "end_positions": torch.tensor(start + 1)} for start in (1, 2, 3, 1)]
    dataset = [{"input_ids": ids, "attention_mask": mask, **target} for ids, mask, target in zip(input_ids, attention_mask, targets)]
    if model_type == "compressed-bert":
        from transformers_prune import CompressedBertConfig, CompressedBertForQuestionAnswering, CompressedBertForSequenceClassification

        factorised = {f"encoder.layer.{i}.intermediate.dense": {"kind": "low_rank", "rank": 4} for i in range(TINY_CONFIG_KWARGS["num_hidden_layers"])}
        config = CompressedBertConfig(**TINY_CONFIG_KWARGS, compressed_modules=factorised)
        model_class = CompressedBertForSequenceClassification if head == "sequence_classification" else CompressedBertForQuestionAnswering
        model = model_class(config)
    else:
        # The stages in which the method's own parameters learn: LTP's soft stage (hard mode keeps thresholds
        # fixed), TR-BERT's train_both.
        overrides = {"autobert": {"training_stage": "train_both"}, "ltp": ACCUMULATION_CASES["ltp"]}.get(model_type, {})
        model = TESTERS[model_type].make_model(head, input_ids, attention_mask, **overrides)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, bf16=True, report_to="none", max_steps=3, learning_rate=1e-2,
        per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True,
    )
    result = Trainer(model=model, args=args, train_dataset=dataset).train()
    assert math.isfinite(result.training_loss)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), start[name])}
    assert any(name.startswith(model.base_model_prefix + ".encoder.layer.") for name in moved), sorted(moved)[:5]
    method_parameters = {name for name in start if name.startswith(model.base_model_prefix + ".encoder.") and ".layer." not in name}
    if method_parameters:
        assert moved & method_parameters, sorted(method_parameters)[:5]
