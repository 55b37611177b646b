"""Checkpoint folders the commands read, and the outputs they write: always whole or not at all.

Every command writes into a fresh temporary folder (or file) beside its target and moves it into place at the
end, so an interrupted or failed run leaves the target as it was. A target is never one of the command's own
inputs (or a folder holding one), and a non-empty target is replaced only when the user asks (`--overwrite`), then
whole: no file of the earlier content survives next to the new one. The move itself never replaces an output
that someone else wrote while the command ran (a second run into the same target) unless `--overwrite` was given.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, TextIO

CONFIG_FILE = "config.json"
# A checkpoint's weights: safetensors (one file, or shards listed in the index) or the legacy pickle.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)


# Files that hold a tokenizer's vocabulary; without one, AutoTokenizer builds BERT's with only its 5 special tokens.
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


def check_checkpoint_folder(path: str, need_weights: bool = False) -> None:
    """Raise FileNotFoundError unless `path` is a checkpoint folder: it has a config.json (and, with
    `need_weights`, one of `WEIGHT_FILES`); ValueError when its safetensors weights are unreadable (truncated,
    empty, not safetensors)."""
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        raise FileNotFoundError(f"{path} is not a checkpoint folder: it has no {CONFIG_FILE}")
    if need_weights and not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{path} has a {CONFIG_FILE} but no weights (none of {', '.join(WEIGHT_FILES)})")
    weights = os.path.join(path, "model.safetensors")
    if os.path.isfile(weights):
        check_safetensors_file(weights)


def check_max_length(path: str, max_length: int, option: str = "--max-length") -> None:
    """Raise ValueError when `max_length` tokens exceed the positions of the checkpoint at `path` (its
    `max_position_embeddings`): the embeddings would fail with an index error mid-run."""
    with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
        positions = json.load(f).get("max_position_embeddings")
    if isinstance(positions, int) and max_length > positions:
        raise ValueError(f"{option} {max_length} exceeds {path}'s max_position_embeddings ({positions})")


def check_safetensors_file(path: str) -> None:
    """Raise ValueError naming `path` unless its safetensors header reads and every tensor it lists lies inside
    the file (a truncated download keeps a valid header)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as f:
            f.keys()
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({' '.join(str(error).split())})") from None


def load_checkpoint_tokenizer(path: str):
    """`path`'s tokenizer; ValueError naming the folder when it has no vocabulary file or the tokenizer it gives is
    only special tokens (what a folder written by a plain `model.save_pretrained` yields): every word would be
    `[UNK]`."""
    from transformers import AutoTokenizer

    if not any(os.path.isfile(os.path.join(path, name)) for name in VOCABULARY_FILES):
        raise ValueError(
            f"{path} has no tokenizer (none of {', '.join(VOCABULARY_FILES)}); save the tokenizer of the model it "
            "came from into it: AutoTokenizer.from_pretrained(BASE).save_pretrained(FOLDER)"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise ValueError(f"{path}'s tokenizer has only its {len(tokenizer)} special tokens; every word would be [UNK]")
    return tokenizer


def load_trained_head(auto_class, path: str, purpose: str):
    """`auto_class.from_pretrained(path)` in eval mode; ValueError when the checkpoint lacks the head's weights
    (a pre-trained or other-task checkpoint): `purpose` would be computed from a freshly initialised head."""
    model, loading = auto_class.from_pretrained(path, output_loading_info=True)
    prefix = f"{model.base_model_prefix}."
    new = sorted(key for key in loading["missing_keys"] if not key.startswith(prefix))
    if new:
        raise ValueError(
            f"{path} has no trained {type(model).__name__.split('For', 1)[-1]} head (missing {', '.join(new)}); "
            f"{purpose} needs a checkpoint fine-tuned on the task"
        )
    return model.eval()


def copy_tokenizer_files(source: str, output_dir: str) -> None:
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(source, name)):
            shutil.copy2(os.path.join(source, name), output_dir)


def _contains(folder: str, path: str) -> bool:
    """Whether `path` is `folder` or lies inside it (real paths: links and `..` resolved)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_path(target: str, overwrite: bool, inputs: Iterable[str] = (), is_folder: bool = True) -> None:
    """Raise before anything is written when `target` may not be written.

    ValueError when `target` is one of `inputs` or (a folder) holds one, and when it is not empty and `overwrite`
    is False; FileExistsError when it exists as the wrong kind (a file where a folder is wanted, or the reverse).
    """
    for source in (path for path in inputs if os.path.lexists(path)):
        if os.path.realpath(target) == os.path.realpath(source):
            raise ValueError(f"the output {target} is the input {source}; write the result somewhere else")
        if is_folder and _contains(target, source):
            raise ValueError(f"the output {target} holds the input {source}; write the result somewhere else")
        if os.path.isdir(source) and _contains(source, target):
            raise ValueError(f"the output {target} lies inside the input {source}; write the result somewhere else")
    if not os.path.lexists(target):
        return
    if is_folder != os.path.isdir(target):
        kind = "a file" if is_folder else "a folder"
        raise FileExistsError(f"the output {target} exists and is {kind}; expected {'a folder' if is_folder else 'a file'}")
    if not overwrite and (not is_folder or os.listdir(target)):
        raise ValueError(f"the output {target} already exists{' and is not empty' if is_folder else ''}; "
                         "pass --overwrite to replace it whole")


def _staging_name(target: str, role: str) -> str:
    parent, name = os.path.split(os.path.abspath(target))
    return os.path.join(parent, f".{name}.{role}-{uuid.uuid4().hex[:8]}")


def _appeared(target: str) -> FileExistsError:
    return FileExistsError(
        f"the output {target} was written by someone else while this command ran; it is left as it is and this "
        "run's result is discarded (pass --overwrite to replace it)"
    )


def _publish_new(staged: str, target: str) -> None:
    """Put `staged` at `target` without replacing anything that appeared there since the start: `rename` onto a
    folder succeeds only while it is empty (what `check_output_path` allowed), and a file is published by a hard
    link, which fails when the name exists. Two runs into one target: one wins, the other raises."""
    try:
        if os.path.isdir(staged):
            os.rename(staged, target)
        else:
            os.link(staged, target)
            os.remove(staged)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
        raise _appeared(target) from error
    except OSError as error:  # ENOTEMPTY: a folder someone filled meanwhile
        if os.path.lexists(target):
            raise _appeared(target) from error
        raise


def _move_into_place(staged: str, target: str, overwrite: bool) -> None:
    """Put `staged` at `target`. Without `overwrite`, only where nothing was written since the start
    (`_publish_new`); with it, whatever `target` is then is replaced whole: an existing folder (or link to one) is
    renamed aside, then deleted. A crash between the two renames leaves the earlier content in `.NAME.previous-*`."""
    if not overwrite or not os.path.lexists(target):
        _publish_new(staged, target)
        return
    if not os.path.isdir(staged):
        os.replace(staged, target)
        return
    previous = _staging_name(target, "previous")
    os.rename(target, previous)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(previous, target)
        raise
    if os.path.islink(previous):  # the link goes, the folder it pointed to stays
        os.unlink(previous)
    else:
        shutil.rmtree(previous)


@contextmanager
def staged_output_folder(target: str, overwrite: bool = False, inputs: Iterable[str] = ()) -> Iterator[str]:
    """Yield an empty folder beside `target` to write the output into; when the block ends without an error it
    replaces `target` whole, otherwise it is deleted and `target` is left as it was (see `check_output_path`)."""
    check_output_path(target, overwrite, inputs)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    staged = _staging_name(target, "partial")
    os.mkdir(staged)
    try:
        yield staged
        _move_into_place(staged, target, overwrite)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


@contextmanager
def staged_output_file(
    path: str, overwrite: bool = False, inputs: Iterable[str] = (), binary: bool = False
) -> Iterator[TextIO | BinaryIO]:
    """Yield a file beside `path` to write into (text, or bytes with `binary`); it becomes `path` (`os.replace`)
    when the block ends without an error, otherwise it is deleted (see `check_output_path`)."""
    check_output_path(path, overwrite, inputs, is_folder=False)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    staged = _staging_name(path, "partial")
    try:
        with open(staged, "xb") if binary else open(staged, "x", encoding="utf-8") as f:
            yield f
        _move_into_place(staged, path, overwrite)
    finally:
        if os.path.exists(staged):
            os.remove(staged)


__all__ = [
    "CONFIG_FILE",
    "TOKENIZER_FILES",
    "VOCABULARY_FILES",
    "WEIGHT_FILES",
    "check_checkpoint_folder",
    "check_max_length",
    "check_output_path",
    "check_safetensors_file",
    "copy_tokenizer_files",
    "load_checkpoint_tokenizer",
    "load_trained_head",
    "staged_output_file",
    "staged_output_folder",
]
