#!/usr/bin/env bash
# The checks that need a CUDA GPU, in two short phases (run from the repo root):
#
#   bash benchmarks/gpu_checks.sh tests   # the CUDA tests (skipped elsewhere)
#   bash benchmarks/gpu_checks.sh bench   # the GPU rows of the benchmarks
#
# Each phase fits in one 10-minute command (tests about 2 min, bench
# about 9 min at most on an H200).
# skae is used from the checkout (PYTHONPATH), not installed. Logs go to
# $OUT when it is set, else to ./gpu-logs.
set -u
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 - <<'EOF'
import numpy, scipy, sklearn, skorch, torch
print("torch", torch.__version__, "| scikit-learn", sklearn.__version__,
      "| skorch", skorch.__version__, "| numpy", numpy.__version__,
      "| scipy", scipy.__version__)
print("CUDA:", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF

case "${1:-}" in
tests)
    timeout 120 python3 -m pytest -q -p no:cacheprovider -rs \
        tests/test_cuda.py tests/test_devices_determinism.py \
        tests/test_persistence.py \
        tests/test_batched_search.py::test_each_candidate_matches_its_sequential_fit_on_cuda \
        2>&1 | tee "$out/tests.log" | tail -25
    timeout 40 python3 -m pytest -q -p no:cacheprovider tests/test_bad_input.py \
        -k "cuda or device" 2>&1 | tee "$out/bad_input.log" | tail -5
    ;;
bench)
    nproc
    timeout 200 python3 benchmarks/bench_sae.py --device cuda --sweep \
        2>&1 | tee "$out/sae_sweep.log" | tail -4
    timeout 150 python3 benchmarks/bench_search.py --device cuda --repeats 1 \
        2>&1 | tee "$out/search.log" | tail -12
    timeout 120 python3 benchmarks/run.py --quick --device cuda \
        --only fit step transform 2>&1 | tee "$out/run.log" | tail -22
    timeout 90 python3 benchmarks/bench_sae.py --device cuda --large-only \
        2>&1 | tee "$out/sae_large.log" | tail -14
    ;;
*)
    echo "usage: bash benchmarks/gpu_checks.sh tests|bench" >&2
    exit 2
    ;;
esac
