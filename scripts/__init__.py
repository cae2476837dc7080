"""Command-line entry points, each run from the repository root as `python -m scripts.<name>`
(`-m` puts the root on the import path, so they import `weights`, `pipelines` and each other as
packages and need no `sys.path` edits)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
