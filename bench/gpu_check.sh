#!/usr/bin/env bash
# Everything that needs a GPU, in one command, on one H100/H200 with no network:
#
#   bash bench/gpu_check.sh
#
# Before, on a machine with network: `bash bench/gpu_wheels.sh` downloads into .whl/ the packages
# a GPU machine without them lacks (diffusers, transformers 5.23, imageio-ffmpeg, cog + coglet,
# structlog, regex; 54 MiB); copy .whl/ to the GPU machine with the repository.
#
# 1. The wheels in .whl/, if any, are installed into /tmp/site without the network (PYTHONPATH;
#    Cog's worker inherits it).
# 2. The benchmark at the production defaults, ours against stock diffusers (seconds per stage,
#    FLOPs, peak VRAM, setup, frames' error and finiteness): it first builds every model at full size
#    with random weights and writes them to .cache/full-size-weights (about 15 GB, 1-2 minutes), then
#    times one run after one warm-up per pipeline -> bench/reports/benchmark.json, bench/reports/benchmark.md.
# 3. bench/gpu_check.py through Cog's server on those weights: setup, GPU memory over a short soak,
#    a real CUDA out-of-memory at an oversized request followed by a good prediction, the default
#    prediction's frames -> bench/reports/gpu_check.json, bench/reports/gpu_check.md.
# 4. bench/lever_matrix.py on the same weights, tiers 2 and 3 at 4 steps: eager, each speed lever
#    alone, then all together (compiling without autotuning, to fit), with seconds, the frames'
#    error against eager and peak GPU memory -> bench/reports/lever_matrix.json, lever_matrix.md;
#    written after every variant, so a cut-off run keeps what it measured.
# Then it prints one summary. Planned to end within 10 minutes: estimated (it has not run on a GPU
# yet) at about 5 minutes for the benchmark, 1.5 for the server checks and 2 for the lever matrix
# (its docstring's estimate for tier 2's six variants; tier 3's, about 4 minutes more, run until
# the limit and its report names those it did not reach); each has a time limit (330 s, 120 s,
# 120 s) so that the next still runs and the summary says what was cut off.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
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
timeout 330 "$PYTHON" -m bench.benchmark --out bench/reports --runs 1 --warmups 1 > /tmp/gpu-check-benchmark.log 2>&1
benchmark_status=$?
timeout 120 "$PYTHON" -m bench.gpu_check --out bench/reports > /tmp/gpu-check-server.out 2>&1
server_status=$?
rm -f bench/reports/lever_matrix.json bench/reports/lever_matrix.md  # never an earlier run's
timeout 120 "$PYTHON" -m bench.lever_matrix --out bench/reports --tiers 2,3 --steps 4 --compile-mode default \
  > /tmp/gpu-check-levers.log 2>&1
levers_status=$?

# With OUT set, the reports and logs are copied there too (a folder the caller collects).
if [ -n "${OUT:-}" ]; then
  cp bench/reports/benchmark.json bench/reports/benchmark.md bench/reports/gpu_check.json bench/reports/gpu_check.md \
    bench/reports/lever_matrix.json bench/reports/lever_matrix.md "$OUT"/ 2>/dev/null
  tail -c 200000 /tmp/gpu-check-benchmark.log > "$OUT"/benchmark.log
  cp /tmp/gpu-check-server.out "$OUT"/gpu_check.log 2>/dev/null
  tail -c 200000 /tmp/gpu-check-levers.log > "$OUT"/lever_matrix.log
  tail -c 2000000 /tmp/gpu-check-server.log > "$OUT"/cog-server.log 2>/dev/null
fi

echo "== GPU check summary ($(( $(date +%s) - started )) s in all)"
if [ $benchmark_status -eq 0 ]; then
  cat bench/reports/benchmark.md
else
  echo "benchmark: exit $benchmark_status (124 = past its 330 s); its last lines:"
  tail -n 15 /tmp/gpu-check-benchmark.log
fi
if [ $server_status -eq 0 ]; then
  cat bench/reports/gpu_check.md
else
  echo "server checks: exit $server_status (124 = past their 120 s); their last lines:"
  tail -n 15 /tmp/gpu-check-server.out
fi
# A cut-off matrix has still written the variants it measured, and says which it did not.
if [ $levers_status -ne 0 ]; then
  echo "lever matrix: exit $levers_status (124 = past its 120 s); its last lines:"
  tail -n 15 /tmp/gpu-check-levers.log
fi
[ -f bench/reports/lever_matrix.md ] && cat bench/reports/lever_matrix.md
[ $benchmark_status -eq 0 ] && [ $server_status -eq 0 ] && [ $levers_status -eq 0 ]
