#!/usr/bin/env bash
# The GPU side of sescratch, checked in one offline run (< 8 minutes) on a machine with an NVIDIA
# GPU and CuPy already installed (the device machine's own image: python3 3.12, cupy-cuda13x 14.x,
# numba, pytest, hypothesis, torch with CUDA). Nothing is installed and nothing is downloaded:
# sescratch runs from this checkout through PYTHONPATH.
#
#   1. gpu-info          nvidia-smi: the GPU, driver, memory
#   2. environment       versions of Python, NumPy, Numba, CuPy (CUDA runtime), torch (CUDA)
#   3. cupy-smoke        the CuPy kernels compile; SE-ResNet-20 forward/backward on the GPU = CPU
#   4. gpu-loop          tests/train/test_gpu_loop.py: fit on CuPy, resume bit-exactly,
#                        evaluate, `sescratch eval` on the checkpoint
#   5. bench-train-step  one SGD step of SE-ResNet-20 / ResNet-20, CuPy against torch CUDA
#   6. cupy-tests        every CuPy-parametrized test (and the backend's GPU tests)
#   7. bench-ops         the op benchmarks on CuPy (only when time is left)
#
# Each step has its own timeout, capped by what is left of the whole run's budget; a failed step
# does not stop the others. A CuPy test that *skips* on a GPU machine counts as a failure (it did
# not run). The report goes to $OUT (a new temporary folder when OUT is unset): report.md (steps,
# test counts, failures, the benchmark table), gpu_check.log (everything printed),
# cupy_tests.xml and gpu_loop.xml (JUnit) and bench_train_step.json.
# Exit status: 0 when every step passed, 1 otherwise.
#
#   bash benchmarks/gpu_check.sh              # from the repository root or anywhere
#   bash benchmarks/gpu_check.sh --dry-run    # print what would run, run nothing
#   GPU_CHECK_BUDGET_S=300 PYTHON=python3 OUT=/tmp/report bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

DRY_RUN=0
case "${1:-}" in
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-480}  # seconds for the whole run (the device allows 600 per command)
if (( DRY_RUN )); then
    OUT=${OUT:-/tmp/sescratch-gpu-check.XXXXXX}  # (mktemp's template when OUT is unset)
    LOGS=/tmp/sescratch-gpu-logs.XXXXXX
else
    OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/sescratch-gpu-check.XXXXXX")}
    LOGS=$(mktemp -d "${TMPDIR:-/tmp}/sescratch-gpu-logs.XXXXXX")
    mkdir -p "$OUT"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
START=$(date +%s)
declare -a SUMMARY=()
FAILED=0

# pytest for the device image: no nbmake there (-o addopts= drops --nbmake), no docs/browser or
# notebook tests, no tests/learn (needs nbformat); xdist and pytest-timeout when installed.
PYTEST=("$PY" -m pytest -o addopts= -p no:cacheprovider -q -rfEs --continue-on-collection-errors
        --ignore=tests/docs --ignore=tests/test_docs.py --ignore=tests/learn)
PLUGINS="pytest-timeout and pytest-xdist found"
if "$PY" -c "import pytest_timeout" >/dev/null 2>&1; then PYTEST+=(--timeout=150); else PLUGINS="no pytest-timeout"; fi
PARALLEL=()
if "$PY" -c "import xdist" >/dev/null 2>&1; then PARALLEL=(-n 4); else PLUGINS="$PLUGINS, no pytest-xdist"; fi

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# run_step NAME LIMIT_S COMMAND...: run it under a timeout capped by the time left, log it.
run_step() {
    local name=$1 limit=$2 left rc t0 status
    shift 2
    if (( DRY_RUN )); then
        local line
        line=$(printf '%q ' timeout --kill-after=10 "$limit" "$@")
        printf '\n[%s, timeout %ss]\n%s\n' "$name" "$limit" "${line% }"
        return 0
    fi
    left=$(remaining)
    if (( left < 20 )); then
        SUMMARY+=("| ${name} | SKIP | 0 | out of the ${BUDGET}s budget |")
        FAILED=1
        return 1
    fi
    (( limit > left )) && limit=$left
    echo
    echo "=== ${name} (timeout ${limit}s): $*"
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "${LOGS}/${name}.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status="PASS" ;;
        124|137) status="TIMEOUT" ;;
        *) status="FAIL (rc ${rc})" ;;
    esac
    local note=""
    if [[ $rc -eq 0 ]] && grep -q "CuPy with a GPU is not available" "${LOGS}/${name}.log"; then
        status="FAIL"; rc=1; note="CuPy tests skipped on a GPU machine"
    fi
    SUMMARY+=("| ${name} | ${status} | $(( $(date +%s) - t0 )) | ${note} |")
    [[ $rc -ne 0 ]] && FAILED=1
    return $rc
}

main() {
    if (( DRY_RUN )); then
        echo "gpu_check --dry-run: would run in ${ROOT}, budget ${BUDGET}s, report in ${OUT}"
        echo "${PY} here: ${PLUGINS} (with both, pytest gets --timeout=150 and -n 4)"
        echo "export PYTHONPATH=${PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg"
    fi
    run_step gpu-info 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    run_step environment 60 "$PY" benchmarks/gpu_smoke.py --versions
    run_step cupy-smoke 120 "$PY" benchmarks/gpu_smoke.py
    run_step gpu-loop 120 "${PYTEST[@]}" tests/train/test_gpu_loop.py --junitxml="$OUT/gpu_loop.xml"
    run_step bench-train-step 150 "$PY" benchmarks/bench_train_step.py --device gpu --warmup 5 --repeats 20 \
        --no-memory --no-compile --json "$OUT/bench_train_step.json"
    run_step cupy-tests 240 "${PYTEST[@]}" "${PARALLEL[@]}" tests -k "(cupy or gpu or test_backend) and not test_gpu_loop and not cupy_emulated" \
        --junitxml="$OUT/cupy_tests.xml"
    if (( DRY_RUN )) || (( $(remaining) >= 80 )); then
        run_step bench-ops 75 "$PY" benchmarks/bench_ops.py --quick --backends cupy,torch
    else
        SUMMARY+=("| bench-ops | SKIP | 0 | optional: less than 80 s left |")
    fi
}

report() {
    echo "# sescratch GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(( $(date +%s) - START )) s of a ${BUDGET} s budget; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo "| step | status | s | note |"
    echo "|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    for name in gpu-info environment cupy-smoke; do
        [[ -f "${LOGS}/${name}.log" ]] && { echo; echo "## ${name}"; echo '```'; tail -n 12 "${LOGS}/${name}.log"; echo '```'; }
    done
    for name in gpu-loop cupy-tests; do
        [[ -f "${LOGS}/${name}.log" ]] || continue
        echo; echo "## ${name}"; echo '```'
        grep -E "^(FAILED|ERROR|SKIPPED) " "${LOGS}/${name}.log" | head -n 40
        grep -E "[0-9]+ (passed|failed|error)" "${LOGS}/${name}.log" | tail -n 1
        echo '```'
    done
    for name in bench-train-step bench-ops; do
        [[ -f "${LOGS}/${name}.log" ]] && { echo; echo "## ${name}"; echo '```'; tail -n 40 "${LOGS}/${name}.log"; echo '```'; }
    done
    echo
    if (( FAILED )); then echo "GPU CHECK: FAILED"; else echo "GPU CHECK: ALL PASSED"; fi
}

if (( DRY_RUN )); then
    main
    exit 0
fi
exec > >(tee "$OUT/gpu_check.log") 2>&1  # everything below is also written to the log
main
echo
report | tee "$OUT/report.md"
echo "report: $OUT/report.md (logs of each step: $LOGS)"
(( FAILED )) && exit 1
exit 0
