#!/usr/bin/env bash
# TR-BERT (autobert) on IMDB with MiniLM-L6, 512 tokens: every stage of the official recipe, each a stock Trainer run.
#   0. subsets of IMDB train (shuffled) and test (the benchmark's 500 reviews)
#   1. fine-tune BERT                         (official: --do_train)
#   2. imitation scores + teacher logits       (official: --do_eval_grad and --do_eval_logits, here one pass)
#   3. policy only: selectors by REINFORCE     (official: --train_rl --alpha 1 --guide_rate 0.5)
#   4. joint, distilled from the teacher       (official: --train_both --train_teacher --alpha 1)
#   5. benchmark against the dense baselines
# Usage: bash examples/autobert/run_imdb.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [BERT_ROWS] [RL_ROWS] [JOINT_ROWS]
# The defaults are sized for a 2-core CPU (about 2 hours); the official recipe trains on all 25,000 reviews.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/autobert-imdb}
BERT_ROWS=${3:-2000}
RL_ROWS=${4:-1000}
JOINT_ROWS=${5:-500}
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
mkdir -p "$OUT"

# 0. IMDB files are sorted by label: shuffle before taking a subset.
python - "$DATA" "$OUT" <<'PY'
import gzip, json, random, sys
data, out = sys.argv[1], sys.argv[2]
for split, seed, rows, name in (("train", 0, 4000, "train.jsonl"), ("test", 42, 500, "test500.jsonl")):
    records = [json.loads(line) for line in gzip.open(f"{data}/imdb/{split}.jsonl.gz", "rt", encoding="utf-8")]
    random.Random(seed).shuffle(records)  # test: the same 500 reviews as `bench --task imdb --max-examples 500`
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records[:rows])
PY
COMMON=(--text-column text --max-length 512 --validation-file "$OUT/test500.jsonl")

# 1. The plain fine-tuned BERT: the teacher, the source of the heuristic, and the dense baseline.
transformers-prune finetune "$MODEL" --output-dir "$OUT/bert" --train-file "$OUT/train.jsonl" "${COMMON[@]}" \
  --max-train-samples "$BERT_ROWS" --batch-size 16 --learning-rate 1e-4

# 2. Gradient-residual scores at the selection layers (inputs of layers 1 and 3 of 6) and teacher logits.
transformers-prune autobert-targets "$OUT/bert" --data-file "$OUT/train.jsonl" --text-column text --max-length 512 \
  --max-samples "$RL_ROWS" --output-file "$OUT/train_targets.jsonl"

# 3. Policy only: BERT frozen, 8 rollouts per review, imitation of the scores in one rollout for the first half.
#    The fresh selectors are small: a higher learning rate than the original's 3e-5 over far fewer steps.
transformers-prune convert --to autobert "$OUT/bert" "$OUT/rl-init" --set training_stage=train_rl \
  --set alpha=1 --set guide_rate=0.5 --set rl_num_samples=8
transformers-prune finetune "$OUT/rl-init" --output-dir "$OUT/rl" --train-file "$OUT/train_targets.jsonl" "${COMMON[@]}" \
  --batch-size 16 --learning-rate 1e-3 --logging-steps 5

# 4. Joint: everything trains through the sampled reduced forward, distilled from the teacher logits.
transformers-prune convert --to autobert "$OUT/rl" "$OUT/both-init" --set training_stage=train_both \
  --set train_teacher=true --set alpha=1 --set rl_num_samples=4
transformers-prune finetune "$OUT/both-init" --output-dir "$OUT/both" --train-file "$OUT/train_targets.jsonl" "${COMMON[@]}" \
  --max-train-samples "$JOINT_ROWS" --batch-size 8 --learning-rate 3e-5 --logging-steps 5

# 5. Accuracy, FLOPs and latency at batch sizes 1, 8 and 32 against HF and dense-packed baselines.
transformers-prune bench "$OUT/bert" "$OUT/rl" "$OUT/both" --task imdb --data-dir "$DATA" --max-examples 500 \
  --batch-sizes 1 8 32 --threads 2 --baselines first --output-dir "$OUT/bench"
