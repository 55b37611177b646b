#!/usr/bin/env bash
# One GPU check of the project, under 8 minutes on one GPU (never needed by the tests):
#   1-4. utils/gpu_check.py (its docstring has the details): attention kernels on MiniLM head shapes, packed ==
#        masked on CUDA for every token-pruning type, bf16 training with the stock Trainer from the real MiniLM
#        weights, and the bench checkpoints dense / ltp / transkimmer;
#   5.   `transformers-prune bench` of those checkpoints on SST-2 and, when .gpu/data holds it, IMDB.
# Each step runs under `timeout` (and all of them under one deadline); a failing step is logged and the run goes on.
#
# Results in $OUT (default runs/gpu_check), kept to few files because the device machine returns at most 8:
#   checks.json (steps 1-4), sst2.{json,md} and imdb.{json,md} (the bench reports), log.txt (every step's output);
# the checkpoints and the whole bench folders (plots included) in $WORK (default runs/gpu_check_work).
# After a run on CUDA where every step succeeded, the results are also copied to docs/results/gpu-$GPU_NAME-*
# (GPU_NAME default h200).
#
# On the device machine (no network, no MiniLM package, no datasets/evaluate):
#   bash utils/prepare_gpu_check.sh      # here first: the git-ignored .gpu/ (MiniLM in fp16, 1,024 IMDB reviews)
#   then the device tool's run with  carry: [".gpu"]  and command  OUT=$OUT bash utils/gpu_check.sh
# Here, without a GPU, every command of the run at tiny sizes on the CPU:
#   CHECK_DEVICE=cpu bash utils/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
OUT="${OUT:-runs/gpu_check}"
WORK="${WORK:-runs/gpu_check_work}"
CHECK_DEVICE="${CHECK_DEVICE:-cuda}"
GPU_NAME="${GPU_NAME:-h200}"
export MINILM_DIR="${MINILM_DIR:-.gpu/minilm}"
CHECKPOINTS="$WORK/checkpoints"
LOG="$OUT/log.txt"
IMDB_DATA=.gpu/data
SST2_DEV=src/transformers_prune/data/sst2_dev.csv  # the bundled dev set: the same 872 sentences everywhere

if [ "$CHECK_DEVICE" = cpu ]; then  # a dry run of every command, at sizes a CPU finishes in minutes
    CHECK_ARGS=(--device cpu --quick)
    BENCH_ARGS=(--device cpu --dtype float32 --latency-rounds 1 --batch-sizes 8)
    SST2_ARGS=(--max-examples 64 --max-tokens-per-batch 8192)
    IMDB_ARGS=(--max-examples 16 --max-tokens-per-batch 32768)
else
    CHECK_ARGS=(--device "$CHECK_DEVICE")
    BENCH_ARGS=(--device "$CHECK_DEVICE" --dtype bfloat16 --latency-rounds 3 --batch-sizes 32 128)
    SST2_ARGS=(--max-tokens-per-batch 8192)
    IMDB_ARGS=(--max-examples 512 --max-tokens-per-batch 32768)
fi
BENCH_ARGS+=(--peers none --baselines first)

rm -rf "$WORK"
mkdir -p "$OUT" "$WORK"
rm -f "$OUT"/{checks.json,sst2.json,sst2.md,imdb.json,imdb.md}
: >"$LOG"
DEADLINE=$((SECONDS + 450))  # the steps' total, so that the run with its start-up stays under 8 minutes
failed=()

# step NAME LIMIT COMMAND...: COMMAND under `timeout` of LIMIT seconds or what is left before the deadline,
# its output appended to log.txt; a failure is recorded in `failed`.
step() {
    local name=$1 limit=$2 start=$SECONDS rc why
    shift 2
    if ((DEADLINE - SECONDS < limit)); then limit=$((DEADLINE - SECONDS)); fi
    if ((limit < 15)); then
        echo "$name: skipped, the run's deadline is reached" | tee -a "$LOG"
        failed+=("$name (skipped)")
        return 1
    fi
    echo "=== $name (limit ${limit} s): $*" >>"$LOG"
    timeout -k 5 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    echo "$name: exit status $rc after $((SECONDS - start)) s" | tee -a "$LOG"
    if ((rc != 0)); then
        why="exit status $rc"
        if ((rc == 124)); then why+=", timed out"; fi
        failed+=("$name ($why)")
    fi
    return $rc
}

# bench NAME LIMIT ARGS...: the bench step into $WORK/bench_NAME, its report copied to $OUT/NAME.{json,md}.
bench() {
    local name=$1 limit=$2
    shift 2
    step "bench_$name" "$limit" python -m transformers_prune bench \
        "$CHECKPOINTS/dense" "$CHECKPOINTS/ltp" "$CHECKPOINTS/transkimmer" "${BENCH_ARGS[@]}" "$@" \
        --output-dir "$WORK/bench_$name"
    for ext in json md; do
        if [ -f "$WORK/bench_$name/bench.$ext" ]; then cp "$WORK/bench_$name/bench.$ext" "$OUT/$name.$ext"; fi
    done
}

step checks 250 python utils/gpu_check.py "${CHECK_ARGS[@]}" --output "$OUT/checks.json" --write-checkpoints "$CHECKPOINTS"
if [ ! -f "$CHECKPOINTS/transkimmer/config.json" ]; then
    # The checks stopped before step 4: write the checkpoints alone (dense: step 3's if it got that far).
    rm -rf "$CHECKPOINTS/ltp" "$CHECKPOINTS/transkimmer"
    step checkpoints 60 python utils/gpu_check.py "${CHECK_ARGS[@]}" --no-checks --write-checkpoints "$CHECKPOINTS"
fi
bench sst2 80 --task sst2 --data-file "$SST2_DEV" "${SST2_ARGS[@]}"
if [ -f "$IMDB_DATA/imdb/test.jsonl.gz" ]; then
    bench imdb 120 --task imdb --data-dir "$IMDB_DATA" "${IMDB_ARGS[@]}"
else
    echo "bench_imdb: skipped, no $IMDB_DATA/imdb/test.jsonl.gz (run utils/prepare_gpu_check.sh)" | tee -a "$LOG"
fi

echo
if [ -f "$OUT/checks.json" ]; then
    python - "$OUT/checks.json" <<'EOF'
import json, sys

report = json.load(open(sys.argv[1]))
print("checks errors:", report.get("errors", "(the checks did not finish)"))
print("checks findings:", report.get("findings"))
EOF
fi
for name in sst2 imdb; do
    if [ -f "$OUT/$name.md" ]; then echo "--- bench $name"; cat "$OUT/$name.md"; fi
done
if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" | tee -a "$LOG"
    exit 1
fi
if [ "$CHECK_DEVICE" = cuda ]; then  # gpu_check.py refuses to run when CUDA is not there
    cp "$OUT/checks.json" "docs/results/gpu-$GPU_NAME-checks.json"
    for name in sst2 imdb; do
        for ext in json md; do
            if [ -f "$OUT/$name.$ext" ]; then cp "$OUT/$name.$ext" "docs/results/gpu-$GPU_NAME-bench-$name.$ext"; fi
        done
    done
fi
echo "all steps succeeded; results in $OUT" | tee -a "$LOG"
