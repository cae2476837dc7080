"""scripts/reliability.py's soak runs and reports figures (the checks part is the suite itself)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import reliability  # noqa: E402


def test_checks_report_counts_cases_and_what_the_tests_recorded(tmp_path):
    cancel = "tests/test_server_reliability.py::test_cancel_in_any_stage_ends_canceled_promptly"
    found = reliability.run_checks(
        tmp_path / "junit.xml",
        [
            f"{cancel}[tier2-denoising]",
            f"{cancel}[tier3-keyframe]",
            "tests/test_inputs.py::test_seed_limits_are_inclusive",
        ],
    )
    assert sorted(row[:3] for row in found["checks"]) == [
        ("test_cancel_in_any_stage_ends_canceled_promptly", 2, 2),
        ("test_seed_limits_are_inclusive", 1, 1),
    ]
    assert sorted(found["cancels"]) == ["tier2-denoising", "tier3-keyframe"]
    assert all(0 < seconds < 5 for seconds in found["cancels"].values())
    report = tmp_path / "RELIABILITY.md"
    reliability.write_report(report, found, None)
    assert (
        "| tier2-denoising | " in report.read_text()
        and "3 of 3 cases passed." in report.read_text()
    )


def test_soak_report_has_outcomes_memory_and_latency(tmp_path):
    report = tmp_path / "RELIABILITY.md"
    subprocess.run(
        [
            sys.executable,
            "scripts/reliability.py",
            "--skip-checks",
            "--soak",
            "12",
            "--out",
            str(report),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    text = report.read_text()
    assert "## Soak: 12 mixed predictions" in text
    outcomes = ast.literal_eval(re.search(r"outcomes: (\{.*\})", text).group(1))
    assert outcomes == {
        "succeeded": 7,
        "failed": 4,
        "canceled": 1,
    }  # of seven kinds: two bad, one cancelled
    start, end, peak = map(
        float,
        re.search(
            r"(\d+) MiB after warm-up \(one request of each kind\), (\d+) MiB at the end, (\d+) MiB",
            text,
        ).groups(),
    )
    assert 0 < start <= peak and 0 < end <= peak
    assert re.search(
        r"first third of each kind of request.s runs \(median over the kinds that run a model\): \d+\.\d\d×",
        text,
    )
    # GPU memory is reported where nvidia-smi can read it, and said to be unmeasured elsewhere.
    if shutil.which("nvidia-smi"):
        assert re.search(r"worker GPU memory every 10 predictions \(MiB, nvidia-smi\): \[\d+", text)
    else:
        assert "worker GPU memory: not measured (no NVIDIA GPU here)" in text
