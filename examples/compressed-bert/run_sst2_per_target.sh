#!/usr/bin/env bash
# compressed-bert on SST-2 under the paper's protocol (Banaei et al., 2023): one module type per run, compressed at
# ratio 3, then a full fine-tune of everything (codes, decoders, factors and the rest of BERT: 3 epochs, lr 2e-5).
# CPU subset: the fine-tune sees the first TRAIN_SAMPLES sentences of the package's random 8,000-sentence SST-2
# train sample (default 4,000; 375 steps of 32), not all 67,349; the uncompressed model gets the same fine-tune as
# the reference. Starting point: a MiniLM already fine-tuned on SST-2 (the paper starts from pre-trained BERT-base).
# Usage: bash examples/compressed-bert/run_sst2_per_target.sh [FINE_TUNED_BERT] [SHARED_DATA_DIR] [OUTPUT_DIR]
set -euo pipefail
BERT=${1:-runs/frontier/sst2/dense}
DATA=${2:-../shared/data}
OUT=${3:-runs/compress-targets}
RATIO=${RATIO:-3}
TRAIN_SAMPLES=${TRAIN_SAMPLES:-4000}
TRAIN=$(python -c "from transformers_prune.resources import bundled_file; print(bundled_file('sst2_train_8k.csv'))")
# The fits' small linear-algebra calls are far faster on one thread than on two contended ones.
export OMP_NUM_THREADS=1

finetune() {  # the paper's GLUE fine-tune on the CPU subset, scored on all of SST-2 dev
  [ -f "$2/eval_results.json" ] || transformers-prune finetune "$1" --output-dir "$2" --train-file "$TRAIN" \
    --max-train-samples "$TRAIN_SAMPLES" --epochs 3 --learning-rate 2e-5 --batch-size 32 --max-length 64 \
    --validation-file "$DATA/glue/sst2/dev.csv"
}

mkdir -p "$OUT"
[ -e "$OUT/dense" ] || ln -s "$(realpath "$BERT")" "$OUT/dense"
finetune "$BERT" "$OUT/dense-ft"
for target in key word_embeddings output; do
  for method in svd fwsvd pruning ae kronecker tucker; do
    run="$OUT/$target-$method"
    extra=()
    [ "$method" = fwsvd ] && extra=(--data-file "$DATA/glue/sst2/train.csv")
    [ -f "$run/compression_report.json" ] || transformers-prune compress "$BERT" "$run" --method "$method" \
      --targets "$target" --ratio "$RATIO" "${extra[@]}"
    finetune "$run" "$run-ft"
  done
done
python examples/compressed-bert/summarize.py "$OUT" --dev-file "$DATA/glue/sst2/dev.csv" \
  --output docs/results/sst2-compressed/per_target --produced-by "bash examples/compressed-bert/run_sst2_per_target.sh"
