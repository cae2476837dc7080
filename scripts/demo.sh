#!/usr/bin/env bash
# The main job: set up .venv if needed, then `python -m scripts.demo` (arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python -m scripts.demo "$@"
