#!/usr/bin/env bash
# The GPU check: one command on a machine with an NVIDIA GPU. It installs nothing.
#
#   scripts/gpu_check.sh OUTPUT_FOLDER [SECONDS]
#
# Runs, in this order, each step cut short when the time budget (default 470 s,
# under 8 minutes in all) runs out, so that the export and the summary are always
# written. The figures still missing come first: the shipped H200 bundles already hold the
# element-wise kernels at 64M elements, attention at N = 16384 (without energy) and the dual
# GEMM at 16384 tokens and C = 1024. On 2026-12-04 the tests took about 95 s, a run spent
# 40-55 s (its worker, the ceilings, compiling its first group) before its first cell, and a
# group of the dual GEMM at 4096 channels stored nothing in 100 s.
#   1. the GPU tests: the Triton kernels compiled for the GPU, the CUDA timing paths;
#   2. SwiGLU and GEGLU in bfloat16 where the dual GEMM is judged against torch.compile, at the
#      three sizes not yet measured, with energy;
#   3. poly_sa and softmax attention at N = 16384, with energy per call (not yet measured);
#   4. the gated FFNs at every full size, eager, compile and Triton;
#   5. the paper suite (Figures S3 and S4), eager and Triton backends;
#   6. the element-wise kernels at 64M elements, float32 and bfloat16, with energy per call;
#   7. the quick suite on the GPU, eager, library and Triton backends, with what time is left.
# Every run measures one round (GPU_CHECK_ROUNDS to change it): a step cut short stops
# inside its first round anyway, and one round of more cells is what eight minutes allow.
# So no run takes rounds more where a speed-up is undecided (`--more-rounds 0`): the first
# of them is taken whatever it costs, out of the next steps' time.
# run.log keeps each run's progress bar, so where the time went can be read afterwards.
# Into OUTPUT_FOLDER: hadamard_bench.db (the results), results.csv (their export),
# summary.md (benchmarks/gpu_summary.py), tests.log, run.log and steps.log.
# Python: $PYTHON, else .venv/bin/python when it sees a GPU, else python3.
set -uo pipefail

out=${1:?usage: scripts/gpu_check.sh OUTPUT_FOLDER [SECONDS]}
budget=${2:-470}
device=${GPU_CHECK_DEVICE:-cuda}  # cpu: rehearse the script's steps on a machine without a GPU
rounds=${GPU_CHECK_ROUNDS:-1}
cd "$(dirname "$0")/.."

py=${PYTHON:-}
if [ -z "$py" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        py=.venv/bin/python
    else
        py=python3
    fi
fi
if [ "$device" = cuda ] && ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check: $py sees no CUDA GPU (set PYTHON to an interpreter whose torch does)" >&2
    exit 2
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
db="sqlite:///$out/hadamard_bench.db"
export PYTHONUNBUFFERED=1
# An interpreter that has not installed this checkout (pip install -e .) still finds it.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
deadline=$(( $(date +%s) + budget ))
reserve=40  # seconds kept for the export and the summary

step() {  # step NAME CAP_SECONDS LOG COMMAND...: run COMMAND for at most CAP seconds, never past the budget
    local name=$1 cap=$2 log=$3; shift 3
    local left=$(( deadline - reserve - $(date +%s) ))
    (( cap > left )) && cap=$left
    if (( cap < 10 )); then
        echo "$name: skipped, the time budget is spent" | tee -a "$out/steps.log"
        return
    fi
    local started=$(date +%s)
    echo "== $name (at most ${cap} s)" | tee -a "$out/steps.log" >>"$out/$log"
    # SIGINT lets a sweep mark its run interrupted and keep every finished cell.
    timeout --signal=INT --kill-after=20 "$cap" "$@" >>"$out/$log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $(( $(date +%s) - started )) s" | tee -a "$out/steps.log"
}

run=("$py" -m bench_runner run --db "$db" --device "$device" --rounds "$rounds" --more-rounds 0)

"$py" - <<'EOF' | tee "$out/steps.log"
import torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"device: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

step "GPU tests" 110 tests.log "$py" -m pytest -q -p no:cacheprovider -W ignore \
    tests/hadamard_impls/test_triton_kernels.py tests/bench_runner/test_cuda.py
step "dual-GEMM gated FFNs, bfloat16" 170 run.log "${run[@]}" --suite full --benchmark gated_ffn \
    --method swiglu --method geglu --dtype bfloat16 --size tokens=4096,C=1024 \
    --size tokens=4096,C=4096 --size tokens=16384,C=4096 --energy
step "attention at N=16384, with energy" 70 run.log "${run[@]}" --suite full --benchmark token_mixing \
    --method poly_sa --method softmax_attention --size N=16384 --energy
step "gated FFNs, full sizes" 110 run.log "${run[@]}" --suite full --benchmark gated_ffn \
    --method swiglu --method geglu --method glu
step "paper suite" 150 run.log "${run[@]}" --suite paper --backend eager --backend triton
step "element-wise kernels at 64M" 100 run.log "${run[@]}" --suite full --benchmark elementwise \
    --method hadamard --method hadamard_chain --method copy --size n=67108864 \
    --dtype float32 --dtype bfloat16 --energy
step "quick suite" 9999 run.log "${run[@]}" --suite quick --backend eager --backend library --backend triton

"$py" -m bench_runner export --db "$db" --format csv --out "$out/results.csv" 2>>"$out/run.log"
"$py" benchmarks/gpu_summary.py --db "$db" --device "$device" --out "$out/summary.md" >/dev/null 2>>"$out/run.log" \
    || echo "gpu_check: the summary failed; see run.log" | tee -a "$out/steps.log"
echo "gpu_check: wrote $(ls "$out" | tr '\n' ' ')" | tee -a "$out/steps.log"
