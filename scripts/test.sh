#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole suite on tiny random weights (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Cog's server spawns its worker as `python` from PATH: this environment's must come first.
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest "$@"
