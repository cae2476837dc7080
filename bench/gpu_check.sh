#!/usr/bin/env bash
# Everything that needs a GPU, on one H100/H200 with no network, in two commands of under 10
# minutes each, so that each part fits one short job on a rented GPU:
#
#   bash bench/gpu_check.sh          # the tiers against stock, and Cog's server
#   bash bench/gpu_check.sh levers   # the lever matrix of every tier, and the compile cache
#
# Before, on a machine with network: `bash bench/gpu_wheels.sh` downloads into .whl/ the packages
# a GPU machine without them lacks (diffusers, transformers 5.23, imageio-ffmpeg, cog + coglet,
# structlog, regex; 54 MiB); copy .whl/ to the GPU machine with the repository.
#
# Both parts: the wheels in .whl/, if any, are installed into /tmp/site without the network
# (PYTHONPATH; Cog's worker inherits it). The first that runs builds every tier's models at full
# size with random weights and writes them to .cache/full-size-weights (about 36 GB; tier 4's
# draft transformer is linked to the standard one, the same architecture), 1.5-2 minutes.
#
# The first part:
# 1. The benchmark at the production defaults (tier 4 at 2 steps, its time at 50 stated from the
#    seconds per step), ours against stock diffusers (seconds per stage, FLOPs, peak VRAM with every
#    tier resident, setup, frames' error and finiteness), and the drafts of tiers 2 and 4, one run
#    after one warm-up each -> bench/reports/benchmark.json, benchmark.md.
# 2. bench/gpu_check.py's steps 1-4 through Cog's server on those weights: setup of every tier, GPU
#    memory over a short soak of every tier, a real CUDA out-of-memory at an oversized request
#    followed by a good prediction, the default prediction's frames
#    -> bench/reports/gpu_check.json, gpu_check.md.
# Estimated (it has not run on a GPU yet): the benchmark 6.3 minutes (weights 2, verification and
# setup 1, tier 2 0.3, tier 3 1, tier 4 with its draft 2), the server 1.4 (setup 0.7, soak and
# out-of-memory 0.7): about 7.7 minutes, within the limits of 390 and 120 s.
#
# `levers`:
# 1. bench/lever_matrix.py per tier at 2 steps (tier 4 at 41 frames): eager, each speed lever alone,
#    all but COMPILE, then all together (compiling without autotuning, to fit), with seconds, the
#    frames' error against eager and peak GPU memory -> bench/reports/lever_matrix.json,
#    lever_matrix.md, written after every variant, so a cut-off run keeps what it measured. Each
#    tier is loaded once, each lever put on and taken off its models.
# 2. bench/gpu_check.py's step 5: two boots of tier 2 through Cog's server with COMPILE=1, without
#    and with the compile cache -> bench/reports/compile_cache.json, compile_cache.md.
# Estimated: the matrix 4.3 minutes (its docstring), 6.3 with the weights written first; the
# compile boots 1.2: 5.5 minutes, 7.5 on a machine the first part has not run on; limits 420 and
# 120 s. Both parts on one machine, the second on the weights the first wrote: about 13 minutes.
#
# Each step has a time limit, so that the next still runs and the summary says what was cut off.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
PART=${1:-tiers}
case "$PART" in
  tiers | levers) ;;
  *) echo "usage: bash bench/gpu_check.sh [levers]  (no argument: the tiers and the server; levers: the lever matrix and the compile cache)"; exit 2 ;;
esac
started=$(date +%s)

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" -c "import torch, diffusers, transformers, cog, imageio_ffmpeg; assert torch.cuda.is_available(), 'no GPU'; \
print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, \
'GPU', torch.cuda.get_device_name())" || exit 1
mkdir -p bench/reports

# A step's summary: its report, or, where it failed or was cut off, why and its log's last lines.
summarize() {  # WHAT STATUS LIMIT_S REPORT LOG
  if [ "$2" -eq 0 ]; then
    cat "bench/reports/$4"
  else
    echo "$1: exit $2 (124 = past its $3 s); its last lines:"
    tail -n 15 "$5"
  fi
}

# With OUT set, the reports and logs are copied there too (a folder the caller collects).
collect() {
  [ -n "${OUT:-}" ] || return 0
  for report in "$@"; do cp "bench/reports/$report" "$OUT"/ 2>/dev/null; done
}

if [ "$PART" = levers ]; then
  # Never an earlier run's reports.
  rm -f bench/reports/lever_matrix.json bench/reports/lever_matrix.md bench/reports/compile_cache.*
  timeout 420 "$PYTHON" -m bench.lever_matrix --out bench/reports --tiers 2,3,4 --compile-mode default \
    > /tmp/gpu-check-levers.log 2>&1
  levers_status=$?
  timeout 120 "$PYTHON" -m bench.gpu_check --part compile-cache --out bench/reports \
    > /tmp/gpu-check-compile.out 2>&1
  compile_status=$?
  collect lever_matrix.json lever_matrix.md compile_cache.json compile_cache.md
  if [ -n "${OUT:-}" ]; then
    tail -c 200000 /tmp/gpu-check-levers.log > "$OUT"/lever_matrix.log
    cp /tmp/gpu-check-compile.out "$OUT"/compile_cache.log 2>/dev/null
    cat /tmp/gpu-check-compile-*-boot.log 2>/dev/null | tail -c 2000000 > "$OUT"/cog-server-compile.log
  fi
  echo "== GPU check, levers ($(( $(date +%s) - started )) s in all)"
  # A cut-off matrix has still written the variants it measured, and says which it did not.
  if [ $levers_status -ne 0 ]; then
    echo "lever matrix: exit $levers_status (124 = past its 420 s); its last lines:"
    tail -n 15 /tmp/gpu-check-levers.log
  fi
  [ -f bench/reports/lever_matrix.md ] && cat bench/reports/lever_matrix.md
  summarize "compile boots" $compile_status 120 compile_cache.md /tmp/gpu-check-compile.out
  [ $levers_status -eq 0 ] && [ $compile_status -eq 0 ]
  exit
fi

timeout 390 "$PYTHON" -m bench.benchmark --out bench/reports --runs 1 --warmups 1 > /tmp/gpu-check-benchmark.log 2>&1
benchmark_status=$?
timeout 120 "$PYTHON" -m bench.gpu_check --part server --out bench/reports > /tmp/gpu-check-server.out 2>&1
server_status=$?
collect benchmark.json benchmark.md gpu_check.json gpu_check.md
if [ -n "${OUT:-}" ]; then
  tail -c 200000 /tmp/gpu-check-benchmark.log > "$OUT"/benchmark.log
  cp /tmp/gpu-check-server.out "$OUT"/gpu_check.log 2>/dev/null
  tail -c 2000000 /tmp/gpu-check-server.log > "$OUT"/cog-server.log 2>/dev/null
fi

echo "== GPU check summary ($(( $(date +%s) - started )) s in all)"
summarize benchmark $benchmark_status 390 benchmark.md /tmp/gpu-check-benchmark.log
summarize "server checks" $server_status 120 gpu_check.md /tmp/gpu-check-server.out
[ $benchmark_status -eq 0 ] && [ $server_status -eq 0 ]
