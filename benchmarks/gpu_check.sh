#!/usr/bin/env bash
# Verify the GPU side of sescratch in one go (< 8 minutes) on a machine with an NVIDIA GPU:
#   1. show the GPU; 2. install CuPy (cupy-cuda12x) if it does not import, and sescratch if needed;
#   3. run every CuPy-parametrized test; 4. the op benchmarks (CuPy; bench_ops's torch is CPU torch);
#   5. the training-step benchmark,
#   CuPy against torch CUDA (CuPy alone when torch has no CUDA);
# then print a summary: each step's status and time, the benchmark tables, what failed.
# Each step has its own timeout and the whole run a deadline; a failed step does not stop the
# others. Exit status: 0 when every step passed, 1 otherwise.
#
#   bash benchmarks/gpu_check.sh            # from the repository root or anywhere
#   GPU_CHECK_BUDGET_S=300 bash benchmarks/gpu_check.sh
#   CUPY_WHEEL_DIR=/path/to/wheels bash benchmarks/gpu_check.sh   # offline CuPy install
set -u
cd "$(dirname "$0")/.." || exit 1

PY=${PYTHON:-python}
BUDGET=${GPU_CHECK_BUDGET_S:-450}          # whole run, seconds (leaves margin under 8 minutes)
START=$(date +%s)
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sescratch-gpu-check.XXXXXX")
declare -a SUMMARY=()
FAILED=0

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# run_step NAME LIMIT_S COMMAND...: run with a timeout capped by the time left; log to LOG_DIR.
run_step() {
    local name=$1 limit=$2 left rc t0 status
    shift 2
    left=$(remaining)
    if (( left < 15 )); then
        SUMMARY+=("SKIP  ${name}: out of time budget")
        FAILED=1
        return 1
    fi
    (( limit > left )) && limit=$left
    echo
    echo "=== ${name} (timeout ${limit}s): $*"
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "${LOG_DIR}/${name}.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status="PASS" ;;
        124|137) status="TIMEOUT" ;;
        *) status="FAIL(rc=${rc})" ;;
    esac
    SUMMARY+=("$(printf '%-8s %-16s %4ss  log: %s' "$status" "$name" "$(( $(date +%s) - t0 ))" "${LOG_DIR}/${name}.log")")
    [[ $rc -ne 0 ]] && FAILED=1
    return $rc
}

run_step gpu-info 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

if ! "$PY" -c "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0" >/dev/null 2>&1; then
    if [[ -n "${CUPY_WHEEL_DIR:-}" ]]; then
        run_step install-cupy 150 "$PY" -m pip install -q --no-index --find-links "$CUPY_WHEEL_DIR" cupy-cuda12x
    else
        run_step install-cupy 150 "$PY" -m pip install -q cupy-cuda12x
    fi
fi
run_step cupy-smoke 60 "$PY" -c "
import cupy, numpy
x = cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
assert float(x.sum()) == 66.0
print('CuPy', cupy.__version__, 'on', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())
"

if ! "$PY" -c "import sescratch" >/dev/null 2>&1; then
    run_step install-sescratch 60 "$PY" -m pip install -q --no-deps -e .
fi

# Every test parametrized over CuPy (backend fixture id 'cupy', kernel families 'cupy'),
# plus the backend's own tests (they include the GPU round trip of to_device).
run_step cupy-tests 170 "$PY" -m pytest tests -q -p no:cacheprovider -k "cupy or gpu or test_backend" -ra

if [[ -f benchmarks/bench_ops.py ]]; then
    run_step bench-ops 90 "$PY" benchmarks/bench_ops.py --quick --backends cupy,torch
else
    SUMMARY+=("SKIP     bench-ops        benchmarks/bench_ops.py not found")
    FAILED=1
fi

run_step bench-train-step 100 "$PY" benchmarks/bench_train_step.py --device gpu --warmup 5 --repeats 20 \
    --json "${LOG_DIR}/bench_train_step.json"

echo
echo "================================ summary ================================"
echo "elapsed $(( $(date +%s) - START ))s of a ${BUDGET}s budget; logs in ${LOG_DIR}"
for line in "${SUMMARY[@]}"; do echo "$line"; done
if [[ -f "${LOG_DIR}/cupy-tests.log" ]]; then
    echo "--- tests:"
    grep -E "passed|failed|error" "${LOG_DIR}/cupy-tests.log" | tail -n 3
    grep -E "^(FAILED|ERROR) " "${LOG_DIR}/cupy-tests.log" | head -n 20
fi
if [[ -f "${LOG_DIR}/bench-train-step.log" ]]; then
    echo "--- training step (CuPy vs torch CUDA):"
    tail -n 20 "${LOG_DIR}/bench-train-step.log"
fi
if [[ -f "${LOG_DIR}/bench-ops.log" ]]; then
    echo "--- ops:"
    tail -n 30 "${LOG_DIR}/bench-ops.log"
fi
if (( FAILED )); then
    echo "GPU CHECK: FAILED (see the steps above marked FAIL/TIMEOUT/SKIP)"
    exit 1
fi
echo "GPU CHECK: ALL PASSED"
exit 0
