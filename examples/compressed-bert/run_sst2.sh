#!/usr/bin/env bash
# compressed-bert on SST-2 with MiniLM-L6: every method at ratios 3 and 10 on the matrices the paper reports (keys,
# FFN outputs, word embeddings of all layers) compressed together, plus one run with a method per target; SST-2 dev
# accuracy as compressed and after one short fine-tune, then the benchmark against the uncompressed model.
# Usage: bash examples/compressed-bert/run_sst2.sh [FINE_TUNED_BERT] [SHARED_DATA_DIR] [OUTPUT_DIR]
# FINE_TUNED_BERT: a MiniLM fine-tuned on all of SST-2.
set -euo pipefail
BERT=${1:-runs/frontier/sst2/dense}
DATA=${2:-../shared/data}
OUT=${3:-runs/compress}
# The fits' small linear-algebra calls are far faster on one thread than on two contended ones.
export OMP_NUM_THREADS=1

compress_and_finetune() {  # NAME, then the compress options
  local run="$OUT/$1"; shift
  [ -f "$run/compression_report.json" ] || transformers-prune compress "$BERT" "$run" "$@"
  # One short recovery fine-tune: 2,000 SST-2 training sentences, 1 epoch; scored on SST-2 dev.
  [ -f "$run-ft/eval_results.json" ] || transformers-prune finetune "$run" --output-dir "$run-ft" \
    --train-file "$DATA/glue/sst2/train.csv" --max-train-samples 2000 --max-length 64 --learning-rate 5e-5 \
    --validation-file "$DATA/glue/sst2/dev.csv"
}

mkdir -p "$OUT"
for ratio in 3 10; do
  for method in svd fwsvd pruning ae kronecker tucker; do
    extra=()
    [ "$method" = fwsvd ] && extra=(--data-file "$DATA/glue/sst2/train.csv")
    compress_and_finetune "$method-$ratio" --method "$method" --targets key output word_embeddings --ratio "$ratio" "${extra[@]}"
  done
  # A method per target: ae on the keys (tied with svd for the best fine-tuned accuracy with only the keys
  # compressed, docs/results/sst2-compressed/per_target.md), pruning elsewhere (lowest error on every target, combined.md).
  compress_and_finetune "mixed-$ratio" --method key=ae,output=pruning,word_embeddings=pruning --ratio "$ratio"
done

# Accuracy before fine-tuning, FLOPs and latency of every compressed checkpoint against the uncompressed one: one
# thread, the fastest of 3 timing rounds per row, so a slow spell of a shared machine does not land on one row alone.
transformers-prune bench "$BERT" "$OUT"/{svd,fwsvd,pruning,ae,kronecker,tucker,mixed}-{3,10} --task sst2 --data-dir "$DATA" \
  --batch-sizes 1 8 32 --threads 1 --latency-rounds 3 --output-dir "$OUT/bench"
python examples/compressed-bert/summarize.py "$OUT" --dev-file "$DATA/glue/sst2/dev.csv" --bench "$OUT/bench/bench.json" \
  --output docs/results/sst2-compressed/combined --produced-by "bash examples/compressed-bert/run_sst2.sh"
cp "$OUT"/bench/bench.{json,md} "$OUT"/bench/*.png docs/results/sst2-compressed/ 2>/dev/null || true
