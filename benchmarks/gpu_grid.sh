#!/usr/bin/env bash
# The throughput grid of benchmarks/throughput.py on a GPU machine, in one go.
#
#   OUT=results_dir benchmarks/gpu_grid.sh
#
# Runs from the repository root with the machine's own python3 (jax with CUDA
# already installed); wheels of mctx, dm-haiku and jmp may be put in .whl/
# for machines that cannot reach a package index. Each part has its own time
# limit, and throughput.py writes its JSON after every cell, so a part cut
# short keeps the cells it finished. Logs and JSON go to $OUT.
set -u
OUT=${OUT:-bench_results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
  --format=csv > "$OUT/nvidia_smi.csv" 2>&1

# part name, time limit (s), throughput.py options
part() {
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" python3 -m benchmarks.throughput --repeats 3 \
    --mctx-limit 20 --markdown --out "$OUT/$name.json" "$@" \
    2>&1 | tee "$OUT/$name.log" | grep -v '^\['
}
part tiny_gumbel "${GUMBEL_LIMIT:-200}" --models tiny --policies gumbel
part tiny_muzero "${MUZERO_LIMIT:-200}" --models tiny --policies muzero
part mlp_b256 "${MLP_LIMIT:-120}" --models mlp --batch 256 --actions 16,362 \
  --simulations 64
