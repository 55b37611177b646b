"""Property-based checks (hypothesis) of what users type and hand over: every numeric config value, and the shapes of
text classification files.

- Config values: any number (finite, infinite, NaN, negative, huge) for any numeric key of any of our configs either
  builds a config that survives `save_pretrained`/`from_pretrained` unchanged, or is refused with an error naming
  the key; assigning it to a built config is never accepted where building with it is refused, is refused only
  for the same reason or because a value resolved at construction no longer fits, and a refused assignment leaves
  the old value.
- Data files: a CSV or JSON-lines file of any shape (missing columns, empty cells, bad labels, commas, quotes,
  newlines) is read exactly as written when every row is a valid example, and otherwise refused with one line naming
  the file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import tempfile
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from huggingface_hub.errors import StrictDataclassError

from transformers_prune import AdapLeRConfig, AutoBertConfig, CompressedBertConfig, LTPConfig, TranskimmerConfig
from transformers_prune.data_files import read_labelled_rows

from conftest import TINY_CONFIG_KWARGS

CONFIG_CLASSES = (TranskimmerConfig, LTPConfig, AutoBertConfig, AdapLeRConfig, CompressedBertConfig)


def is_numeric(annotation) -> bool:
    types = typing.get_args(annotation) or (annotation,)
    return any(t in (int, float) for t in types)


NUMERIC_KEYS = [
    (config_class, field.name)
    for config_class in CONFIG_CLASSES
    for field in dataclasses.fields(config_class)
    if is_numeric(field.type)
]

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 0.5, 1e-12, 1e308, -1e308, 10**18]),
)


def same_value(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_the_numeric_keys_cover_every_method():
    method_keys = {key for _, key in NUMERIC_KEYS}
    assert {"skim_coefficient", "threshold_lr_scale", "kd_temperature", "eta_scale", "eta_max", "hidden_size"} <= method_keys


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(NUMERIC_KEYS), value=NUMBERS)
def test_a_numeric_config_value_round_trips_or_is_refused_naming_its_key(key, value):
    config_class, name = key
    try:
        config = config_class(**{**TINY_CONFIG_KWARGS, name: value})
    except (ValueError, StrictDataclassError) as error:
        assert name in str(error), f"{name}={value!r}: {error}"
        built = False
    else:
        built = True
        with tempfile.TemporaryDirectory() as folder:
            config.save_pretrained(folder)
            loaded = config_class.from_pretrained(folder)
        assert same_value(getattr(loaded, name), getattr(config, name)), (name, value)
        assert not isinstance(value, float) or math.isfinite(value), f"{name}={value!r} was accepted"

    config = config_class(**TINY_CONFIG_KWARGS)
    before = getattr(config, name)
    try:
        setattr(config, name, value)
    except (ValueError, StrictDataclassError) as error:
        assert same_value(getattr(config, name), before)
        if built:  # only a key resolved at construction can refuse it, e.g. selection_layers from num_hidden_layers
            assert re.match(r"\w+=", str(error)) and not str(error).startswith(f"{name}="), f"{name}={value!r}: {error}"
        else:
            assert name in str(error)
    else:
        assert built, f"{name}={value!r} is refused at construction but accepted on assignment"


# ------------------------------------------------------------------------------------------------- data files

TEXTS = st.one_of(
    st.text(alphabet=st.sampled_from(list('ab ,;"\'\n\r\t\u2028é\x00')), max_size=12),
    st.sampled_from(["", " ", "a fine film", "good, really", 'say "hi"']),
)
LABELS = st.one_of(
    st.integers(min_value=-2, max_value=4),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["pos", "", None, "1", " 2 ", "-1", "0.5", True]),
)
COLUMNS = st.lists(st.sampled_from(["sentence", "label", "extra"]), min_size=1, max_size=3, unique=True)


def valid_example(row: dict, kind: str) -> bool:
    """The oracle: a row is an example when its text is non-blank and its label a class id, as written."""
    text, label = row.get("sentence"), row.get("label")
    if kind == "csv":  # every cell is read back as the text csv wrote
        text, label = ("" if value is None else str(value) for value in (text, label))
        return bool(text.strip()) and bool(re.fullmatch(r"[0-9]+", label.strip()))
    label_ok = (isinstance(label, int) and not isinstance(label, bool) and label >= 0) or (
        isinstance(label, str) and bool(re.fullmatch(r"[0-9]+", label.strip()))  # "1" as exported by many tools
    )
    return isinstance(text, str) and bool(text.strip()) and label_ok


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["csv", "jsonl"]),
    columns=COLUMNS,
    rows=st.lists(st.fixed_dictionaries({"sentence": TEXTS, "label": LABELS, "extra": TEXTS}), max_size=6),
    broken_line=st.booleans(),
)
def test_a_data_file_is_read_as_written_or_refused_in_one_line_naming_it(kind, columns, rows, broken_line):
    rows = [{key: row[key] for key in columns} for row in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"train.{kind}")
        with open(path, "w", newline="", encoding="utf-8") as f:
            if kind == "csv":
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
            else:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            if broken_line and kind == "jsonl":
                f.write('{"sentence": "cut off\n')
        expect_success = (
            {"sentence", "label"} <= set(columns) and bool(rows) and not (broken_line and kind == "jsonl")
            and all(valid_example(row, kind) for row in rows)
        )
        try:
            read = read_labelled_rows(path, "sentence", "label")
        except ValueError as error:
            message = str(error)
            assert not expect_success, f"valid file refused: {message}"
            assert message.startswith(path) and "\n" not in message, message
            return
    assert expect_success, f"invalid file accepted: {rows}"
    assert read.texts == [str(row["sentence"]) for row in rows]
    assert read.labels == [int(row["label"]) for row in rows]


@pytest.mark.parametrize("config_class", CONFIG_CLASSES)
def test_every_config_class_has_numeric_keys(config_class):
    assert any(cls is config_class for cls, _ in NUMERIC_KEYS)
