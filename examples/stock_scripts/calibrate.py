"""Set a trained token-pruning model's inference-time pruning strength on rows held out of training: the first of
`--values` (strongest pruning first) whose task score on `--tuning-file` is within `--tolerance` points of the dense
model's there (`--reference`), or, when none is, the best-scoring one, the stronger pruning on a tie (keeping every
token is no safe fallback: AdapLeR trained on IMDB scored 68.6 so against 77.8 as trained). Each value is written
with `transformers-prune convert --set KEY=VALUE` into OUTPUT_DIR (which convert refuses inside MODEL) and scored by
glue_calls.py `--evaluate-only`, as a user of the stock scripts would do it; OUTPUT_DIR ends holding the chosen
model. Prints one JSON line: the key, the chosen value, its tuning score, the reference, whether it passed, and
every value tried with its score.

The knobs (each read at every forward, so no retraining): LTP's `threshold_scale`, Transkimmer's and TR-BERT's
`keep_threshold`, AdapLeR's `eta_scale`. The papers set their trade-off coefficient per task and retrain; this is
the cheap stand-in a deployer has, chosen on data the test rows never see.

    python examples/stock_scripts/calibrate.py runs/tk runs/tk-calibrated --key keep_threshold \\
        --values 0.5 0.3 0.2 0.1 --reference 81.0 --train-file train.json --tuning-file tuning.json --max-seq-length 128
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from transformers import AutoConfig


def task_score(metrics: dict) -> float:
    """The score the tolerance is in: Pearson's r x 100 for regression, accuracy x 100 otherwise."""
    return 100 * metrics["pearson"] if "pearson" in metrics else 100 * metrics["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the trained token-pruning model")
    parser.add_argument("output_dir", help="receives the model with the chosen value")
    parser.add_argument("--key", required=True, help="the inference-time config field to set")
    parser.add_argument("--values", nargs="+", required=True, help="candidates, strongest pruning first")
    parser.add_argument("--reference", type=float, required=True,
                        help="the dense model's score on the tuning rows (x100)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="points below the reference a value may score")
    parser.add_argument("--train-file", required=True, help="the training file (glue_calls.py reads its labels)")
    parser.add_argument("--tuning-file", required=True, help="labelled rows held out of training and of the test set")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--text-columns", nargs="+")
    args = parser.parse_args()
    for path in (args.train_file, args.tuning_file):  # before anything is written
        if not Path(path).is_file():
            parser.error(f"no file {path}")

    model_type = AutoConfig.from_pretrained(args.model, trust_remote_code=True).model_type
    glue_calls = Path(__file__).with_name("glue_calls.py")
    scratch = tempfile.TemporaryDirectory()  # glue_calls.py's output_dir, which evaluation leaves empty

    def write(value) -> None:
        command = ["transformers-prune", "convert", "--to", model_type, args.model, args.output_dir,
                   "--set", f"{args.key}={value}", "--overwrite"]
        if subprocess.run(command, stdout=subprocess.DEVNULL).returncode:  # convert has said why, on stderr
            sys.exit(f"calibrate.py: could not write {args.model} with {args.key}={value}")

    def passes(entry: dict) -> bool:
        return entry["score"] >= args.reference - args.tolerance

    tried = []
    for value in args.values:
        write(value)
        command = [sys.executable, str(glue_calls), args.output_dir, scratch.name, "--evaluate-only",
                   "--train-file", args.train_file, "--validation-file", args.tuning_file,
                   "--max-seq-length", str(args.max_seq_length)]
        command += ["--max-train-samples", str(args.max_train_samples)] if args.max_train_samples else []
        command += ["--text-columns", *args.text_columns] if args.text_columns else []
        evaluation = subprocess.run(command, capture_output=True, text=True)
        if evaluation.returncode:
            sys.exit(f"calibrate.py: evaluating {args.key}={value} failed:\n{evaluation.stderr[-2000:]}")
        metrics = json.loads(evaluation.stdout.strip().splitlines()[-1])
        score = round(task_score(metrics), 2)
        tried.append({"value": json.loads(value), "score": score, "kept_per_layer": metrics["kept_per_layer"]})
        if passes(tried[-1]):
            break
    chosen = tried[-1] if passes(tried[-1]) else max(tried, key=lambda entry: entry["score"])
    if chosen is not tried[-1]:
        write(chosen["value"])
    print(json.dumps({"key": args.key, "value": chosen["value"], "tuning_score": chosen["score"],
                      "reference": args.reference, "passed": passes(chosen), "tried": tried}))


if __name__ == "__main__":
    main()
