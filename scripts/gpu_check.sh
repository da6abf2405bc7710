#!/usr/bin/env bash
# GPU check for the reverse engine's torch backend: one command, under 5 minutes on a machine with one GPU.
#
#   scripts/gpu_check.sh OUT_DIR
#
# Needs only the project and torch (a CUDA build). Steps: print the GPU model; run the CUDA tests
# (pytest -m cuda); run the speed benchmark's CUDA rows (our engine on torch vs torch.autograd, on the CPU
# and on the GPU, up to [4096,4096,4096,10] batch 1024 in float32 and float64); write OUT_DIR/report.md and
# OUT_DIR/bench_cuda.csv (plus the raw logs).
#
# Exit codes: 0  GPU present, tests passed, benchmark written (targets met or not: see report.md)
#             1  a CUDA test failed or the benchmark failed
#             2  bad usage, or torch is not installed
#             77 no CUDA GPU here (the automake "skipped" code): the report says so, nothing else ran
#
# The project need not be installed: the repository root is put on PYTHONPATH (a GPU machine that has
# python3 with torch, numpy, sympy, pandas, matplotlib, rich and pytest can run it from a plain checkout).
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3); THREADS for the CPU rows
# (default: every core, so that the GPU/CPU speed-up is against the whole CPU; THREADS=2 gives the
# benchmark's own setting); BENCH_TIMEOUT and TEST_TIMEOUT in seconds (defaults 210, 60);
# SMOKE_ON_CPU=1 runs every step on a machine without a GPU (CPU rows only, small nets) to test this script.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: scripts/gpu_check.sh OUT_DIR   (writes OUT_DIR/report.md and OUT_DIR/bench_cuda.csv)" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)  # resolved before moving to the repository root
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # diffsuite from this checkout, installed or not
REPORT="$OUT/report.md"

echo "== diffsuite GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ)); python: $PYTHON"
if ! "$PYTHON" -c "import torch, diffsuite" 2>/dev/null; then
    echo "this check needs the project and torch importable by $PYTHON: pip install -e '.[torch]' (a CUDA build of torch for the GPU)" >&2
    exit 2
fi

# ----- 1. the GPU -----
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: /'
fi
GPU=$("$PYTHON" - <<'EOF'
import torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}; "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}")
else:
    print(f"NONE (torch {torch.__version__}, {'CPU-only build' if torch.version.cuda is None else 'CUDA ' + torch.version.cuda + ' build, no device visible'})")
EOF
)
echo "GPU: $GPU"
{
    echo "# diffsuite GPU check"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- git commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- GPU: $GPU"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//') ($(nproc 2>/dev/null) cores; CPU rows use $THREADS threads)"
} > "$REPORT"
DEVICES=cpu,cuda
LARGE=--large
NETS=()
if [ "${SMOKE_ON_CPU:-0}" = 1 ]; then
    echo "SMOKE_ON_CPU=1: running every step without a GPU (the CUDA tests skip; CPU rows, small nets only)"
    echo "- SMOKE_ON_CPU=1: a smoke run of this script; no GPU figures below" >> "$REPORT"
    DEVICES=cpu
    LARGE=
    NETS=(--nets 0,1)  # the two small nets: enough to exercise every step of the script
    GPU="smoke run on the CPU"
fi
case "$GPU" in
    NONE*)
        echo "no CUDA GPU present: nothing to check on a GPU here (exit 77 = skipped)"
        printf '\nNo CUDA GPU present: the CUDA tests and the CUDA benchmark rows did not run.\n' >> "$REPORT"
        echo "wrote $REPORT"
        exit 77
        ;;
esac

# ----- 2. the CUDA tests -----
status=0
echo "== CUDA tests"
timeout "${TEST_TIMEOUT:-60}" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider \
    tests/differentiators/reverse/test_torch_backend.py 2>&1 | tee "$OUT/cuda_tests.txt"
test_rc=${PIPESTATUS[0]}
[ "$test_rc" -eq 0 ] || status=1
{
    echo
    echo "## CUDA tests"
    echo
    echo "\`pytest -m cuda tests/differentiators/reverse/test_torch_backend.py\`: exit $test_rc, $(tail -n 1 "$OUT/cuda_tests.txt")"
} >> "$REPORT"

# ----- 3. the benchmark's CUDA rows -----
echo "== benchmark (CPU and CUDA rows)"
timeout "${BENCH_TIMEOUT:-210}" "$PYTHON" benchmarks/bench_reverse.py --quick $LARGE --threads "$THREADS" \
    --devices "$DEVICES" ${NETS[@]+"${NETS[@]}"} --only torch,engine_torch,torch_cuda,engine_torch_cuda \
    --csv "$OUT/bench_cuda.csv" --markdown "$OUT/bench_cuda.md" 2>&1 | tee "$OUT/bench_cuda.txt"
bench_rc=${PIPESTATUS[0]}
[ "$bench_rc" -eq 0 ] || status=1
{
    echo
    echo "## Speed: engine on torch vs torch.autograd, CPU and GPU"
    echo
    echo "Targets: engine_torch/torch and engine_torch_cuda/torch_cuda <= 1.2 on the larger nets;"
    echo "gpu_speedup_* = CPU time / GPU time of the same method."
    echo
    if [ -s "$OUT/bench_cuda.md" ]; then cat "$OUT/bench_cuda.md"; else echo "The benchmark did not finish (exit $bench_rc): see bench_cuda.txt."; fi
} >> "$REPORT"
echo "wrote $REPORT and $OUT/bench_cuda.csv (exit $status)"
exit $status
