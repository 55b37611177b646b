"""The benchmark tasks and their local dev data: which file, how it is read, which subset is used.

| task  | kind                | default file (under the data dir) | text column | default max length |
|-------|---------------------|-----------------------------------|-------------|--------------------|
| sst2  | classification      | glue/sst2/dev.csv                 | sentence    | 128                |
| imdb  | classification      | imdb/test.jsonl.gz                | text        | 512                |
| squad | question-answering  | squad/v1.1/dev-v1.1.json          | -           | 384                |

Classification files are CSV (with a header) or JSON lines (optionally gzipped) holding the text column and an
integer `label`; SQuAD files use the official nested v1.1 layout.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
from dataclasses import dataclass

from ..resources import bundled_file

CLASSIFICATION = "classification"
QUESTION_ANSWERING = "question-answering"


@dataclass(frozen=True)
class TaskSpec:
    """What the benchmark needs to know about a task.

    Attributes:
        kind: `CLASSIFICATION` or `QUESTION_ANSWERING`.
        data_path: the dev file, relative to the data dir (the layout of `shared/data`).
        max_length: default `--max-length`, also the length the HF padded baseline pads to.
        metrics: figures the task reports; the first is the one plotted.
        text_column: the input column of a classification file.
        num_labels: classes a classifier must have.
        shuffle: shuffle the rows with `random.Random(seed)` before taking the first `max_examples`
            (IMDB's files are sorted by label).
        train_path: the training file, relative to the data dir: what a quantizer calibrates on.
    """

    name: str
    kind: str
    data_path: str
    max_length: int
    metrics: tuple[str, ...]
    text_column: str | None = None
    num_labels: int = 2
    shuffle: bool = False
    train_path: str | None = None


TASKS = {
    "sst2": TaskSpec(
        "sst2", CLASSIFICATION, "glue/sst2/dev.csv", 128, ("accuracy",), text_column="sentence", train_path="glue/sst2/train.csv"
    ),
    "imdb": TaskSpec(
        "imdb", CLASSIFICATION, "imdb/test.jsonl.gz", 512, ("accuracy",), text_column="text", shuffle=True,
        train_path="imdb/train.jsonl.gz",
    ),
    "squad": TaskSpec(
        "squad", QUESTION_ANSWERING, "squad/v1.1/dev-v1.1.json", 384, ("f1", "exact_match"), train_path="squad/v1.1/train-v1.1.json"
    ),
}


@dataclass
class ClassificationData:
    texts: list[str]
    labels: list[int]
    source: str
    subset: str


@dataclass(frozen=True)
class SquadExample:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...] = ()  # each answer's first character in the context (what training reads)


@dataclass
class SquadData:
    examples: list[SquadExample]
    source: str
    subset: str


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def default_data_dir() -> str | None:
    """`../shared/data` relative to the working directory, when it exists."""
    path = os.path.normpath(os.path.join(os.getcwd(), "..", "shared", "data"))
    return path if os.path.isdir(path) else None


def _task_file(task: TaskSpec, relative_path: str, given: str | None, what: str, data_dir: str | None, bundled: str | None, missing: str) -> str:
    """`given` (a `what` the user named), else `relative_path` under `data_dir`, else under `default_data_dir()`,
    else the package's `bundled` file; FileNotFoundError (`missing` when nothing was found) otherwise."""
    if given is not None:
        if not os.path.isfile(given):
            raise FileNotFoundError(f"{what} {given} does not exist")
        return given
    if data_dir is not None:
        path = os.path.join(data_dir, relative_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--data-dir {data_dir} has no {relative_path} for task {task.name}")
        return path
    default_dir = default_data_dir()
    if default_dir is not None and os.path.isfile(os.path.join(default_dir, relative_path)):
        return os.path.join(default_dir, relative_path)
    if bundled is not None:
        return bundled_file(bundled)
    raise FileNotFoundError(missing)


def resolve_data_file(task: TaskSpec, data_file: str | None = None, data_dir: str | None = None) -> str:
    """The dev file to read: `data_file`, else the task's file under `data_dir`, else under `default_data_dir()`,
    else (SST-2 only) the dev set bundled with the package."""
    return _task_file(
        task, task.data_path, data_file, "data file", data_dir, "sst2_dev.csv" if task.name == "sst2" else None,
        f"no data for task {task.name}: pass --data-dir (a folder holding {task.data_path}) or --data-file",
    )


def resolve_train_file(task: TaskSpec, train_file: str | None = None, data_dir: str | None = None) -> str:
    """The training file to calibrate on: `train_file`, else the task's under `data_dir`, else under
    `default_data_dir()`, else (SST-2 only) the training sample bundled with the package."""
    return _task_file(
        task, task.train_path, train_file, "calibration file", data_dir, "sst2_train_8k.csv" if task.name == "sst2" else None,
        f"OpenVINO's int8 peer calibrates on task {task.name}'s training inputs, and no {task.train_path} was found: "
        "pass --calibration-file, or leave OpenVINO out (--peers ort)",
    )


def load_task_data(task: TaskSpec, path: str, max_examples: int | None = None, seed: int = 42):
    """`ClassificationData` or `SquadData` for `task` from `path`, cut to the first `max_examples`."""
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"--max-examples must be at least 1, got {max_examples}")
    if task.kind == CLASSIFICATION:
        return load_classification(task, path, max_examples, seed)
    return load_squad(path, max_examples)


def _read_records(path: str) -> list[dict]:
    """Rows of a CSV file with a header, or of a JSON-lines file (`.jsonl`, `.json`, optionally `.gz`)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if path.removesuffix(".gz").endswith(".csv"):
            return list(csv.DictReader(f))
        try:
            return [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is neither CSV (by its name) nor JSON lines: {error}") from error


def _subset(rows: list, max_examples: int | None, shuffle: bool, seed: int) -> tuple[list, str]:
    """The rows to use and a sentence saying which they are."""
    total = len(rows)
    if shuffle:
        rows = list(rows)
        random.Random(seed).shuffle(rows)
    order = f"after random.Random({seed}).shuffle" if shuffle else "in file order"
    if max_examples is None or max_examples >= total:
        return rows, f"all {total} examples" + (f" ({order})" if shuffle else "")
    return rows[:max_examples], f"first {max_examples} of {total} examples {order}"


def load_classification(task: TaskSpec, path: str, max_examples: int | None, seed: int) -> ClassificationData:
    records = _read_records(path)
    if not records:
        raise ValueError(f"{path} holds no rows")
    missing = {task.text_column, "label"} - set(records[0])
    if missing:
        raise ValueError(
            f"{path} lacks columns {sorted(missing)} for task {task.name}: it needs {task.text_column},label "
            f"(found {sorted(records[0])})"
        )
    rows, subset = _subset(records, max_examples, task.shuffle, seed)
    try:
        labels = [int(row["label"]) for row in rows]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: every label must be an integer ({error})") from error
    unexpected = sorted(set(labels) - set(range(task.num_labels)))
    if unexpected:
        raise ValueError(f"{path} has labels {unexpected}; task {task.name} has labels 0..{task.num_labels - 1}")
    return ClassificationData([row[task.text_column] for row in rows], labels, path, subset)


def _squad_problem(qa: dict, context) -> str | None:
    """What is wrong with one SQuAD v1.1 question (`qa`) of a paragraph, or None."""
    if not isinstance(qa.get("id"), str) or not qa["id"]:
        return f"its id {qa.get('id')!r} is not a non-empty string"
    if not isinstance(qa.get("question"), str) or not qa["question"].strip():
        return "its question is empty or not a string"
    if not isinstance(context, str) or not context.strip():
        return "its paragraph's context is empty or not a string"
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers:
        return "it has no answers (SQuAD v1.1 has an answer for every question; is the file v2?)"
    for answer in answers:
        text, start = answer.get("text") if isinstance(answer, dict) else None, answer.get("answer_start") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not text:
            return f"an answer's text {text!r} is not a non-empty string"
        if not isinstance(start, int) or isinstance(start, bool):
            return f"answer_start {start!r} is not an integer"
        if not 0 <= start <= len(context) - len(text):
            return f"answer_start {start} puts the answer outside its {len(context)}-character context"
        if context[start : start + len(text)] != text:
            return f"the context at answer_start {start} reads {context[start : start + len(text)]!r}, not the answer {text!r}"
    return None


def load_squad(path: str, max_examples: int | None) -> SquadData:
    """Questions of an official SQuAD v1.1 file (`{"data": [{"paragraphs": [{"context", "qas"}]}]}`), in file order.

    Every question is checked first (ValueError `path: question N (id X): problem`): a non-empty id, unique in the
    file, a non-empty question and context, and answers whose integer `answer_start` points at their text."""
    try:
        with open(path, encoding="utf-8") as f:
            paragraphs = [paragraph for article in json.load(f)["data"] for paragraph in article["paragraphs"]]
        rows = [(qa, paragraph.get("context")) for paragraph in paragraphs for qa in paragraph["qas"]]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a SQuAD v1.1 file ({{'data': [{{'paragraphs': ...}}]}}): {error!r}") from error
    if not rows:
        raise ValueError(f"{path} holds no questions")
    seen = set()
    for number, (qa, context) in enumerate(rows, 1):
        problem = _squad_problem(qa, context) if isinstance(qa, dict) else "it is not a JSON object"
        if problem is None and qa["id"] in seen:
            problem = "its id is used by an earlier question (ids name the predictions)"
        if problem is not None:
            raise ValueError(f"{path}: question {number} (id {qa.get('id') if isinstance(qa, dict) else None!r}): {problem}")
        seen.add(qa["id"])
    examples = [
        SquadExample(
            qa["id"], qa["question"], context, tuple(a["text"] for a in qa["answers"]),
            tuple(a["answer_start"] for a in qa["answers"]),
        )
        for qa, context in rows
    ]
    examples, subset = _subset(examples, max_examples, shuffle=False, seed=0)
    return SquadData(examples, path, subset)


__all__ = [
    "CLASSIFICATION",
    "QUESTION_ANSWERING",
    "TASKS",
    "ClassificationData",
    "SquadData",
    "SquadExample",
    "TaskSpec",
    "default_data_dir",
    "get_task",
    "load_task_data",
    "resolve_data_file",
    "resolve_train_file",
]
