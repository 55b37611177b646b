"""Text classification and regression files the commands read (CSV, JSON lines, a JSON list; optionally gzipped)
and the JSON lines they write back with new columns.

Every row is checked when the file is read: a problem raises ValueError naming the file, the line (or item) and
what is wrong, e.g. `train.csv line 7: label 'pos' is not a class id (an integer >= 0)`.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import TextIO

JSON_SUFFIXES = (".json", ".jsonl")
CLASS_ID = re.compile(r"[0-9]+")


def _open_text(path: str) -> TextIO:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _is_json(path: str) -> bool:
    return path.removesuffix(".gz").endswith(JSON_SUFFIXES)


@dataclass
class DataFile:
    """The rows of a data file, each with where it sits in the file (`"line 7"`, `"item 3"`) for messages."""

    path: str
    columns: list[str]
    rows: list[dict]
    locations: list[str]

    def where(self, index: int) -> str:
        return f"{self.path} {self.locations[index]}"


def _read_csv(path: str, f: TextIO) -> DataFile:
    reader = csv.DictReader(f)
    try:
        return _checked_csv_rows(path, reader)
    except csv.Error as error:  # e.g. a NUL character
        raise ValueError(f"{path} line {reader.line_num} is not valid CSV: {error}") from None


def _checked_csv_rows(path: str, reader: csv.DictReader) -> DataFile:
    if reader.fieldnames is None:
        raise ValueError(f"{path} is empty: a CSV file needs a header row")
    header = reader.fieldnames
    separator = next((name for name in (";", "\t", "|") if len(header) == 1 and name in header[0]), None)
    if separator is not None:
        raise ValueError(f"{path}: its header {header[0]!r} looks {separator!r}-separated; CSV files here use commas")
    rows, locations = [], []
    for row in reader:
        if None in row:
            raise ValueError(
                f"{path} line {reader.line_num} has {len(header) + len(row[None])} fields, the header "
                f"{len(header)}: quote texts that hold commas"
            )
        rows.append(row)
        locations.append(f"line {reader.line_num}")
    return DataFile(path, list(header), rows, locations)


def _read_json(path: str, f: TextIO) -> DataFile:
    text = f.read()
    if text.lstrip().startswith("["):  # one JSON list of objects
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        numbered = [(f"item {i + 1}", item) for i, item in enumerate(items)]
    else:  # JSON lines
        numbered = []
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON text may hold U+2028
            if line.strip():
                try:
                    numbered.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path} line {number} is not valid JSON: {error.msg} (column {error.colno})") from None
    for location, item in numbered:
        if not isinstance(item, dict):
            raise ValueError(f"{path} {location} is not a JSON object with named columns: {str(item)[:60]!r}")
    columns = list(numbered[0][1]) if numbered else []
    return DataFile(path, columns, [item for _, item in numbered], [location for location, _ in numbered])


def read_data_file(path: str) -> DataFile:
    """Every row of a CSV (with a header) or JSON file; `.json`/`.jsonl` (and their `.gz`) are JSON lines or one
    JSON list of objects, anything else is CSV. Raises FileNotFoundError, or ValueError naming the line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        with _open_text(path) as f:
            data = _read_json(path, f) if _is_json(path) else _read_csv(path, f)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from None
    except (EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"{path} is not a readable gzip file: {error}") from None
    if not data.rows:
        raise ValueError(f"{path} has no data rows")
    return data


def check_columns(data: DataFile, columns: list[str]) -> None:
    missing = sorted(set(columns) - set(data.columns))
    if missing:
        raise ValueError(f"{data.path} lacks columns {missing}; it has {data.columns}")


def class_id(value) -> int | None:
    """A label as a class id: an integer >= 0 (a JSON int, or the digits of a CSV cell); None if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and CLASS_ID.fullmatch(value.strip()):
        return int(value)
    return None


def _label_problem(value, column: str, regression: bool = False) -> str:
    """Why `value` is not a class id (see `class_id`), or with `regression` not a real number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"the {column!r} value is missing"
    if regression:
        return f"label {value!r} is not a finite real number (the model is a regression model: one label)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"label {value!r} is not a class id (an integer >= 0); map class names to 0, 1, ... first"
    if math.isfinite(number) and number == int(number):  # -1, 1.0, True
        return f"label {value!r} is not a class id (an integer >= 0)"
    return f"label {value!r} is not a class id (an integer >= 0); real-valued (regression) labels are not supported"


@dataclass
class LabelledRows:
    """The rows of a text classification (or regression) file that a command uses, checked.

    Attributes:
        data: the rows used (labels turned into class ids, or floats for regression), with their places in the file.
        texts, labels: the text and label of each row used.
        file_labels: the label of every row of the file, also those `max_samples` left out.
        text_pairs: the second text of each row used, for sentence-pair files (None otherwise).
    """

    data: DataFile
    texts: list[str]
    labels: list[int] | list[float]
    file_labels: list[int] | list[float] = field(repr=False)
    text_pairs: list[str] | None = None

    @property
    def path(self) -> str:
        return self.data.path


def regression_label(value) -> float | None:
    """A label as a real number (a JSON number, or a CSV cell that parses as a finite float); None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _checked_text(data: DataFile, index: int, column: str) -> str:
    text = data.rows[index].get(column)
    if not isinstance(text, str) or not text.strip():
        problem = "is empty" if text is None or isinstance(text, str) else f"is not text: {text!r}"
        raise ValueError(f"{data.where(index)}: the {column!r} cell {problem}")
    return text


def read_labelled_rows(
    path: str,
    text_column: str,
    label_column: str,
    max_samples: int | None = None,
    shuffle_seed: int | None = None,
    text_pair_column: str | None = None,
    regression: bool = False,
) -> LabelledRows:
    """Read and check every row of `path` (non-empty text, and second text with `text_pair_column`; a class-id
    label, or a real number with `regression`), then keep `max_samples` of them: the first ones, or with
    `shuffle_seed` the first after `random.Random(shuffle_seed).shuffle` of the row indices (for files sorted by
    label). Raises ValueError naming the file and line of the first bad row."""
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be at least 1 (None means every row), got {max_samples}")
    data = read_data_file(path)
    check_columns(data, [text_column, label_column] + ([text_pair_column] if text_pair_column else []))
    texts, pairs, labels = [], [], []
    for index, row in enumerate(data.rows):
        texts.append(_checked_text(data, index, text_column))
        if text_pair_column:
            pairs.append(_checked_text(data, index, text_pair_column))
        value = row.get(label_column)
        label = regression_label(value) if regression else class_id(value)
        if label is None:
            raise ValueError(f"{data.where(index)}: {_label_problem(value, label_column, regression)}")
        labels.append(label)
    order = list(range(len(data.rows)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    order = order[:max_samples]
    rows = [{**data.rows[i], label_column: labels[i]} for i in order]
    used = DataFile(data.path, data.columns, rows, [data.locations[i] for i in order])
    used_pairs = [pairs[i] for i in order] if text_pair_column else None
    return LabelledRows(used, [texts[i] for i in order], [labels[i] for i in order], labels, used_pairs)


def first_label_outside(rows: LabelledRows, num_labels: int) -> str | None:
    """A message naming the first row whose label is not below `num_labels`, or None."""
    for index, label in enumerate(rows.labels):
        if label >= num_labels:
            classes = f"the model's {num_labels} classes (0 to {num_labels - 1})"
            return f"{rows.data.where(index)}: label {label} is not one of {classes}"
    return None


def write_rows_with_columns(f: TextIO, rows: list[dict], columns: dict[str, list]) -> None:
    """JSON lines into `f`: each row of `rows` with the new `columns` (one value per row) added."""
    for index, row in enumerate(rows):
        f.write(json.dumps({**row, **{name: values[index] for name, values in columns.items()}}) + "\n")


__all__ = [
    "DataFile",
    "LabelledRows",
    "check_columns",
    "class_id",
    "first_label_outside",
    "read_data_file",
    "read_labelled_rows",
    "regression_label",
    "write_rows_with_columns",
]
