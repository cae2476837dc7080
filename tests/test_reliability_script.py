"""scripts/reliability.py's soak runs and reports figures (the checks part is the suite itself)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_soak_report_has_outcomes_memory_and_latency(tmp_path):
    report = tmp_path / "RELIABILITY.md"
    subprocess.run([sys.executable, "scripts/reliability.py", "--skip-checks", "--soak", "12", "--out", str(report)],
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    text = report.read_text()
    assert "## Soak: 12 mixed predictions" in text
    outcomes = ast.literal_eval(re.search(r"outcomes: (\{.*\})", text).group(1))
    assert outcomes == {"succeeded": 8, "failed": 4}  # two bad requests in every six
    start, end, peak = map(float, re.search(r"(\d+) MiB after warm-up \(one request of each kind\), (\d+) MiB at the end, (\d+) MiB", text).groups())
    assert 0 < start <= peak and 0 < end <= peak
    assert re.search(r"first run of each kind of request \(median\): \d+\.\d\d×", text)
    # GPU memory is reported where nvidia-smi can read it, and said to be unmeasured elsewhere.
    if shutil.which("nvidia-smi"):
        assert re.search(r"worker GPU memory every 10 predictions \(MiB, nvidia-smi\): \[\d+", text)
    else:
        assert "worker GPU memory: not measured (no NVIDIA GPU here)" in text
