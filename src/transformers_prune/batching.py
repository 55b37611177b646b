"""How inputs are grouped into batches: a row count in order (`consecutive_batches`), a row count after sorting by
length (`length_sorted_batches`, what a user of padded models does to waste less padding), or a budget of real
tokens (`token_budget_batches`): where a padding-free engine wins on a GPU.

A row-count batch of short inputs leaves a GPU idle, one of long inputs overflows its memory; the packed engine
costs what its real tokens cost, so a batch should hold as many inputs as fit a budget of real tokens. Sorting
by length first (`sort_by_length=True`) is what a user of padded models does to waste less padding; the packed
engine does not need it.

    from transformers_prune.batching import token_budget_batches

    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    for indices in token_budget_batches(lengths, max_tokens=16384):
        batch = tokenizer([texts[i] for i in indices], padding=True, return_tensors="pt")
"""

from __future__ import annotations


def consecutive_batches(count: int, batch_size: int) -> list[list[int]]:
    """Indices of `count` inputs in order, `batch_size` per batch (the last may hold fewer)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices of the inputs, longest first, `batch_size` per batch: each batch pads to nearly its own length."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [[order[i] for i in batch] for batch in consecutive_batches(len(order), batch_size)]


def token_budget_batches(lengths: list[int], max_tokens: int, sort_by_length: bool = False) -> list[list[int]]:
    """Indices of the inputs of each batch: consecutive inputs (or, with `sort_by_length`, inputs in order of
    length, longest first) while their real tokens sum to at most `max_tokens`; an input longer than the budget
    gets a batch of its own. Every index appears once."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if any(length < 1 for length in lengths):
        raise ValueError("every input needs at least one token")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort_by_length else list(range(len(lengths)))
    batches, current, filled = [], [], 0
    for index in order:
        if current and filled + lengths[index] > max_tokens:
            batches.append(current)
            current, filled = [], 0
        current.append(index)
        filled += lengths[index]
    if current:
        batches.append(current)
    return batches


__all__ = ["consecutive_batches", "length_sorted_batches", "token_budget_batches"]
