#!/usr/bin/env bash
# The GPU check of issue 16, in one command from the repository root:
#
#   timeout 480 bash benchmarks/gpu_check.sh          # on a fresh GPU machine
#   bash benchmarks/gpu_check.sh --quick --platform cpu   # the script's test
#
# Uses python3's jax if it sees a GPU; otherwise makes a venv (.venv-gpu,
# with the system's packages) and installs jax for CUDA 13 and this project
# with its dev extra (mctx), from .whl/ without a network when wheels are
# there. Then runs benchmarks/gpu_check.py (its options pass through; a
# budget of BUDGET=300 s for its cells keeps the whole under 8 minutes),
# which prints one table and writes benchmarks/results/gpu/gpu_check.json,
# then the launch counts, compiled for the GPU too
# (benchmarks/results/gpu/launch_count.json). Logs go there too.
set -u
OUT=benchmarks/results/gpu
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
case " $* " in *" --platform cpu "*) cpu=1 ;; *) cpu=0 ;; esac
if [ "$cpu" = 0 ] && ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  test -x .venv-gpu/bin/python || python3 -m venv --system-site-packages .venv-gpu || exit 1
  PY=.venv-gpu/bin/python
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --find-links .whl -e '.[dev]' 'jax[cuda13]' || exit 1
  else
    "$PY" -m pip install -q -e '.[dev]' 'jax[cuda13]' || exit 1
  fi
fi
if [ "$cpu" = 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    > "$OUT/nvidia_smi.csv" 2>&1
  "$PY" -m benchmarks.gpu_check --out "$OUT/gpu_check.json" \
    --budget "${BUDGET:-300}" "$@" 2>&1 | tee "$OUT/gpu_check.log"
  # Compiling for CUDA here also checks that Triton compiles the kernel.
  timeout "${COUNT_LIMIT:-100}" "$PY" -m benchmarks.launch_count \
    --out "$OUT/launch_count.json" > "$OUT/launch_count.log" 2>&1
  tail -n 16 "$OUT/launch_count.log"
else
  "$PY" -m benchmarks.gpu_check --out "${CHECK_OUT:-$OUT/gpu_check_cpu.json}" "$@"
fi
