#!/usr/bin/env bash
# Download, on a machine with network, the wheels bench/gpu_check.sh installs on a GPU machine that has no network.
#
#   bash bench/gpu_wheels.sh        # -> .whl/*.whl (ignored by git), 54 MiB
#
# The GPU machine it was written for runs Python 3.12 with torch, numpy,
# Pillow, requests, tqdm, PyYAML, safetensors 0.8, tokenizers 0.23, huggingface-hub 1.33 and
# accelerate 1.15 already; it lacks diffusers, transformers 5.23 (it has 5.17), imageio-ffmpeg, Cog
# (cog + coglet, and structlog for cog), and may hold a regex older than transformers 5.23 checks
# for at import. Versions are requirements.txt's pins; torch is the machine's own (too large to
# carry); structlog and regex are the versions .venv holds. imageio-ffmpeg is 0.6.0, not the pinned
# 0.8.1: 0.8.1's wheel (its static ffmpeg 9) is 65 MB, over a 64 MiB upload limit; 0.6.0's
# (ffmpeg 7) is 29 MB and has the same write_frames. --no-deps: exactly these files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=(
  diffusers==0.42.1
  transformers==5.23.0
  imageio-ffmpeg==0.6.0
  cog==0.23.1
  coglet==0.23.1
  structlog==26.1.0
  regex==2026.11.19
)
rm -rf .whl && mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_34_x86_64 \
  --platform manylinux_2_35_x86_64 -d .whl "${WHEELS[@]}"
du -ch .whl/*.whl
