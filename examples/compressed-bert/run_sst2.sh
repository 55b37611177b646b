#!/usr/bin/env bash
# compressed-bert on SST-2 with MiniLM-L6: every method at ratios 3 and 10 on the matrices the paper reports (keys,
# FFN outputs, word embeddings of all layers), SST-2 dev accuracy as compressed and after one short fine-tune,
# then the benchmark of the compressed checkpoints against the uncompressed model.
# Usage: bash examples/compressed-bert/run_sst2.sh [FINE_TUNED_BERT] [SHARED_DATA_DIR] [OUTPUT_DIR]
# FINE_TUNED_BERT defaults to the dense model of examples/transkimmer/run_sst2.sh.
set -euo pipefail
BERT=${1:-runs/transkimmer-sst2/dense}
DATA=${2:-../shared/data}
OUT=${3:-runs/compress}
# The fits' small linear-algebra calls are far faster on one thread than on two contended ones.
export OMP_NUM_THREADS=1

for ratio in 3 10; do
  for method in svd fwsvd pruning ae kronecker tucker; do
    extra=()
    case $method in
      fwsvd) extra=(--data-file "$DATA/glue/sst2/train.csv") ;;
      ae) extra=(--epochs 30) ;;  # the paper's epoch count; the default 10 leaves the rows' directions poorly learned
    esac
    transformers-prune compress "$BERT" "$OUT/$method-$ratio" --method "$method" --targets key output word_embeddings \
      --ratio "$ratio" "${extra[@]}"
    # One short recovery fine-tune: 2,000 SST-2 training sentences, 1 epoch; scored on SST-2 dev.
    transformers-prune finetune "$OUT/$method-$ratio" --output-dir "$OUT/$method-$ratio-ft" \
      --train-file "$DATA/glue/sst2/train.csv" --max-train-samples 2000 --max-length 64 --learning-rate 5e-5
  done
done

# Accuracy before fine-tuning, FLOPs and latency of every compressed checkpoint against the uncompressed one; the
# fastest of 3 timing rounds per row, so a slow spell of a shared machine does not land on one row alone.
unset OMP_NUM_THREADS
transformers-prune bench "$BERT" "$OUT"/{svd,fwsvd,pruning,ae,kronecker,tucker}-{3,10} --task sst2 --data-dir "$DATA" \
  --batch-sizes 1 8 32 --threads 2 --latency-rounds 3 --output-dir "$OUT/bench"
