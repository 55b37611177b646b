"""SQuAD v1.1: sliding-window features, the best span per question from start/end logits, and the official EM / F1.

The pipeline is the one of HF's `run_qa.py`: question + context truncated to `max_length` (context only), windows
overlapping by `stride` tokens, each token's character span from the fast tokenizer's `offset_mapping`; the answer
of a question is the highest `start + end` logit span over its windows among the `n_best` starts and ends, inside
the context, at most `max_answer_length` tokens long. The metrics follow the official v1.1 evaluation script.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..folders import load_checkpoint_tokenizer
from .data import SquadExample

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse white space (official v1.1 rules)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    """Token-level F1 of the normalised strings."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    same = sum((Counter(prediction_tokens) & Counter(truth_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], examples: list[SquadExample]) -> dict[str, float]:
    """`{"exact_match", "f1"}` in percent: each question's best score over its gold answers, averaged."""
    exact_match = sum(max(exact_match_score(predictions[e.id], a) for a in e.answers) for e in examples)
    f1 = sum(max(f1_score(predictions[e.id], a) for a in e.answers) for e in examples)
    return {"exact_match": 100.0 * exact_match / len(examples), "f1": 100.0 * f1 / len(examples)}


@dataclass
class SquadFeatures:
    """Model inputs for SQuAD questions, one feature per context window (F features in all).

    Attributes:
        encodings: the tokenizer's model inputs (`input_ids`, `token_type_ids`, `attention_mask`), each a list of
            F unpadded token-id lists.
        example_index: `[F]` the question each feature belongs to.
        context_offsets: `[F][length]` each token's `(start, end)` characters in the context, None outside it.
    """

    encodings: dict[str, list[list[int]]]
    example_index: list[int]
    context_offsets: list[list[tuple[int, int] | None]]

    def __len__(self) -> int:
        return len(self.example_index)


def check_question_lengths(tokenizer, examples: list[SquadExample], max_length: int, stride: int) -> None:
    """Refuse (ValueError naming the question) a question so long that its windows leave the context no more than
    `stride` tokens: the tokenizer cannot slide such windows (it panics), and truncating the question would train
    and score on another question."""
    questions = tokenizer([example.question.lstrip() for example in examples], add_special_tokens=False)["input_ids"]
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for example, question in zip(examples, questions):
        room = max_length - special - len(question)
        if room <= stride:
            raise ValueError(
                f"question {example.id!r} has {len(question)} tokens: at max length {max_length} that leaves {max(room, 0)} "
                f"for the context, which must exceed the doc stride {stride}; raise the max length or lower the stride"
            )


def prepare_features(tokenizer, examples: list[SquadExample], max_length: int, stride: int) -> SquadFeatures:
    """Tokenise question + context with overflowing windows (`tokenizer` must be fast, for `offset_mapping`); a
    question too long for the windows is refused (`check_question_lengths`)."""
    check_question_lengths(tokenizer, examples, max_length, stride)
    encoded = tokenizer(
        [example.question.lstrip() for example in examples],
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_offsets = [
        [offset if sequence == 1 else None for offset, sequence in zip(offsets, encoded.sequence_ids(i))]
        for i, offsets in enumerate(encoded["offset_mapping"])
    ]
    encodings = {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}
    return SquadFeatures(encodings, list(encoded["overflow_to_sample_mapping"]), context_offsets)


def answer_token_positions(features: SquadFeatures, examples: list[SquadExample]) -> tuple[list[int], list[int]]:
    """Each feature's training target: the token positions of its question's first answer, or (0, 0), the [CLS]
    position, when the answer is not wholly inside the feature's window (as HF's `run_qa.py`)."""
    starts, ends = [], []
    for feature, offsets in enumerate(features.context_offsets):
        example = examples[features.example_index[feature]]
        first, last = example.answer_starts[0], example.answer_starts[0] + len(example.answers[0])
        inside = [token for token, span in enumerate(offsets) if span is not None]
        if not inside or offsets[inside[0]][0] > first or offsets[inside[-1]][1] < last:
            starts.append(0)
            ends.append(0)
            continue
        starts.append(next(token for token in inside if offsets[token][1] > first))
        ends.append(next(token for token in reversed(inside) if offsets[token][0] < last))
    return starts, ends


def window_tokenizer(checkpoint: str, max_length: int, stride: int):
    """`checkpoint`'s tokenizer, after checking that it can cut SQuAD windows: `stride` below `max_length`, and a
    fast tokenizer (the windows need its `offset_mapping`)."""
    if stride >= max_length:
        raise ValueError(f"--doc-stride ({stride}) must be smaller than --max-length ({max_length})")
    tokenizer = load_checkpoint_tokenizer(checkpoint)
    if not tokenizer.is_fast:
        raise ValueError(f"{checkpoint}'s tokenizer is not a fast tokenizer; SQuAD windows need its offset_mapping")
    return tokenizer


def training_windows(tokenizer, examples: list[SquadExample], max_length: int, stride: int) -> dict[str, list]:
    """The training columns of `examples`: each window's tokenizer inputs (unpadded lists) and its answer span as
    `start_positions` / `end_positions` (`answer_token_positions`)."""
    features = prepare_features(tokenizer, examples, max_length, stride)
    starts, ends = answer_token_positions(features, examples)
    return {**features.encodings, "start_positions": starts, "end_positions": ends}


def _best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets, n_best: int, max_answer_length: int):
    """`(score, (start_char, end_char))` of the best valid span of one feature, or None. Logits: `[length]`."""
    best = None
    starts, ends = np.argsort(start_logits)[::-1][:n_best], np.argsort(end_logits)[::-1][:n_best]
    for start in starts:
        for end in ends:
            if offsets[start] is None or offsets[end] is None or not 0 <= end - start < max_answer_length:
                continue
            score = start_logits[start] + end_logits[end]
            if best is None or score > best[0]:
                best = (score, (offsets[start][0], offsets[end][1]))
    return best


def best_answers(
    logits: list[tuple[np.ndarray, np.ndarray]],
    features: SquadFeatures,
    examples: list[SquadExample],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """The answer text of every question (empty when no window has a valid span).

    Args:
        logits: per feature, `(start_logits, end_logits)`, each `[length]` over the feature's real tokens.
    """
    best: dict[int, tuple] = {}
    for feature, (start_logits, end_logits) in enumerate(logits):
        span = _best_span(start_logits, end_logits, features.context_offsets[feature], n_best, max_answer_length)
        example = features.example_index[feature]
        if span is not None and (example not in best or span[0] > best[example][0]):
            best[example] = span
    answers = {}
    for index, example in enumerate(examples):
        start, end = best[index][1] if index in best else (0, 0)
        answers[example.id] = example.context[start:end]
    return answers


__all__ = [
    "SquadFeatures",
    "answer_token_positions",
    "best_answers",
    "exact_match_score",
    "f1_score",
    "normalize_answer",
    "prepare_features",
    "squad_scores",
    "training_windows",
    "window_tokenizer",
]
