#!/usr/bin/env bash
# The test command: set up .venv if needed, then run tests/ on tiny random weights (CPU). Arguments
# go to pytest: a file or folder (bench/tests: the measurement smoke), `-n 0` for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Cog's server spawns its worker as `python` from PATH: this environment's must come first.
export PATH="$PWD/.venv/bin:$PATH"
# Two processes (pytest-xdist): much of a test's time is a server's worker or ffmpeg at work, so a
# second process fills the wait. worksteal keeps a file's tests together until the other process
# runs dry, so module fixtures are built about once.
# One OpenMP thread per process: with two processes on two cores, each torch's threads would
# otherwise contend for the cores the other uses (docs/TESTING.md gives the times both ways).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec python -m pytest -n 2 --dist worksteal "$@"
