#!/usr/bin/env bash
# BS-LDM on one GPU, in bounded parts: the speed of the `full` (1024²) and
# `colab` (256²) models, a short end-to-end run at 256² (both stages trained on
# the phantom for a fixed step budget, the test split sampled and measured by
# the benchmark beside the identity baseline), the samplers of that trained
# model against the official 1 000-step DDPM (equal quality?), and
# torch.compile variants.
#
#     bash benchmarks/bs_ldm_gpu.sh LOGDIR [STEPS_SCALE] [PART ...]
#
# PART (its time limit): end_to_end_256 (420 s), samplers_256 (420 s, needs
# end_to_end_256's runs), speed_full (300 s), speed_colab (60 s),
# speed_colab_compiled (180 s), speed_full_compiled (300 s: CUDA graphs for the
# launch-bound batch-1 steps); default all, about 28 minutes, so split them over
# calls where one call is limited to 10 minutes, most important first: `end_to_end_256`, then `samplers_256`, then
# `speed_full speed_colab speed_colab_compiled`, then `speed_full_compiled`.
# Each part has its own time limit and log in LOGDIR: a part that runs out of
# time costs only itself. The end-to-end runs live in RUNS (default
# .cache/gpu-runs) and write checkpoints at a tenth of their steps, so a part
# stopped at its limit resumes where it stopped when run again on the same
# machine. STEPS_SCALE (default 0.1) multiplies the colab configs' steps
# (6 000 stage-1 and 20 000 stage-2 steps) for the end-to-end run.
# Results: benchmarks/results/bs_ldm_gpu.md.
set -uo pipefail
LOGDIR=${1:?give a folder for the logs}
SCALE=${2:-0.1}
shift $(($# < 2 ? $# : 2))
PARTS=${*:-end_to_end_256 samplers_256 speed_full speed_colab speed_colab_compiled speed_full_compiled}
mkdir -p "$LOGDIR"
export PYTHONUNBUFFERED=1

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log, and note the outcome
    local name=$1 limit=$2
    shift 2
    [[ " $PARTS " == *" $name "* ]] || return 0
    echo "== $name (limit ${limit} s): $*"
    local started=$SECONDS
    timeout "$limit" "$@" >"$LOGDIR/$name.log" 2>&1
    local status=$?
    echo "   exit $status after $((SECONDS - started)) s"
    tail -n 25 "$LOGDIR/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$LOGDIR/gpu.txt" 2>&1
cat "$LOGDIR/gpu.txt"
RUNS=${RUNS:-.cache/gpu-runs}
part end_to_end_256 420 python -m bs_lib benchmark --profile colab --image-size 256 --methods bs_ldm \
    --steps-scale "$SCALE" --num-test 40 --runs-dir "$RUNS" --device cuda \
    --output "$LOGDIR/benchmark_colab_256"
part samplers_256 420 python benchmarks/bs_ldm_sampler_quality.py --profile colab --image-size 256 \
    --steps-scale "$SCALE" --runs-dir "$RUNS" --num-test 40 --batch-size 40 --device cuda \
    --output "$LOGDIR/bs_ldm_samplers_colab_256"
part speed_full 300 python benchmarks/bs_ldm_speed.py --preset full --batch 4 --sample-batch 16
part speed_colab 60 python benchmarks/bs_ldm_speed.py --preset colab --batch 16 --sample-batch 64
part speed_colab_compiled 180 python benchmarks/bs_ldm_speed.py --preset colab --sample-batch 64 \
    --skip-training --skip-ddpm --compile reduce-overhead
part speed_full_compiled 300 python benchmarks/bs_ldm_speed.py --preset full --sample-batch 16 \
    --skip-training --skip-ddpm --ddim-steps 20 --compile reduce-overhead
