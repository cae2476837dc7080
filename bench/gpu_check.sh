#!/usr/bin/env bash
# Everything that needs a GPU, on one H100/H200 with no network, in two commands of under 10
# minutes each, so that each part fits one short job on a rented GPU:
#
#   bash bench/gpu_check.sh          # the tiers against stock, the server, the compile cache
#   bash bench/gpu_check.sh levers   # the lever matrix of every tier
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
# 2. bench/gpu_check.py through Cog's server on those weights: setup of every tier, GPU memory over
#    a short soak of every tier, a real CUDA out-of-memory at an oversized request followed by a good
#    prediction, the default prediction's frames, then two boots with COMPILE=1, without and with
#    the compile cache -> bench/reports/gpu_check.json, gpu_check.md.
# Estimated (it has not run on a GPU yet): the benchmark 5.5 minutes (weights 2, verification and
# setup 1, tier 2 0.3, tier 3 1, tier 4 with its draft 2), the server 2.5 (setup 0.7, soak and
# out-of-memory 0.7, the compile boots 1.2): about 8.5 minutes, within the limits of 360 and 180 s.
#
# `levers`: bench/lever_matrix.py per tier at 2 steps (tier 4 at 41 frames): eager, each speed lever
# alone, all but COMPILE, then all together (compiling without autotuning, to fit), with seconds,
# the frames' error against eager and peak GPU memory -> bench/reports/lever_matrix.json,
# lever_matrix.md, written after every variant, so a cut-off run keeps what it measured. Estimated
# at 7.5 minutes (its docstring), 9.5 with the weights written first; limit 540 s.
#
# Each step has a time limit, so that the next still runs and the summary says what was cut off.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
PART=${1:-tiers}
case "$PART" in
  tiers | levers) ;;
  *) echo "usage: bash bench/gpu_check.sh [levers]  (no argument: the tiers, server and compile cache)"; exit 2 ;;
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

# With OUT set, the reports and logs are copied there too (a folder the caller collects).
collect() {
  [ -n "${OUT:-}" ] || return 0
  for report in "$@"; do cp "bench/reports/$report" "$OUT"/ 2>/dev/null; done
}

if [ "$PART" = levers ]; then
  rm -f bench/reports/lever_matrix.json bench/reports/lever_matrix.md  # never an earlier run's
  timeout 540 "$PYTHON" -m bench.lever_matrix --out bench/reports --tiers 2,3,4 --compile-mode default \
    > /tmp/gpu-check-levers.log 2>&1
  levers_status=$?
  collect lever_matrix.json lever_matrix.md
  [ -n "${OUT:-}" ] && tail -c 200000 /tmp/gpu-check-levers.log > "$OUT"/lever_matrix.log
  echo "== GPU check, levers ($(( $(date +%s) - started )) s in all)"
  # A cut-off matrix has still written the variants it measured, and says which it did not.
  if [ $levers_status -ne 0 ]; then
    echo "lever matrix: exit $levers_status (124 = past its 540 s); its last lines:"
    tail -n 15 /tmp/gpu-check-levers.log
  fi
  [ -f bench/reports/lever_matrix.md ] && cat bench/reports/lever_matrix.md
  exit $levers_status
fi

timeout 360 "$PYTHON" -m bench.benchmark --out bench/reports --runs 1 --warmups 1 > /tmp/gpu-check-benchmark.log 2>&1
benchmark_status=$?
timeout 180 "$PYTHON" -m bench.gpu_check --out bench/reports > /tmp/gpu-check-server.out 2>&1
server_status=$?
collect benchmark.json benchmark.md gpu_check.json gpu_check.md
if [ -n "${OUT:-}" ]; then
  tail -c 200000 /tmp/gpu-check-benchmark.log > "$OUT"/benchmark.log
  cp /tmp/gpu-check-server.out "$OUT"/gpu_check.log 2>/dev/null
  cat /tmp/gpu-check-server.log /tmp/gpu-check-compile-*-boot.log 2>/dev/null | tail -c 2000000 > "$OUT"/cog-server.log
fi

echo "== GPU check summary ($(( $(date +%s) - started )) s in all)"
if [ $benchmark_status -eq 0 ]; then
  cat bench/reports/benchmark.md
else
  echo "benchmark: exit $benchmark_status (124 = past its 360 s); its last lines:"
  tail -n 15 /tmp/gpu-check-benchmark.log
fi
if [ $server_status -eq 0 ]; then
  cat bench/reports/gpu_check.md
else
  echo "server checks: exit $server_status (124 = past their 180 s); their last lines:"
  tail -n 15 /tmp/gpu-check-server.out
fi
[ $benchmark_status -eq 0 ] && [ $server_status -eq 0 ]
