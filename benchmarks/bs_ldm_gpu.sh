#!/usr/bin/env bash
# BS-LDM on one GPU, in bounded parts, each with its own time limit and its own log in LOGDIR: a
# part that runs out of time costs only itself.
#
#     bash benchmarks/bs_ldm_gpu.sh [--dry-run] LOGDIR [STEPS_SCALE] [PART | quick | all ...]
#
# quick: the headline measurement in one command of at most 8 minutes, most important first:
#   sampling_full (330 s): the `full` model (1024²) in one process: the official sampler (DDPM
#     1 000 steps + TAT, fp32, eager, batch 1) against ours (DDIM 20 on trailing timesteps + TAT,
#     bf16 autocast, or fp16 where bf16 is not native). In this order: ours eager at batch 1 in
#     both memory layouts, the official chain, ours with the UNet captured as a CUDA graph, ours
#     at the largest batch that fits (doubled up to 64), ours through
#     torch.compile(mode="reduce-overhead"), its compile time reported apart. The official chain
#     is timed whole when it fits in the part's time, else extrapolated from the steps that fit,
#     and the results then say so;
#   training_full (75 s): the `full` model at batch 4: the official loop (both images encoded by
#     the frozen autoencoder at every step, fp32) against ours (latents encoded once, the fastest
#     precision): images/s and peak memory of each;
#   end_to_end_256 (what is left of 455 s): both stages trained on the phantom at 256² for a small
#     budget (STEPS_SCALE, 0.02 in this plan: 120 + 400 steps), the test split sampled, the
#     benchmark's table beside identity. It may be cut; run again on the same machine, it resumes.
# all (the default): the earlier parts, about 28 minutes; one call is limited to 10 minutes, so run
# them over calls, most important first: `end_to_end_256`, then `samplers_256`, then
# `speed_full speed_colab speed_colab_compiled`, then `speed_full_compiled`. Their limits:
# end_to_end_256 (420 s), samplers_256 (420 s, needs end_to_end_256's runs), speed_full (300 s),
# speed_colab (60 s), speed_colab_compiled (180 s), speed_full_compiled (300 s: CUDA graphs for the
# launch-bound batch-1 steps).
#
# STEPS_SCALE (a number as the second argument; default 0.1, or 0.02 with quick) multiplies the
# colab configs' steps (6 000 stage-1 and 20 000 stage-2 steps) for the end-to-end run. Its runs
# live in RUNS (default .cache/gpu-runs) and write checkpoints at a tenth of their steps, so a part
# stopped at its limit resumes where it stopped when run again on the same machine.
#
# --dry-run runs the quick parts with the same code at smoke sizes on the CPU (64², a handful of
# steps, batches 1 and 2, torch.compile traced without kernels) in about half a minute on two CPU
# cores: a typo or an API mismatch then costs no GPU time.
#
# Every part's outcome goes to LOGDIR/parts.tsv, and the parts' numbers, merged, to
# LOGDIR/bs_ldm_gpu.json and LOGDIR/bs_ldm_gpu.md, ready to be copied to benchmarks/results/. The
# exit status is 0 when every part finished. PYTHON names the interpreter (default python3).
set -uo pipefail

COMMAND="bash benchmarks/bs_ldm_gpu.sh$(printf ' %q' "$@")"
DRY_RUN=0
ARGS=()
for arg in "$@"; do
    if [[ $arg == --dry-run ]]; then DRY_RUN=1; else ARGS+=("$arg"); fi
done
set -- "${ARGS[@]}"
LOGDIR=${1:?give a folder for the logs}
shift
SCALE=
if [[ ${1:-} =~ ^[0-9]*\.?[0-9]+$ ]]; then
    SCALE=$1
    shift
fi

QUICK="sampling_full training_full end_to_end_256"
ALL="end_to_end_256 samplers_256 speed_full speed_colab speed_colab_compiled speed_full_compiled"
PARTS=
QUICK_PLAN=0
for name in "${@:-all}"; do
    case $name in
        quick) PARTS+=" $QUICK"; QUICK_PLAN=1 ;;
        all) PARTS+=" $ALL" ;;
        *) [[ " $QUICK $ALL " == *" $name "* ]] || { echo "unknown part '$name': give quick, all or parts of them" >&2; exit 2; }
           PARTS+=" $name" ;;
    esac
done
for name in $PARTS; do
    if ((DRY_RUN)) && [[ " $QUICK " != *" $name "* ]]; then
        echo "the dry run covers the quick parts ($QUICK), not $name" >&2
        exit 2
    fi
done
if ((QUICK_PLAN)); then SCALE=${SCALE:-0.02}; else SCALE=${SCALE:-0.1}; fi
BUDGET=${BUDGET_S:-455}  # the quick plan's parts, all together; the merge and the part kills fit in the rest of 8 min

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$LOGDIR" && LOGDIR=$(cd "$LOGDIR" && pwd)
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
"$PY" -c 'import importlib.util as u, sys
missing = [name for name in ("torch", "monai", "bs_lib") if u.find_spec(name) is None]
sys.exit(f"{sys.executable} lacks {missing}: nothing was run" if missing else 0)' || exit 2
FAILED=0

part() {  # part NAME SECONDS COMMAND...: run with a time limit (@LIMIT@ in COMMAND), log, and note the outcome
    local name=$1 limit=$2
    shift 2
    [[ " $PARTS " == *" $name "* ]] || return 0
    if ((QUICK_PLAN && BUDGET - SECONDS < limit)); then
        limit=$((BUDGET - SECONDS))
    fi
    if ((limit < 15)); then
        echo "== $name: skipped, ${limit} s of the plan's ${BUDGET} s left"
        printf '%s\t%s\t%s\t%s\n' "$name" "$limit" -1 0 >>"$LOGDIR/parts.tsv"
        FAILED=1
        return 0
    fi
    local command=("${@//@LIMIT@/$limit}")
    echo "== $name (limit ${limit} s): ${command[*]}"
    local started=$SECONDS
    timeout -k 10 "$limit" "${command[@]}" >"$LOGDIR/$name.log" 2>&1
    local status=$?
    echo "   exit $status after $((SECONDS - started)) s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$limit" "$status" "$((SECONDS - started))" >>"$LOGDIR/parts.tsv"
    ((status == 0)) || FAILED=1
    tail -n 25 "$LOGDIR/$name.log"
}

if ((DRY_RUN)); then
    echo "dry run on the CPU: no GPU" | tee "$LOGDIR/gpu.txt"
    SAMPLING=(--preset smoke --device cpu --ddpm-steps 10 --max-batch 2)
    TRAINING=(--preset smoke --device cpu --batch 2 --train-steps 2)
    E2E_OUT=$LOGDIR/benchmark_smoke_64
    END_TO_END=(--profile smoke --image-size 64 --train-steps ml_vqgan=2 --train-steps bs_ldm=2 --num-test 2 --batch-size 2
                --runs-dir "$LOGDIR/runs" --device cpu --no-figures)
else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$LOGDIR/gpu.txt" 2>&1
    cat "$LOGDIR/gpu.txt"
    SAMPLING=(--preset full --keep-going)
    TRAINING=(--preset full --batch 4 --train-steps 10 --keep-going)
    E2E_OUT=$LOGDIR/benchmark_colab_256
    END_TO_END=(--profile colab --image-size 256 --steps-scale "$SCALE" --num-test 40 --runs-dir "${RUNS:-.cache/gpu-runs}"
                --device cuda)
fi
part sampling_full 330 "$PY" benchmarks/bs_ldm_speed.py --headline sampling "${SAMPLING[@]}" \
    --compile reduce-overhead --time-limit @LIMIT@ --json "$LOGDIR/sampling_full.json"
part training_full 75 "$PY" benchmarks/bs_ldm_speed.py --headline training "${TRAINING[@]}" \
    --time-limit @LIMIT@ --json "$LOGDIR/training_full.json"
part end_to_end_256 420 "$PY" -m bs_lib benchmark --methods bs_ldm "${END_TO_END[@]}" --output "$E2E_OUT"
part samplers_256 420 "$PY" benchmarks/bs_ldm_sampler_quality.py --profile colab --image-size 256 \
    --steps-scale "$SCALE" --runs-dir "${RUNS:-.cache/gpu-runs}" --num-test 40 --batch-size 40 --device cuda \
    --output "$LOGDIR/bs_ldm_samplers_colab_256"
part speed_full 300 "$PY" benchmarks/bs_ldm_speed.py --preset full --batch 4 --sample-batch 16
part speed_colab 60 "$PY" benchmarks/bs_ldm_speed.py --preset colab --batch 16 --sample-batch 64
part speed_colab_compiled 180 "$PY" benchmarks/bs_ldm_speed.py --preset colab --sample-batch 64 \
    --skip-training --skip-ddpm --compile reduce-overhead
part speed_full_compiled 300 "$PY" benchmarks/bs_ldm_speed.py --preset full --sample-batch 16 \
    --skip-training --skip-ddpm --ddim-steps 20 --compile reduce-overhead

echo "== merging the parts into $LOGDIR/bs_ldm_gpu.json and .md"
MERGE=(--merge "$LOGDIR" --command "$COMMAND" --end-to-end "$E2E_OUT.json")
((DRY_RUN)) && MERGE+=(--dry-run)
timeout 60 "$PY" benchmarks/bs_ldm_speed.py "${MERGE[@]}" || FAILED=1
exit "$FAILED"
