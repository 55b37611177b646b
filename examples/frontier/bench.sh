#!/usr/bin/env bash
# One benchmark run of a task's frontier (called by run_sst2.sh, run_imdb.sh and run_squad.sh): every trained model
# of OUTPUT_DIR against the dense model's baselines (HF, dense-packed, ONNX Runtime fp32/int8, torch int8, truncated
# inputs), each token method also exported to ONNX Runtime and in torch int8, and at two or three more operating points of
# its inference-time knob. Writes docs/results/frontier-TASK/ (bench.json, bench.md, plots); then
# `python utils/frontier.py` redraws the frontier plots and README tables from the saved JSON files.
# Usage: bash examples/frontier/bench.sh TASK SHARED_DATA_DIR OUTPUT_DIR
set -euo pipefail
TASK=$1
DATA=$2
OUT=$3
case "$TASK" in
  sst2) MODELS=(dense transkimmer ltp adapler autobert); KEEP_THRESHOLDS=0.3,0.7,0.9
        EXTRA=(--latency-examples 256 --truncations 16 24 --batch-sizes 1 8 32) ;;
  # IMDB's eval pass over 2,000 reviews of up to 512 tokens takes 1.5-4.5 minutes per row here: fewer rows, and time
  # only the first 64 reviews, at batch 1 and 32.
  # TR-BERT's IMDB policy keeps 28% after layer 1 at the trained 0.5 (run_imdb.sh): its knob goes down to 0.1.
  imdb) MODELS=(dense transkimmer ltp adapler autobert); KEEP_THRESHOLDS=0.1,0.3,0.7
        EXTRA=(--max-examples 2000 --latency-examples 64 --truncations 64 128 256 --batch-sizes 1 32) ;;
  # SQuAD's 1,589 held-out questions make ~1,650 windows of up to 384 tokens: as IMDB, time the first 64 at 1 and 32.
  # TR-BERT's SQuAD policy keeps ~90% of the tokens at the trained 0.5 (run_squad.sh): its knob goes up, not down.
  squad) MODELS=(dense transkimmer autobert); KEEP_THRESHOLDS=0.7,0.9
         EXTRA=(--data-file "$OUT/eval8.json" --latency-examples 64 --batch-sizes 1 32) ;;
  *) echo "unknown task $TASK" >&2; exit 2 ;;
esac
# Each method's inference-time knob around its trained setting (keep_threshold, trained at 0.5, serves two methods).
declare -A KNOB=([transkimmer]=keep_threshold=$KEEP_THRESHOLDS [autobert]=keep_threshold=$KEEP_THRESHOLDS \
  [ltp]=threshold_scale=0.5,1.5 [adapler]=eta_scale=1.5,3)
PATHS=()
SWEEPS=()
for model in "${MODELS[@]}"; do
  if [ ! -d "$OUT/$model" ]; then echo "not trained yet, left out: $OUT/$model" >&2; continue; fi
  PATHS+=("$OUT/$model")
  knob=${KNOB[$model]:-}
  if [ -n "$knob" ] && [[ " ${SWEEPS[*]} " != *" $knob "* ]]; then SWEEPS+=(--sweep "$knob"); fi
done
# Nothing else may run on the machine meanwhile: every row is timed.
transformers-prune bench "${PATHS[@]}" --task "$TASK" --data-dir "$DATA" "${EXTRA[@]}" \
  --threads 2 --latency-rounds 3 --baselines first --int8 --export-methods "${SWEEPS[@]}" \
  --output-dir "docs/results/frontier-$TASK" --overwrite
