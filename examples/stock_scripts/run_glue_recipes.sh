#!/usr/bin/env bash
# The stock-script recipes of docs/stock_scripts.md on one GLUE task (the first TRAIN_SAMPLES training rows, 256 by
# default, batch 8, 3 epochs per stage, every dev row), through glue_calls.py (run_glue.py's calls, offline), once
# per seed. SST-2 is the task the recipes were set on; STS-B (regression) and IMDB (JSON lines, see TRAIN_FILE) at
# 1,024 rows are the held-out checks (five settings were then chosen on them; see the doc), question-sentence pairs
# from SQuAD (qnli_from_squad.py) the fresh one (two more were chosen after it). Each run appends one JSON line
# (task, recipe, seed, metrics, tokens kept per layer) to OUT/results.jsonl; `python
# examples/stock_scripts/summarize.py OUT/results.jsonl` prints the table.
# Each token method's trained model is then calibrated (calibrate.py): its inference-time pruning strength is set on
# the TUNING_ROWS training rows after the first TRAIN_SAMPLES (never trained on, never the dev rows) to the strongest
# that stays within 1 point of the dense model there, and scored on the dev rows as RECIPE-calibrated.
# TRAIN_FILE, DEV_FILE, MAX_SEQ_LENGTH, TRAIN_SAMPLES, TUNING_ROWS and DENSE_LR (environment) replace
# DATA_DIR/glue/TASK/{train,dev}.csv, 64, 256, 500 and the learning rate 2e-4 of the two runs from the pre-trained
# BERT (dense and AdapLeR), e.g. for IMDB as JSON lines; DENSE_LR is for tasks where the dense model does not learn
# at 2e-4 (the other methods start from the dense model and keep their settings). About 12 minutes per SST-2 seed at
# 256 rows on this project's 2-core CPU with OMP_NUM_THREADS=1 (STS-B at 1,024: about 30; IMDB at 1,024 and 128
# tokens: about an hour; each further TR-BERT alpha adds its two stages and calibration).
# Usage: bash examples/stock_scripts/run_glue_recipes.sh [DATA_DIR] [OUT] [TASK] [SEED ...]
set -euo pipefail
TASK=${3:-sst2}
DATA=${1:-../shared/data}/glue/$TASK
TRAIN=${TRAIN_FILE:-$DATA/train.csv}
DEV=${DEV_FILE:-$DATA/dev.csv}
LENGTH=${MAX_SEQ_LENGTH:-64}
SAMPLES=${TRAIN_SAMPLES:-256}
TUNING=${TUNING_ROWS:-500}
STEPS=$(( (SAMPLES + 7) / 8 * 3 ))  # optimizer steps per stage: batch 8, 3 epochs
DENSE_LR=${DENSE_LR:-2e-4}
# AdapLeR's predictor learning-rate scale holds the predictors' movement (scale x learning rate x steps) at the value
# chosen on SST-2 (300 x 2e-4 x 96 steps), never below the original's 1: longer runs, or a larger learning rate, need
# less of a push (docs/stock_scripts.md). 300 at 96 steps and 2e-4, 75 at 384 steps.
CP_SCALE=$(python -c "print(max(1, round(300 * 2e-4 * 96 / ($STEPS * $DENSE_LR))))")
OUT=${2:-runs/stock-$TASK}
SEEDS=("${@:4}"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(42)
HERE=$(dirname "$0")
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
mkdir -p "$OUT"
# AdapLeR's saliency targets: the text column(s) by run_glue.py's rule (`sentence1` + `sentence2`, else the first two
# columns that are not `label`, else the only one). Its run reads the targets from JSON, and run_glue.py wants one
# extension for both files, so the dev rows go to JSON too (labels as numbers: class ids, or floats for regression).
read -r TEXT PAIR < <(python -c "import sys; from transformers_prune.data_files import read_data_file as r; c = [n for n in r(sys.argv[1]).columns if n != 'label']; print(*(['sentence1', 'sentence2'] if {'sentence1', 'sentence2'} <= set(c) else c[:2]))" "$TRAIN")
as_json() {  # as_json FILE [FIRST LAST]: rows [FIRST, LAST) of FILE (all by default) as JSON lines, labels as numbers
  python - "$@" <<'PY'
import json, sys
from transformers_prune.data_files import class_id, read_data_file
path, *span = sys.argv[1:]
rows = read_data_file(path).rows
first, last = (int(span[0]), int(span[1])) if span else (0, len(rows))
if len(rows) < last:
    sys.exit(f"{path} has {len(rows)} rows; the recipe needs {last} (TRAIN_SAMPLES + TUNING_ROWS)")
for row in rows[first:last]:
    label = class_id(row["label"])
    print(json.dumps({**row, "label": label if label is not None else float(row["label"])}))
PY
}
as_json "$DEV" > "$OUT/dev.json"
as_json "$TRAIN" "$SAMPLES" $((SAMPLES + TUNING)) > "$OUT/tuning.json"  # the calibration rows: held out of training

glue() {  # glue RECIPE START LEARNING_RATE [TRAIN DEV [glue_calls options]]: one run_glue-like run in $RUN at $SEED, its
          # result line appended to results.jsonl
  python "$HERE/glue_calls.py" "$2" "$RUN/$1" --train-file "${4:-$TRAIN}" --validation-file "${5:-$DEV}" \
    --max-train-samples "$SAMPLES" --max-seq-length "$LENGTH" --epochs 3 --learning-rate "$3" --seed "$SEED" "${@:6}" \
    > "$RUN/$1.log" 2>&1
  record "$1" "$RUN/$1.log" '{}'
}
LINE='{}'  # what the lines of the current step add (TR-BERT's alpha)
record() {  # record RECIPE LOG JSON: the result line (LOG's last line, merged with JSON and LINE) appended to results.jsonl
  tail -n 1 "$2" | python -c "import json, sys; print(json.dumps({'task': '$TASK', 'recipe': '$1', 'seed': $SEED, **json.load(sys.stdin), **json.loads(sys.argv[1]), **json.loads(sys.argv[2])}))" "$3" "$LINE" \
    >> "$OUT/results.jsonl"
}
evaluate() {  # evaluate MODEL ROWS: run_glue.py without --do_train (glue_calls.py --evaluate-only) on ROWS
  python "$HERE/glue_calls.py" "$1" "$RUN/evaluation" --evaluate-only --train-file "$TRAIN" --validation-file "$2" \
    --max-train-samples "$SAMPLES" --max-seq-length "$LENGTH" 2> /dev/null
}
calibrate() {  # calibrate RECIPE KEY VALUE...: RECIPE's KEY set on the tuning rows (calibrate.py), then scored on dev
  python "$HERE/calibrate.py" "$RUN/$1" "$RUN/$1-calibrated" --key "$2" --values "${@:3}" --reference "$DENSE_TUNING" \
    --train-file "$TRAIN" --tuning-file "$OUT/tuning.json" --max-train-samples "$SAMPLES" --max-seq-length "$LENGTH" \
    > "$RUN/$1-calibration.json"
  evaluate "$RUN/$1-calibrated" "$DEV" > "$RUN/$1-calibrated.log"
  record "$1-calibrated" "$RUN/$1-calibrated.log" "{\"calibration\": $(cat "$RUN/$1-calibration.json")}"
}
convert() { transformers-prune convert "$@" --overwrite > /dev/null; }

for SEED in "${SEEDS[@]}"; do
  RUN=$OUT/seed$SEED
  mkdir -p "$RUN"

  glue dense "$MODEL" "$DENSE_LR"                                  # plain BERT: the reference and the start below
  DENSE_TUNING=$(evaluate "$RUN/dense" "$OUT/tuning.json" | tail -n 1 | python -c "import json, sys; m = json.load(sys.stdin); print(100 * m.get('pearson', m.get('accuracy')))")
  convert --to ltp "$RUN/dense" "$RUN/ltp-soft-init" --set masking_mode=soft --set final_token_threshold=0.005
  glue ltp-soft "$RUN/ltp-soft-init" 2e-5
  convert --to ltp "$RUN/ltp-soft" "$RUN/ltp-hard-init" --set masking_mode=hard
  glue ltp "$RUN/ltp-hard-init" 1e-5
  calibrate ltp threshold_scale 1 0.6 0.4 0.2 0.1 0.04 0.02
  # TR-BERT's alpha (the kept fraction's weight in the policy's reward) is set per task, as the paper sets it, on the
  # tuning rows: the first of 1, 0.5, 0.25 whose calibrated model passes there, else 0.25. A later try's lines
  # replace the earlier ones in summarize.py's table; every line names its alpha.
  for ALPHA in 1 0.5 0.25; do
    LINE="{\"alpha\": $ALPHA}"
    convert --to autobert "$RUN/dense" "$RUN/autobert-rl-init" --set guide_rate=0 --set alpha="$ALPHA"
    glue autobert-rl "$RUN/autobert-rl-init" 3e-3
    convert --to autobert "$RUN/autobert-rl" "$RUN/autobert-both-init" --set training_stage=train_both
    glue autobert "$RUN/autobert-both-init" 2e-5
    calibrate autobert keep_threshold 0.5 0.3 0.2 0.1 0.05 0.02 0.01
    python -c "import json, sys; sys.exit(not json.load(open(sys.argv[1]))['passed'])" "$RUN/autobert-calibration.json" && break
  done
  LINE='{}'
  transformers-prune compress "$RUN/dense" "$RUN/compressed-init" --method svd --targets output word_embeddings --ratio 3 --overwrite > /dev/null
  glue compressed "$RUN/compressed-init" 2e-5
  convert --to transkimmer-bert "$RUN/dense" "$RUN/transkimmer-init" --set skim_lr_scale=100 --set skim_coefficient=0.5
  glue transkimmer "$RUN/transkimmer-init" 2e-5
  calibrate transkimmer keep_threshold 0.5 0.3 0.2 0.1 0.05 0.02 0.01
  # gamma 0.02 (the original's 0.005 x 4): the KL toward the saliency targets weighs more, and on IMDB the
  # predictors then keep fewer tokens for less loss (docs/stock_scripts.md). Without targets gamma is unused.
  # AdapLeR fine-tunes the pre-trained BERT, as the dense step does, at the dense step's learning rate (the original
  # trains both at 3e-5).
  convert --to adapler-bert "$MODEL" "$RUN/adapler-init" --set cp_lr_scale="$CP_SCALE" --set gamma=0.02
  glue adapler "$RUN/adapler-init" "$DENSE_LR"                      # without saliency targets: run_glue.py as is
  transformers-prune saliency "$RUN/dense" --data-file "$TRAIN" --text-column "$TEXT" ${PAIR:+--text-pair-column "$PAIR"} \
    --max-length "$LENGTH" --max-samples "$SAMPLES" --output-file "$RUN/train_saliency.json" --overwrite > /dev/null 2>&1
  # The text columns named, as run_glue.py's comments invite: its rule would read `saliency` as a second sentence.
  glue adapler-saliency "$RUN/adapler-init" "$DENSE_LR" "$RUN/train_saliency.json" "$OUT/dev.json" --text-columns "$TEXT" $PAIR
  calibrate adapler-saliency eta_scale 1 0.6 0.4 0.2 0.1 0.04 0.02
done
