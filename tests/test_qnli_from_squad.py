"""examples/stock_scripts/qnli_from_squad.py, the fresh held-out task of docs/stock_scripts.md: question-sentence pairs
from SQuAD. The positive sentence must hold the answer, the negative one must not be it, no article may feed both
splits, and a bad call must stop before anything is written."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "stock_scripts", "qnli_from_squad.py")


def squad_record(title: str, number: int) -> dict:
    context = f'{title} opened in {1900 + number}. Its keeper was Ann Smith of Leeds! By train? "Yes" they did.'
    answer = "Ann Smith of Leeds"
    question = f"Who kept {title} ({number})?"
    return {"id": f"{title}-{number}", "title": title, "context": context, "question": question,
            "answers": {"text": [answer], "answer_start": [context.index(answer)]}}


def write_squad(path, titles=("Alpha", "Beta", "Gamma"), per_title=4) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for title in titles:
            for number in range(per_title):
                f.write(json.dumps(squad_record(title, number)) + "\n")
    return str(path)


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_pairs_hold_the_answer_and_articles_do_not_cross(tmp_path):
    squad = write_squad(tmp_path / "squad.jsonl")
    done = run(squad, tmp_path / "out", "--train-articles", 2, "--dev-rows", 3)
    assert done.returncode == 0, done.stderr
    train, dev = read_rows(tmp_path / "out" / "train.csv"), read_rows(tmp_path / "out" / "dev.csv")
    assert len(train) == 2 * 4 * 2 and len(dev) == 3  # a positive and a negative per question; dev cut to --dev-rows
    assert list(train[0]) == ["question", "sentence", "label"]
    for row in train + dev:
        holds = row["sentence"] == "Its keeper was Ann Smith of Leeds!"
        assert holds == (row["label"] == "1"), row
    assert {row["question"].split()[2] for row in train} == {"Alpha", "Beta"}
    assert {row["question"].split()[2] for row in dev} == {"Gamma"}


def test_refuses_an_existing_output_folder_and_a_split_without_dev(tmp_path):
    squad = write_squad(tmp_path / "squad.jsonl")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    done = run(squad, tmp_path / "taken")
    assert done.returncode != 0 and "already exists" in done.stderr
    assert os.listdir(tmp_path / "taken") == ["keep.txt"]
    done = run(squad, tmp_path / "out", "--train-articles", 3)
    assert done.returncode != 0 and "--train-articles" in done.stderr
    assert not os.path.exists(tmp_path / "out")
